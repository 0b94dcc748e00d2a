"""Real local HTTP servers that behave like the three target kinds, recording every request.

`Receiver(kind)` listens on 127.0.0.1 on a free port in a thread. Each request is recorded
(arrival instant from `time.time()`, path, headers, JSON body) and answered like the real
service: a webhook with 200, Slack with 200 `ok`, PagerDuty's Events API v2 with 202 and
`{"status": "success", "message": "Event processed", "dedup_key": ...}` (400 `invalid event`
when the body lacks what the API requires). `script` gives answers to use first, in order:
`(status, headers)`, e.g. `[(500, {}), (500, {})]`; `delay` seconds before each answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["webhook", "slack", "pagerduty"]


@dataclass(frozen=True)
class Received:
    at: float  # unix seconds, when the request arrived
    path: str
    headers: Mapping[str, str]
    body: Any
    status: int  # what the receiver answered


class Receiver:
    def __init__(
        self,
        kind: Kind,
        script: list[tuple[int, dict[str, str]]] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.kind = kind
        self.delay = delay
        self.script = list(script or [])
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                at = time.time()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                if receiver.delay:
                    time.sleep(receiver.delay)  # a slow receiver: requests stay in flight
                status, headers, answer = receiver._answer(body)
                with receiver.lock:
                    receiver.in_flight -= 1
                with receiver.lock:
                    receiver.requests.append(
                        Received(at, self.path, dict(self.headers.items()), body, status)
                    )
                payload = answer.encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender was killed while waiting: it will send again

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.kind}"

    def _answer(self, body: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            if self.script:
                status, headers = self.script.pop(0)
                return status, headers, f"scripted {status}"
        if self.kind == "slack":
            return 200, {"Content-Type": "text/plain"}, "ok"
        if self.kind == "pagerduty":
            problems = _pagerduty_problems(body)
            if problems:
                answer = {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                }
                return 400, {"Content-Type": "application/json"}, json.dumps(answer)
            answer = {
                "status": "success",
                "message": "Event processed",
                "dedup_key": body["dedup_key"],
            }
            return 202, {"Content-Type": "application/json"}, json.dumps(answer)
        return 200, {"Content-Type": "application/json"}, "{}"

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def accepted(self) -> list[Received]:
        return [r for r in self.received() if 200 <= r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pagerduty_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = []
    if not body.get("routing_key"):
        problems.append("'routing_key' is missing or blank")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("'event_action' must be trigger, acknowledge or resolve")
    if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        problems.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            problems.append("'payload' is missing")
        else:
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    problems.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                problems.append("'payload.severity' is invalid")
    if len(str(body.get("dedup_key", ""))) > 255:
        problems.append("'dedup_key' is longer than 255 characters")
    return problems
