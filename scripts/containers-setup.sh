#!/usr/bin/env bash
# Prepares a machine for the container tier (`make test-containers`, tests/containers/):
# idempotent, every step is skipped when its result is already there.
#
#   1. Debian packages: podman (the engine), runc (its OCI runtime here), mmdebstrap (base
#      images without a registry), and the docker CLI if there is none.
#   2. The Docker Compose plugin (`docker compose`), built from its Go module when missing:
#      docker-compose.yml needs Compose v2 or later, which Debian does not package.
#   3. Stand-in base images, for machines that reach no image registry:
#      - a Python 3.11 Debian bookworm image made with mmdebstrap, for the Dockerfile's
#        PYTHON_IMAGE build argument (in place of python:3.11-slim-bookworm);
#      - a Kafka image from the jars kafka/pom.xml resolves, tagged as the image
#        docker-compose.yml names, so the compose file runs unchanged
#        (tests/containers/kafka_standin/).
#      An image of that name that is already there (pulled from a registry) is kept.
#
# Podman runs with tests/containers/containers.conf (CONTAINERS_CONF): the machine's own
# configuration is not changed. Nothing is started here; the tests start podman's Docker
# API service on a private socket and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=${SLACLOCK_COMPOSE_VERSION:-v5.6.0}
PYTHON_STANDIN=${SLACLOCK_TEST_PYTHON_IMAGE:-localhost/slaclock-python-standin:3.11-bookworm}
STANDIN_LABEL=org.slaclock.stand-in=true
export CONTAINERS_CONF="$PWD/tests/containers/containers.conf"
PYTHON=${PYTHON:-$PWD/.venv/bin/python}

say() { printf 'containers-setup: %s\n' "$*"; }
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

# -- 1. packages ---------------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v docker >/dev/null || missing+=(docker.io) # the CLI only is used; no daemon runs
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # with podman's network stack: netavark, and aardvark-dns to resolve the service names
  apt-get install -y -qq "${missing[@]}" netavark aardvark-dns >/dev/null
fi

# -- 2. docker compose ----------------------------------------------------------------------
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  command -v go >/dev/null || {
    say "Go is needed to build the Docker Compose plugin (docker compose): install it"
    exit 1
  }
  say "building docker compose $COMPOSE_VERSION from its Go module (once; a few minutes)"
  work=$(mktemp -d)
  scratch+=("$work")
  module=github.com/docker/compose/v5
  dir=$(cd "$work" && go mod download -json "$module@$COMPOSE_VERSION" |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # Its go.mod has exclude directives, so `go install module@version` refuses it: build it
  # as the main module from a copy.
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
  mkdir -p "$plugins"
  (cd "$work/src" && nice go build -trimpath \
    -ldflags "-s -w -X $module/internal.Version=$COMPOSE_VERSION" \
    -o "$plugins/docker-compose" ./cmd)
  docker compose version
fi

# -- 3. stand-in base images ----------------------------------------------------------------
if ! podman image exists "$PYTHON_STANDIN"; then
  say "making $PYTHON_STANDIN with mmdebstrap (Debian bookworm, python3.11)"
  work=$(mktemp -d)
  scratch+=("$work")
  # /usr/local/bin/python and python3, as in the python:3.11 images; no apt lists left.
  mmdebstrap --quiet --variant=apt --include=python3.11,python3.11-venv,ca-certificates \
    --customize-hook='chroot "$1" ln -sf /usr/bin/python3.11 /usr/local/bin/python' \
    --customize-hook='chroot "$1" ln -sf /usr/bin/python3.11 /usr/local/bin/python3' \
    bookworm "$work/base.tar"
  podman import --quiet \
    --change "LABEL $STANDIN_LABEL" \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$work/base.tar" "$PYTHON_STANDIN" >/dev/null
  rm -f "$work/base.tar"
fi

kafka_image=$(sed -n 's/^ *image: *\(apache\/kafka:.*\)$/\1/p' docker-compose.yml | head -1)
[[ -n "$kafka_image" ]] || {
  say "no apache/kafka image in docker-compose.yml"
  exit 1
}
if ! podman image exists "docker.io/$kafka_image"; then
  say "making a stand-in for $kafka_image from the jars of kafka/pom.xml"
  libs=$("$PYTHON" -c 'from slaclock.local_kafka import KafkaJars; print(KafkaJars.default().ensure())')
  version=$("$PYTHON" -c 'from slaclock.local_kafka import kafka_version; print(kafka_version())')
  if [[ "$kafka_image" != "apache/kafka:$version" ]]; then
    say "docker-compose.yml names $kafka_image, kafka/pom.xml pins Kafka $version: make them agree"
    exit 1
  fi
  context=$(mktemp -d)
  scratch+=("$context")
  cp -r tests/containers/kafka_standin/. "$context/"
  mkdir "$context/libs"
  cp "$libs"/*.jar "$context/libs/"
  # The broker's health check in docker-compose.yml runs kafka-broker-api-versions.sh,
  # whose class is in kafka-tools (not a dependency of the broker itself).
  mvn -q -B -Dstyle.color=never dependency:copy "-Dartifact=org.apache.kafka:kafka-tools:$version" \
    "-DoutputDirectory=$context/libs" >/dev/null
  nice podman build --quiet --format docker --network host \
    --build-arg "BASE_IMAGE=$PYTHON_STANDIN" --label "$STANDIN_LABEL" \
    -t "docker.io/$kafka_image" "$context" >/dev/null
fi
say "ready: podman $(podman version --format '{{.Client.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/docker compose /'), images $PYTHON_STANDIN and docker.io/$kafka_image"
