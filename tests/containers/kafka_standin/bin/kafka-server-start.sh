#!/bin/sh
# `kafka-server-start.sh server.properties`: the broker (1 GB heap unless KAFKA_HEAP_OPTS).
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
export KAFKA_LOG4J_CONFIG=/opt/kafka/config/log4j2.properties
exec "$(dirname "$0")/kafka-run-class.sh" -XX:+ExitOnOutOfMemoryError kafka.Kafka "$@"
