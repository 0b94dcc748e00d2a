#!/bin/sh
# `kafka-run-class.sh CLASS ARGS...`: the JVM options the Kafka scripts read from the
# environment, the jars in /opt/kafka/libs, logging to the console.
exec java ${KAFKA_HEAP_OPTS:--Xmx256M} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} \
  -Djava.awt.headless=true ${KAFKA_OPTS:-} \
  "-Dlog4j2.configurationFile=${KAFKA_LOG4J_CONFIG:-/etc/kafka/docker/log4j2.properties}" \
  -cp '/opt/kafka/libs/*' "$@"
