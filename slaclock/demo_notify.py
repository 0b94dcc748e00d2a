"""`slaclock demo --notify`: notifications of the demo, arriving at a local receiver.

Starts a Slack-like receiver (an HTTP server on 127.0.0.1 in a thread) and `slaclock notify`
as a subprocess over the demo's output topics, with a routing file that sends breaches and
warnings at 75 % or more to the receiver. Each message the receiver gets becomes a line of
the demo's feed. The notifier's own topics (its delivered-table changelog and DLQ) are
deleted at exit with the demo's.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.text import Text

from slaclock.local_kafka import _die_with_parent_hook, free_port
from slaclock.processors.settings import Settings

__all__ = ["DemoNotifier"]

ROUTING = """\
targets:
  demo-slack: {kind: slack, url_env: DEMO_SLACK_URL}
routes:
  - {match: {type: sla.breach}, targets: [demo-slack]}
  - {match: {type: sla.warning, threshold_at_least: 0.75}, targets: [demo-slack]}
delivery: {initial_backoff_seconds: 0.5, max_backoff_seconds: 5, max_age_seconds: 300}
"""


class DemoNotifier:
    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path) -> None:
        self.settings = settings
        self.messages: queue.Queue[str] = queue.Queue()
        self.received = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}/slack"
        routing = log_dir / "notify.yaml"
        topics = [
            settings.topic_warnings,
            settings.topic_breaches,
            settings.topic_completions,
            settings.topic_credits,
        ]
        routing.write_text(ROUTING + "topics: [" + ", ".join(topics) + "]\n", encoding="utf-8")
        self.app_id = f"{settings.app_id}-notify"
        self.dlq = f"{settings.app_id}.sla.notifications.dlq"
        self.status_port = free_port()
        self.log_path = log_dir / "notify.log"
        child_env = {
            **env,
            "DEMO_SLACK_URL": url,
            "SLACLOCK_NOTIFY_PATH": str(routing),
            "SLACLOCK_NOTIFY_APP_ID": self.app_id,
            "SLACLOCK_NOTIFY_DLQ_TOPIC": self.dlq,
            "SLACLOCK_NOTIFY_HTTP_HOST": "127.0.0.1",
            "SLACLOCK_NOTIFY_HTTP_PORT": str(self.status_port),
            "SLACLOCK_NOTIFY_DATADIR": str(log_dir / "notify-data"),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from slaclock.cli import main; main()", "notify"],
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/notify/status"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        notifier = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with contextlib.suppress(ValueError, AttributeError):
                    notifier.messages.put(str(json.loads(body).get("text", "")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def lines(self) -> list[Text]:
        """The messages received since the last call, as feed lines."""
        lines: list[Text] = []
        while True:
            try:
                text = self.messages.get_nowait()
            except queue.Empty:
                return lines
            self.received += 1
            line = Text("  notified ", style="bold magenta")
            line.append(text.replace("*", ""))
            lines.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.server.shutdown()
        self.server.server_close()

    def delete_topics(self, timeout: float = 15.0) -> None:
        """Best effort, like the demo's own topics."""
        admin = AdminClient({**self.settings.kafka_config(), "log_level": 0})
        names = [self.dlq, f"{self.app_id}-delivered-changelog"]
        with contextlib.suppress(KafkaException):
            for future in admin.delete_topics(names, operation_timeout=timeout).values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout)
