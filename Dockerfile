# syntax=docker/dockerfile:1
# The slaclock worker image: runtime dependencies only, a non-root user, state on a volume.
#   docker build -t slaclock .
#   docker build --build-arg MYPYC=1 -t slaclock .                                  # compiled core
#   docker run --rm -e SLACLOCK_BOOTSTRAP_SERVERS=kafka:9092 slaclock            # a worker
#   docker run --rm -e SLACLOCK_BOOTSTRAP_SERVERS=kafka:9092 slaclock topics create
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the package, its runtime dependencies and RocksDB into a virtualenv (no dev extras)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY schemas ./schemas
COPY processors ./processors
COPY slaclock ./slaclock
# constraints.txt pins every dependency (`make lock`): the same versions as CI, every build.
# EXTRAS=reports adds matplotlib for `slaclock report` / `whatif` (about 150 MB more); the
# worker does not need it. pip and setuptools leave the runtime virtualenv once done.
# MYPYC=1 ships the compiled core (setup.py: processors/engine compiled by mypyc, about 2x
# faster replay): gcc and mypy live in a throw-away virtualenv of this stage only, the
# runtime stage copies /opt/venv alone; the build fails unless the core is then compiled.
# The official python image carries Python.h; a Debian-Python base gets python3.11-dev here.
# (A build argument is in the environment of every RUN: the pure installs clear it.)
ARG EXTRAS=""
ARG MYPYC=""
RUN python -m venv /opt/venv \
    && MYPYC= /opt/venv/bin/pip install --no-compile -c constraints.txt ".${EXTRAS:+[$EXTRAS]}" \
    && if [ "$MYPYC" = "1" ]; then \
         apt-get update -qq \
         && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
              $(python -c "import os, sysconfig; print('' if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 'python3.11-dev')") >/dev/null \
         && python -m venv /opt/mypyc \
         && MYPYC= /opt/mypyc/bin/pip install --quiet -c constraints.txt . mypy types-pyyaml "setuptools>=69" wheel \
         && MYPYC=1 /opt/mypyc/bin/pip wheel --quiet --no-build-isolation --no-deps -w /tmp/wheels . \
         && /opt/venv/bin/pip install --no-compile --no-deps --force-reinstall /tmp/wheels/slaclock-*.whl \
         && rm -rf /opt/mypyc /tmp/wheels build; \
       fi \
    && /opt/venv/bin/python -P -c "import sys; from slaclock.build_info import core_compiled, describe; print(describe()); sys.exit(core_compiled() != (sys.argv[1] == '1'))" "$MYPYC" \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# -- runtime ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="slaclock" \
      org.opencontainers.image.description="SLA clocks, warnings, breaches and credits on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
# PYTHONTZPATH empty: zoneinfo reads no host/system time zone files and uses the pinned
# tzdata package, so calendars compute with the IANA release the tests ran with.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONTZPATH="" \
    SLACLOCK_POLICY_PATH=/etc/slaclock/policy.yaml \
    SLACLOCK_HTTP_PORT=6066 \
    SLACLOCK_STORE=rocksdb \
    SLACLOCK_STATE_DIR=/var/lib/slaclock
RUN groupadd --system --gid 10001 slaclock \
    && useradd --system --uid 10001 --gid slaclock --home-dir /var/lib/slaclock \
       --no-create-home --shell /usr/sbin/nologin slaclock \
    && mkdir -p /var/lib/slaclock /etc/slaclock \
    && chown slaclock:slaclock /var/lib/slaclock
COPY --from=build /opt/venv /opt/venv
# A default policy; mount your own over it (read-only), see docker-compose.yml.
COPY examples/policy.yaml /etc/slaclock/policy.yaml
WORKDIR /var/lib/slaclock
# Local state: one RocksDB per task (refilled from its changelog on every assignment).
VOLUME ["/var/lib/slaclock"]
USER 10001:10001
EXPOSE 6066
# Liveness: the worker's threads run, read from the health file the worker refreshes every
# 5 s (no HTTP port needed: SLACLOCK_HTTP_PORT=0 works too; no curl in a slim image).
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["slaclock", "worker", "--health"]
ENTRYPOINT ["slaclock"]
CMD ["worker"]
