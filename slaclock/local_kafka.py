"""A single-node Apache Kafka broker (KRaft, loopback only) run from Maven Central jars.

Used by `slaclock kafka up|down|status` and by the pytest session fixture on machines
without a Docker engine. The broker classpath comes from `kafka/pom.xml` (the single place
that pins the Kafka version), resolved once with Maven into a cache directory:

    ~/.cache/slaclock/kafka-<version>/      (or $SLACLOCK_KAFKA_HOME)
        libs/*.jar, libs/.complete          jars; the marker holds the pom's sha256
        libs/classes-<jvm>.jsa              JVM class archive (see KafkaJars.class_archive)
        instance/                           the CLI's broker (tests use their own temp dir)
            data/  server.properties  log4j2.properties  broker.log  broker.pid

A broker is only ever stopped through its pid file, and only if that pid still runs
`kafka.Kafka` with this instance's `server.properties` (pids get reused).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "512m"
SCRAM_MECHANISM = "SCRAM-SHA-256"
ENV_HOME = "SLACLOCK_KAFKA_HOME"
ENV_PORT = "SLACLOCK_KAFKA_PORT"
ENV_POM = "SLACLOCK_KAFKA_POM"

_REPO_POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
_MARKER = ".complete"
_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
# Kafka's reserved topic ids, never valid cluster ids (org.apache.kafka.common.Uuid).
_RESERVED_UUIDS = frozenset({bytes(16), bytes(15) + b"\x01"})


class LocalKafkaError(RuntimeError):
    """The local broker could not be resolved, started or reached; the message says why."""


# --------------------------------------------------------------------------- configuration


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes in unpadded base64url (22 characters).

    Mirrors `Uuid.randomUuid()`: skips the reserved ids and ids starting with '-', which
    the storage tool's argument parser would take for an option.
    """
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        if raw not in _RESERVED_UUIDS and not text.startswith("-"):
            return text


@dataclass(frozen=True)
class BrokerConfig:
    """What `server.properties` is generated from."""

    data_dir: Path
    port: int
    controller_port: int
    host: str = DEFAULT_HOST
    node_id: int = 1
    overrides: Mapping[str, str] = field(default_factory=dict)
    # SASL/SCRAM-SHA-256 with ACLs (StandardAuthorizer) when set: user name -> password,
    # created when the storage is formatted; `admin_user` is the broker's own user and the
    # one super user (besides the node's own controller traffic, see render_server_properties)
    scram_users: Mapping[str, str] = field(default_factory=dict)
    admin_user: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secured(self) -> bool:
        return self.admin_user is not None

    def client_config(self) -> dict[str, str]:
        """librdkafka settings for the admin user (security settings only)."""
        if self.admin_user is None:
            return {}
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": self.admin_user,
            "sasl.password": self.scram_users[self.admin_user],
        }


def render_server_properties(config: BrokerConfig) -> str:
    """`server.properties` for a combined broker+controller node with a static quorum of one.

    Internal topics get one replica and one partition: a single local node can offer
    nothing more, and the 50-partition defaults only slow down the first group or
    transaction of a run. `overrides` win over every default.
    """
    host, port, cport = config.host, config.port, config.controller_port
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(config.node_id),
        "controller.quorum.voters": f"{config.node_id}@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(config.data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # As in docker-compose: a topic is created by `slaclock topics create` or not at
        # all. Created on first use it would get `num.partitions` (1), and a worker whose
        # co-partitioned topics disagree cannot start.
        "auto.create.topics.enable": "false",
    }
    if config.admin_user is not None:
        password = config.scram_users[config.admin_user]
        props.update(
            {
                "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
                "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
                "inter.broker.listener.name": "SASL_PLAINTEXT",
                "listener.security.protocol.map": (
                    "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
                ),
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{config.admin_user}" password="{password}";'
                ),
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "false",
                # The controller listener stays PLAINTEXT on loopback (KRaft controllers
                # cannot use SCRAM: its credentials live in the metadata they serve); the
                # node's own broker-to-controller requests arrive there as ANONYMOUS.
                "super.users": f"User:{config.admin_user};User:ANONYMOUS",
            }
        )
    props.update(config.overrides)
    lines = ["# Generated by slaclock.local_kafka; rewritten on every start."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def render_log4j2_properties() -> str:
    """Log4j2 config: WARN and above to stdout, which the launcher sends to `broker.log`.

    Logging to stdout rather than a file appender keeps JVM-level failures (a too-old
    Java, an OutOfMemoryError) in the same file as the broker's own messages.
    """
    return "\n".join(
        [
            "status = warn",
            # Kafka logs while the JVM shuts down; log4j's own hook would only warn about it.
            "shutdownHook = disable",
            "appender.out.type = Console",
            "appender.out.name = OUT",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = WARN",
            "rootLogger.appenderRef.out.ref = OUT",
            # One INFO line per start ("Kafka Server started") makes the log readable.
            "logger.server.name = kafka.server.KafkaRaftServer",
            "logger.server.level = INFO",
            "",
        ]
    )


def read_server_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port the OS considers free right now (it may be taken again before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def env_port(default: int = DEFAULT_PORT) -> int:
    raw = os.environ.get(ENV_PORT)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise LocalKafkaError(f"{ENV_PORT}={raw!r} is not a port number") from None


# --------------------------------------------------------------------------- jars


def pom_path() -> Path:
    return Path(os.environ.get(ENV_POM) or _REPO_POM)


def kafka_version(pom: Path | None = None) -> str:
    """The `kafka.version` property of the pom, so the pom stays the one place to change it."""
    pom = pom or pom_path()
    if not pom.is_file():
        raise LocalKafkaError(
            f"Kafka pom not found at {pom}: run from a source checkout (pip install -e .) "
            f"or point {ENV_POM} at kafka/pom.xml"
        )
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise LocalKafkaError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def default_home(version: str | None = None) -> Path:
    """`$SLACLOCK_KAFKA_HOME`, else `${XDG_CACHE_HOME:-~/.cache}/slaclock/kafka-<version>`."""
    if override := os.environ.get(ENV_HOME):
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "slaclock" / f"kafka-{version or kafka_version()}"


class KafkaJars:
    """The broker classpath: the pom's runtime dependencies, copied once into `home/libs`."""

    def __init__(self, home: Path, pom: Path) -> None:
        self.home = home
        self.pom = pom
        self.libs = home / "libs"

    @classmethod
    def default(cls) -> KafkaJars:
        pom = pom_path()
        return cls(default_home(kafka_version(pom)), pom)

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")  # expanded by the JVM itself, not by a shell

    def class_archive(self, java: str) -> Path:
        """Where the JVM class-data-sharing archive of the broker's classes lives.

        Loading the broker's classes from an archive instead of 40-odd jars cuts its start
        from ~7.5 s to ~4.5 s on a 2-core machine. The archive is only valid for the exact
        JVM and jars that wrote it: it lives in `libs/` (replaced when the pom changes) under
        a name derived from the java binary (a JDK upgrade rewrites it). A stale archive is
        only a lost speed-up: the JVM ignores archives it cannot use.
        """
        binary = Path(java).resolve()
        stat = binary.stat()
        key = hashlib.sha256(f"{binary}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return self.libs / f"classes-{key[:12]}.jsa"

    def _pom_digest(self) -> str:
        return hashlib.sha256(self.pom.read_bytes()).hexdigest()

    def is_complete(self) -> bool:
        """True when a copy finished for this exact pom (a changed pom re-resolves)."""
        marker = self.libs / _MARKER
        return marker.is_file() and marker.read_text().strip() == self._pom_digest()

    def ensure(self) -> Path:
        """Resolve the jars with Maven unless a complete copy exists; returns the jar dir.

        Maven copies into a scratch dir that is renamed into place, and a file lock
        serialises concurrent callers (a CLI `up` while a test session starts).
        """
        if self.is_complete():
            return self.libs
        kafka_version(self.pom)  # a clear error if the pom is missing
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".libs.lock"):
            if self.is_complete():
                return self.libs
            mvn = shutil.which(os.environ.get("SLACLOCK_MVN", "mvn"))
            if mvn is None:
                raise LocalKafkaError(
                    "Maven (mvn) not found: it resolves the Kafka broker jars from Maven "
                    "Central on first use. Install it (e.g. `apt-get install maven`) or set "
                    "SLACLOCK_MVN."
                )
            scratch = self.home / "libs.partial"
            shutil.rmtree(scratch, ignore_errors=True)
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(self.pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={scratch}",
            ]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                raise LocalKafkaError(
                    "Maven did not resolve the Kafka jars within 15 min"
                ) from None
            if done.returncode != 0 or not any(scratch.glob("kafka_*.jar")):
                output = _tail_text((done.stdout or "") + (done.stderr or ""), 40)
                raise LocalKafkaError(
                    f"Maven failed to resolve the Kafka jars (exit {done.returncode}):\n"
                    f"  {' '.join(cmd)}\n{output}"
                )
            (scratch / _MARKER).write_text(self._pom_digest() + "\n")
            shutil.rmtree(self.libs, ignore_errors=True)
            scratch.rename(self.libs)
        return self.libs


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- broker


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    answering: bool
    pid: int | None
    bootstrap: str | None
    log_file: Path


def find_java() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; a clear error when neither exists."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (candidate := Path(java_home) / "bin" / "java").is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError(
            "Java not found: the local Kafka broker needs a Java 17+ runtime. Install one "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    return found


class LocalKafka:
    """One broker instance: its state dir, ports and process.

    `up()` is idempotent, `down()` only ever signals the pid this instance recorded.
    Several instances (the CLI's, each test session's) can run side by side on different
    ports and state dirs while sharing one jar cache.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        controller_port: int | None = None,
        host: str = DEFAULT_HOST,
        jars: KafkaJars | None = None,
        heap: str = DEFAULT_HEAP,
        overrides: Mapping[str, str] | None = None,
        die_with_parent: bool = False,
        scram_users: Mapping[str, str] | None = None,
        admin_user: str | None = None,
    ) -> None:
        """`die_with_parent` ties the broker's life to this process (Linux): test sessions
        use it so that even a session killed without running its finalizers leaves no
        broker behind. The CLI's broker outlives the command that started it.
        """
        self.state_dir = state_dir
        self.jars = jars or KafkaJars.default()
        self.heap = heap
        self.die_with_parent = die_with_parent
        self.config = BrokerConfig(
            data_dir=state_dir / "data",
            port=port,
            controller_port=controller_port if controller_port is not None else port + 1,
            host=host,
            overrides=dict(overrides or {}),
            scram_users=dict(scram_users or {}),
            admin_user=admin_user,
        )
        self.properties_file = state_dir / "server.properties"
        self.log4j_file = state_dir / "log4j2.properties"
        self.log_file = state_dir / "broker.log"
        self.pid_file = state_dir / "broker.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_cli(cls, port: int | None = None) -> LocalKafka:
        """The CLI's broker: `<home>/instance`, port from --port, $SLACLOCK_KAFKA_PORT or 9092."""
        jars = KafkaJars.default()
        return cls(jars.home / "instance", port=port or env_port(), jars=jars)

    @classmethod
    def on_free_ports(
        cls, state_dir: Path, *, jars: KafkaJars | None = None, die_with_parent: bool = False
    ) -> LocalKafka:
        """A broker on two ports picked by the OS, for test sessions."""
        port, cport = free_port(), free_port()
        while cport == port:
            cport = free_port()
        return cls(
            state_dir, port=port, controller_port=cport, jars=jars, die_with_parent=die_with_parent
        )

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    # ---- process bookkeeping

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        """Whether `pid` is alive and runs kafka.Kafka with this instance's properties file."""
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: its pid cannot be reused before we reap it, and its command
            # line reads empty for a few ms after exec.
            return self._proc.poll() is None
        args = _process_args(pid)
        return args is not None and _MAIN_CLASS in args and str(self.properties_file) in args

    def _running_pid(self) -> int | None:
        pid = self._recorded_pid()
        return pid if pid is not None and self._is_our_broker(pid) else None

    def _running_bootstrap(self) -> str | None:
        """The address the running broker was started with (may differ from this config's)."""
        try:
            props = read_server_properties(self.properties_file)
        except OSError:
            return None
        listener = props.get("advertised.listeners", "")
        return listener.split("://", 1)[1] if "://" in listener else None

    # ---- public API

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        bootstrap = self._running_bootstrap() if pid is not None else None
        answering = bootstrap is not None and _metadata_answers(
            bootstrap, timeout=2.0, security=self.config.client_config()
        )
        return BrokerStatus(pid is not None, answering, pid, bootstrap, self.log_file)

    def up(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return its bootstrap address once it
        answers a metadata request. A broker this call started is stopped again if it does
        not become ready within `timeout` seconds.
        """
        pid = self._running_pid()
        if pid is not None:
            bootstrap = self._running_bootstrap() or self.bootstrap
            self._wait_ready(bootstrap, pid, timeout, log_offset=0)
            return bootstrap
        self.pid_file.unlink(missing_ok=True)
        for port in (self.config.port, self.config.controller_port):
            if port_answers(self.config.host, port):
                raise LocalKafkaError(
                    f"{self.config.host}:{port} is already in use by another process; "
                    f"pick another port (--port or {ENV_PORT})"
                )
        java = find_java()
        self.jars.ensure()
        self._write_config()
        self._format_storage(java)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        proc = self._spawn(java)
        try:
            self._wait_ready(self.bootstrap, proc.pid, timeout, log_offset)
        except BaseException:
            self.down()
            raise
        return self.bootstrap

    def down(self, timeout: float = 20.0) -> bool:
        """Stop the recorded broker: SIGTERM, then SIGKILL after `timeout` seconds.

        Returns whether a broker was running. A pid file naming any other process (the
        broker died and its pid was reused) is removed without signalling anything.
        """
        pid = self._running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self._reap()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        clean_exit = self._wait_exit(pid, timeout)
        if not clean_exit:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self._adopt_class_archive(clean_exit)
        self.pid_file.unlink(missing_ok=True)
        self._reap()
        return True

    def kill(self) -> int | None:
        """SIGKILL the recorded broker, as a crash would (fault tests); returns its pid,
        None if it was not running. `up()` starts it again on the same data."""
        pid = self._running_pid()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 10.0)
        self._adopt_class_archive(clean_exit=False)
        self.pid_file.unlink(missing_ok=True)
        self._reap()
        return pid

    def wipe(self) -> None:
        """Delete the data dir (topics, offsets, cluster id). The broker must be down."""
        if self._running_pid() is not None:
            raise LocalKafkaError("the broker is running: stop it before wiping its data")
        shutil.rmtree(self.config.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30, offset: int = 0) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return "(no broker log)"
        return _tail_text(text, lines) or "(broker log is empty)"

    # ---- steps of up()

    def _write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(render_server_properties(self.config))
        self.log4j_file.write_text(render_log4j2_properties())

    def _java_base(self, java: str) -> list[str]:
        archive = self.jars.class_archive(java)
        share = [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []
        return [
            java,
            *share,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self.jars.classpath,
        ]

    def _format_storage(self, java: str) -> None:
        """Format the data dir for KRaft, once: an existing meta.properties means done."""
        if (self.config.data_dir / "meta.properties").exists():
            return
        cmd = [
            *self._java_base(java),
            _STORAGE_TOOL,
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties_file),
        ]
        for name, password in self.config.scram_users.items():
            cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            output = _tail_text(done.stdout + done.stderr, 30)
            raise LocalKafkaError(
                f"formatting {self.config.data_dir} failed (exit {done.returncode}):\n{output}"
            )

    def _spawn(self, java: str) -> subprocess.Popen[bytes]:
        archive = self.jars.class_archive(java)
        # No shared archive yet: this broker writes one when it exits (see _adopt_class_archive).
        dump_to = self.state_dir / archive.name
        # -Xlog:cds=off: the dump lists ~100 classes it skips, as warnings.
        dump = [] if archive.is_file() else [f"-XX:ArchiveClassesAtExit={dump_to}", "-Xlog:cds=off"]
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            *dump,
            *self._java_base(java)[1:],
            _MAIN_CLASS,
            str(self.properties_file),
        ]
        preexec = _die_with_parent_hook() if self.die_with_parent else None
        with self.log_file.open("ab") as log:
            log.write(f"=== slaclock: starting broker at {self.bootstrap}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # Ctrl-C in the starting shell does not reach it
                preexec_fn=preexec,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return self._proc

    def _wait_ready(self, bootstrap: str, pid: int, timeout: float, log_offset: int) -> None:
        host, _, port = bootstrap.rpartition(":")
        deadline = time.monotonic() + timeout
        while True:
            if not self._is_our_broker(pid):
                raise LocalKafkaError(
                    f"the Kafka broker (pid {pid}) exited during startup; "
                    f"{self.log_file} ends with:\n{self.log_tail(offset=log_offset)}"
                )
            # The TCP check first keeps librdkafka from logging "connection refused".
            if port_answers(host, int(port)) and _metadata_answers(
                bootstrap, timeout=2.0, security=self.config.client_config()
            ):
                return
            if time.monotonic() > deadline:
                raise LocalKafkaError(
                    f"the Kafka broker (pid {pid}) did not answer a metadata request at "
                    f"{bootstrap} within {timeout:.0f} s; {self.log_file} ends with:\n"
                    f"{self.log_tail(offset=log_offset)}"
                )
            time.sleep(0.2)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _process_args(pid) is None:
                return True
            time.sleep(0.1)
        return False

    def _adopt_class_archive(self, clean_exit: bool) -> None:
        """Move the class archive a stopped broker wrote into the shared jar cache.

        Only a JVM that exited by itself after SIGTERM has finished writing it; the rename
        makes it appear whole, and the first of several concurrent sessions wins.
        """
        for dumped in self.state_dir.glob("classes-*.jsa"):
            target = self.jars.libs / dumped.name
            if clean_exit and not target.exists():
                dumped.replace(target)
            else:
                dumped.unlink()

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


def _metadata_answers(
    bootstrap: str, timeout: float, security: Mapping[str, str] | None = None
) -> bool:
    """True when a broker at `bootstrap` answers a metadata request listing itself."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # log_level 0: startup probes are expected to fail; keep librdkafka quiet about it.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(security or {})})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _process_args(pid: int) -> str | None:
    """The command line of a live process, or None if there is no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else; its command line decides
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if "State:\tZ" in (proc / "status").read_text():
                return None
            return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    # No /proc (macOS): ask ps.
    done = subprocess.run(
        ["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout.strip()


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGKILL the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    parent = os.getpid()
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --------------------------------------------------------------------------- docker


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping. The `docker` client is often installed on
    machines with no engine, so neither the binary nor the SDK being importable is enough.
    """
    try:
        import docker
    except ImportError:
        return _docker_cli_answers(timeout)
    try:
        client = docker.from_env(timeout=max(int(timeout), 1))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _docker_cli_answers(timeout: float) -> bool:
    cli = shutil.which("docker")
    if cli is None:
        return False
    try:
        done = subprocess.run(
            [cli, "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=timeout
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode == 0
