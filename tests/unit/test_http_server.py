"""The worker's HTTP server over a stand-in `WorkerView`, through real HTTP on loopback:
health, readiness, metrics, ticket status and routing, access control of the data
endpoints, HEAD, and immutable ticket snapshots."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from slaclock.processors.engine.group_view import AtRisk, order_at_risk
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.intake import decode_event
from slaclock.processors.live.http import (
    LiveWorkerView,
    StatusServer,
    TicketSnapshot,
    WorkerView,
    partition_for,
    versions_view,
)
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.live.store import MemoryTicketStore, RocksTicketStore, TicketStore
from slaclock.processors.settings import Settings, load_settings
from tests.core.builders import Harness, agent_reply, created, make_policy

POLICY = make_policy()
TOKEN = "s3cret-token-for-tests-0123456789"


class FakeDirectory:
    def __init__(self, partitions: int, owners: dict[int, str]) -> None:
        self.count = partitions
        self.owners = owners

    def partitions(self) -> int:
        return self.count

    def owner_of(self, partition: int) -> str | None:
        return self.owners.get(partition)


class FakeView:
    """A `WorkerView` whose answers the tests set."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.metrics = Metrics()
        self.live = True
        self.restored = {"tickets": False, "ledger": False}
        self.assigned: dict[str, list[int]] = {"tickets": [], "ledger": []}
        self.offsets: dict[int, int] = {}
        self.snapshots: dict[str, TicketSnapshot] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}  # group -> its open month (owned here)
        self.group_elsewhere: set[str] = set()  # defined groups another worker's ledger owns
        self.risky: dict[str, list[AtRisk]] = {}  # group -> this worker's tickets at risk

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def policy(self) -> CompiledPolicy:
        return POLICY

    @property
    def versions(self) -> PolicyBook:
        return PolicyBook(POLICY)

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.live, {"status": "ok" if self.live else "failing"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self.live and all(self.restored[s] and self.assigned[s] for s in self.assigned)
        return ready, {"ready": ready}

    def owned_partitions(self) -> list[int]:
        return self.assigned["tickets"]

    def assigned_counts(self) -> dict[str, int]:
        return {stage: len(partitions) for stage, partitions in self.assigned.items()}

    def processed_offsets(self) -> dict[int, int]:
        return self.offsets

    def ticket_snapshot(self, ticket_id: str) -> TicketSnapshot | None:
        return self.snapshots.get(ticket_id)

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        return self.customers.get(customer_id)

    def service_status(self, service_id: str) -> dict[str, Any] | None:
        return None

    def service_ids(self) -> list[str]:
        return []

    def policy_versions(self) -> dict[str, Any]:
        return versions_view(self.versions, 0)

    def group_names(self) -> list[str]:
        return sorted(set(self.groups) | self.group_elsewhere)

    def group_view(self, group: str, at_risk: list[AtRisk]) -> dict[str, Any] | None:
        if group in self.group_elsewhere:
            raise LookupError(group)
        found = self.groups.get(group)
        return None if found is None else {**found, "at_risk": order_at_risk(at_risk)}

    def group_at_risk(self, group: str) -> tuple[list[int], list[AtRisk]]:
        return self.assigned["tickets"], list(self.risky.get(group, []))


def view(**settings: Any) -> FakeView:
    fake = FakeView(load_settings(http_host="127.0.0.1", http_port=0, **settings))
    assert isinstance(fake, WorkerView)
    return fake


def serve(fake: FakeView, directory: FakeDirectory | None = None) -> StatusServer:
    server = StatusServer(fake, directory or FakeDirectory(4, {}))
    server.start()
    return server


@pytest.fixture
def open_view() -> FakeView:
    """Data endpoints opened explicitly, as the demo does."""
    return view(http_open_data=True)


def request(
    server: StatusServer, path: str, method: str = "GET", token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    call = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", method=method, headers=headers
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(call, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ticket_in(partition: int, partitions: int = 4, prefix: str = "T") -> str:
    return next(
        f"{prefix}{i}"
        for i in range(10_000)
        if partition_for(f"{prefix}{i}", partitions) == partition
    )


def snapshot_of(ticket: str, partition: int, clock: str) -> TicketSnapshot:
    harness = Harness().feed(created("2026-03-02T09:00:00Z", ticket=ticket))
    store = MemoryTicketStore()
    for key, state in harness.replayer.store.items():
        store[key] = state
    store.flush(parse_instant(clock))
    record, published_clock = store.published(ticket)
    assert record is not None
    return TicketSnapshot(partition, record, published_clock)


# -- probes and metrics ---------------------------------------------------------------------


def test_health_is_ok_while_the_worker_is_live_and_503_once_it_is_not() -> None:
    fake = view()
    server = serve(fake)
    try:
        status, _, body = request(server, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        fake.live = False
        status, _, body = request(server, "/health")
        assert status == 503 and json.loads(body)["status"] == "failing"
    finally:
        server.stop()


def test_ready_only_once_both_stages_restored_an_assignment() -> None:
    fake = view()
    server = serve(fake)
    try:
        assert request(server, "/ready")[0] == 503
        fake.restored["tickets"] = True
        fake.assigned["tickets"] = [0, 1]
        assert request(server, "/ready")[0] == 503  # the ledger is still restoring
        fake.restored["ledger"] = True
        fake.assigned["ledger"] = [0]
        assert request(server, "/ready")[0] == 200
    finally:
        server.stop()


def test_metrics_are_prometheus_text_with_lag_per_owned_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = view()
    fake.assigned["tickets"] = [2]
    fake.offsets[2] = 7
    fake.metrics.event("ticket.created")
    server = serve(fake)
    monkeypatch.setattr(server.lag, "_watermarks", lambda tp: (0, 10))
    try:
        status, headers, body = request(server, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples[("slaclock_events_total", (("type", "ticket.created"),))] == 1
        assert samples[("slaclock_consumer_lag_records", (("partition", "2"),))] == 3
        assert samples[("slaclock_assigned_partitions", (("stage", "tickets"),))] == 1
    finally:
        server.stop()


# -- tickets and routing --------------------------------------------------------------------


def test_ticket_held_here_is_answered_as_of_its_partition_clock(open_view: FakeView) -> None:
    open_view.snapshots["T/1"] = snapshot_of("T/1", 3, "2026-03-02T09:20:00Z")
    server = serve(open_view)
    try:
        status, _, body = request(server, "/tickets/T%2F1")
        assert status == 200
        answer = json.loads(body)
        assert answer["ticket_id"] == "T/1" and answer["partition"] == 3
        assert answer["as_of"] == "2026-03-02T09:20:00Z"
        assert answer["metrics"]["first_response"]["counted_seconds"] == 1200
    finally:
        server.stop()


def test_unknown_ticket_in_an_owned_partition_is_404(open_view: FakeView) -> None:
    open_view.assigned["tickets"] = [1]
    server = serve(open_view, FakeDirectory(4, {1: "http://elsewhere:6066"}))
    try:
        status, _, body = request(server, f"/tickets/{ticket_in(1)}")
        assert status == 404 and json.loads(body)["error"] == "unknown ticket"
    finally:
        server.stop()


def test_ticket_of_another_workers_partition_redirects_to_its_owner(open_view: FakeView) -> None:
    open_view.assigned["tickets"] = [0]
    server = serve(open_view, FakeDirectory(4, {2: "http://w2:6066"}))
    try:
        ticket = ticket_in(2)
        status, headers, _ = request(server, f"/tickets/{ticket}?verbose=1")
        assert status == 307
        assert headers["Location"] == f"http://w2:6066/tickets/{ticket}"
        status, headers, _ = request(server, f"/tickets/{ticket_in(3)}")
        assert status == 503 and headers["Retry-After"] == "1"  # nobody owns partition 3
    finally:
        server.stop()


def test_unknown_path_is_404(open_view: FakeView) -> None:
    server = serve(open_view)
    try:
        assert request(server, "/nope")[0] == 404
        assert request(server, "/tickets/")[0] == 404
    finally:
        server.stop()


# -- access control -------------------------------------------------------------------------

DATA_PATHS = [
    "/tickets/T-1",
    "/customers/acme",
    "/groups/tier1",
    "/groups/tier1/at-risk",
    "/services/portal",
    "/anything-else",
]


@pytest.mark.parametrize("path", DATA_PATHS)
def test_data_endpoints_are_refused_when_no_token_is_configured(path: str) -> None:
    server = serve(view())
    try:
        status, _, body = request(server, path)
        assert status == 403
        assert "SLACLOCK_HTTP_TOKEN" in json.loads(body)["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("path", DATA_PATHS)
def test_data_endpoints_need_the_bearer_token_when_one_is_configured(path: str) -> None:
    server = serve(view(http_token=TOKEN, http_open_data=True))  # the token wins
    try:
        status, headers, _ = request(server, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        status, headers, _ = request(server, path, token=TOKEN[:-1] + "x")
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert request(server, path, token=TOKEN)[0] not in (401, 403)
    finally:
        server.stop()


def test_a_configured_token_opens_the_customer_endpoint_too() -> None:
    fake = view(http_token=TOKEN)
    fake.customers["acme"] = {"customer_id": "acme"}
    server = serve(fake)
    try:
        assert request(server, "/customers/acme")[0] == 401
        status, _, body = request(server, "/customers/acme", token=TOKEN)
        assert status == 200 and json.loads(body)["customer_id"] == "acme"
    finally:
        server.stop()


def test_a_configured_token_is_accepted_on_the_ticket_endpoint() -> None:
    fake = view(http_token=TOKEN)
    fake.snapshots["T-1"] = snapshot_of("T-1", 0, "2026-03-02T09:05:00Z")
    server = serve(fake)
    try:
        status, _, body = request(server, "/tickets/T-1", token=TOKEN)
        assert status == 200 and json.loads(body)["ticket_id"] == "T-1"
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probes_and_metrics_stay_open_whatever_the_token(path: str) -> None:
    fake = view(http_token=TOKEN)
    fake.restored = {"tickets": True, "ledger": True}
    fake.assigned = {"tickets": [0], "ledger": [0]}
    server = serve(fake)
    try:
        assert request(server, path)[0] == 200
    finally:
        server.stop()


def test_the_token_is_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("SLACLOCK_HTTP_TOKEN_FILE", str(secret))
    monkeypatch.delenv("SLACLOCK_HTTP_TOKEN", raising=False)
    server = serve(view())
    try:
        assert request(server, "/tickets/T-9")[0] == 401
        assert request(server, "/tickets/T-9", token=TOKEN)[0] == 503  # owner unknown
    finally:
        server.stop()


# -- methods ----------------------------------------------------------------------------------


def test_head_answers_like_get_without_a_body(open_view: FakeView) -> None:
    open_view.snapshots["T-1"] = snapshot_of("T-1", 0, "2026-03-02T09:05:00Z")
    server = serve(open_view)
    try:
        get_status, get_headers, get_body = request(server, "/tickets/T-1")
        status, headers, body = request(server, "/tickets/T-1", method="HEAD")
        assert (status, body) == (get_status, b"")
        assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))
        assert request(server, "/health", method="HEAD")[0] == 200
    finally:
        server.stop()


def test_other_methods_are_not_allowed(open_view: FakeView) -> None:
    server = serve(open_view)
    try:
        status, headers, _ = request(server, "/tickets/T-1", method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    finally:
        server.stop()


def test_options_and_trace_are_not_allowed_either_and_answer_json(open_view: FakeView) -> None:
    server = serve(open_view)
    try:
        for method in ("OPTIONS", "TRACE"):
            status, headers, body = request(server, "/health", method=method)
            assert (status, headers["Allow"]) == (405, "GET, HEAD"), method
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body) == {"error": f"{method} is not supported"}
    finally:
        server.stop()


def test_an_unknown_method_answers_json_not_an_html_page(open_view: FakeView) -> None:
    server = serve(open_view)
    try:
        status, headers, body = request(server, "/health", method="BREW")
        assert status == 501
        assert headers["Content-Type"] == "application/json"
        assert "BREW" in json.loads(body)["error"]
    finally:
        server.stop()


# -- immutable snapshots ------------------------------------------------------------------------


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TicketStore]:
    kind: TicketStore = (
        MemoryTicketStore()
        if request.param == "memory"
        else RocksTicketStore.fresh(tmp_path / "tickets-0")
    )
    yield kind
    kind.destroy()


def apply(stage: TicketStage, event: dict[str, Any]) -> None:
    stage.on_event(decode_event(json.dumps(event)), parse_instant(event["occurred_at"]))


def test_the_published_snapshot_shows_the_last_flushed_batch_not_the_open_one(
    store: TicketStore,
) -> None:
    stage = TicketStage(TicketEngine(POLICY), store, 0, 0)
    apply(stage, created("2026-03-02T09:00:00Z", ticket="T-1"))
    assert store.published("T-1") == (None, None)  # nothing flushed yet
    store.flush(parse_instant("2026-03-02T09:00:00Z"))
    before, clock = store.published("T-1")
    assert before is not None and clock == parse_instant("2026-03-02T09:00:00Z")
    apply(stage, agent_reply("2026-03-02T09:05:00Z", ticket="T-1"))
    assert store.published("T-1") == (before, clock)  # the open batch is not shown
    changes = dict(store.flush(parse_instant("2026-03-02T09:05:00Z")))
    after, _ = store.published("T-1")
    assert after == changes["T-1"] and after != before


def test_snapshots_read_while_the_stage_thread_writes_are_always_whole(
    store: TicketStore,
) -> None:
    """A reader on another thread decodes every snapshot it gets while batches go on."""
    stage = TicketStage(TicketEngine(POLICY), store, 0, 0)
    stop = threading.Event()
    seen: list[int] = []
    problems: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            record, _ = store.published("T-1")
            if record is not None:
                try:
                    seen.append(len(json.loads(record)))
                except BaseException as error:
                    problems.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        apply(stage, created("2026-03-02T09:00:00Z", ticket="T-1"))
        for minute in range(1, 200):
            at = f"2026-03-02T{9 + minute // 60:02d}:{minute % 60:02d}:00Z"
            apply(stage, agent_reply(at, ticket="T-1", event_id=f"r{minute}"))
            store.flush(parse_instant(at))
    finally:
        stop.set()
        reader.join()
    assert problems == [] and seen


# -- the view over a real worker's parts ---------------------------------------------------------


def worker_parts(broker_up: bool) -> SimpleNamespace:
    stop = threading.Event()
    threads = [
        SimpleNamespace(name=n, is_alive=lambda: True) for n in ("tickets", "ledger", "ticker")
    ]

    def loop(partitions: set[int]) -> SimpleNamespace:
        ready = threading.Event()
        ready.set()
        return SimpleNamespace(assigned=partitions, assigned_lock=threading.Lock(), ready=ready)

    return SimpleNamespace(
        stop=stop,
        failure=None,
        threads=threads,
        tickets=loop({0, 1}),
        ledger=loop({0}),
        broker_up=broker_up,
    )


def test_a_worker_is_not_ready_while_its_broker_is_unreachable() -> None:
    up = LiveWorkerView(worker_parts(broker_up=True))  # type: ignore[arg-type]
    assert up.readiness()[0] and up.health()[0]
    down = LiveWorkerView(worker_parts(broker_up=False))  # type: ignore[arg-type]
    ready, body = down.readiness()
    assert not ready and body["broker_up"] is False
    assert down.health()[0], "an outage is ridden out: still live"


def test_get_policy_lists_the_versions_and_the_one_in_force() -> None:
    fake = view(http_open_data=True)
    server = serve(fake)
    try:
        status, _, body = request(server, "/policy")
        assert status == 200
        answer = json.loads(body)
        assert answer["in_force"] == "1"
        assert [v["version"] for v in answer["versions"]] == ["1"]
        assert answer["versions"][0]["first"] is True
    finally:
        server.stop()


# -- GET /groups/{group} ---------------------------------------------------------------------


def risky(ticket: str, deadline: str) -> AtRisk:
    return {
        "ticket_id": ticket,
        "customer_id": "acme",
        "priority": "high",
        "metric": "group_response",
        "cycle": 1,
        "started_at": "2026-03-02T09:00:00Z",
        "elapsed_seconds": 1500,
        "target_seconds": 1800,
        "deadline": deadline,
        "breached": False,
    }


def test_an_unknown_group_is_404_with_a_one_line_error(open_view: FakeView) -> None:
    open_view.groups["tier1"] = {"group": "tier1"}
    server = serve(open_view)
    try:
        status, _, body = request(server, "/groups/sales")
        assert status == 404
        assert json.loads(body) == {"error": "unknown group", "group": "sales"}
    finally:
        server.stop()


def test_a_group_answers_its_month_with_the_tickets_at_risk_of_every_worker() -> None:
    """The group's owner adds the other workers' share (asked over HTTP, with the token) to
    its own, most urgent first, and names the partitions nobody answered for."""
    peer = view(http_token=TOKEN)
    peer.assigned["tickets"] = [2]
    peer.risky["tier1"] = [risky("T-peer", "2026-03-02T09:31:00Z")]
    peer_server = serve(peer)
    owner = view(http_token=TOKEN)
    owner.assigned["tickets"] = [0, 1]
    owner.groups["tier1"] = {"group": "tier1", "open_period": {"holds": 3}}
    owner.risky["tier1"] = [risky("T-here", "2026-03-02T09:35:00Z")]
    peer_url = f"http://127.0.0.1:{peer_server.port}"
    server = serve(owner, FakeDirectory(4, {2: peer_url}))  # partition 3: no owner yet
    try:
        status, _, body = request(server, "/groups/tier1", token=TOKEN)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["open_period"] == {"holds": 3}
        assert [(e["ticket_id"], e["deadline"]) for e in answer["at_risk"]] == [
            ("T-peer", "2026-03-02T09:31:00Z"),
            ("T-here", "2026-03-02T09:35:00Z"),
        ]
        assert answer["at_risk_missing_partitions"] == [3]
    finally:
        server.stop()
        peer_server.stop()


class MeetingView(FakeView):
    """A peer that answers for its tickets at risk only once every peer has been asked: a
    group's owner that asked its peers one after another would never get past the first."""

    def __init__(self, settings: Settings, meeting: threading.Barrier) -> None:
        super().__init__(settings)
        self.meeting = meeting

    def group_at_risk(self, group: str) -> tuple[list[int], list[AtRisk]]:
        self.meeting.wait()
        return super().group_at_risk(group)


def test_a_group_asks_every_other_worker_at_once() -> None:
    meeting = threading.Barrier(2, timeout=2.0)  # well inside the peer timeout (5 s)
    peers = []
    for partition, ticket in ((2, "T-two"), (3, "T-three")):
        settings = load_settings(http_host="127.0.0.1", http_port=0, http_open_data=True)
        peer = MeetingView(settings, meeting)
        peer.assigned["tickets"] = [partition]
        peer.risky["tier1"] = [risky(ticket, f"2026-03-02T09:3{partition}:00Z")]
        peers.append(serve(peer))
    owner = view(http_open_data=True)
    owner.assigned["tickets"] = [0, 1]
    owner.groups["tier1"] = {"group": "tier1"}
    urls = {p: f"http://127.0.0.1:{s.port}" for p, s in zip((2, 3), peers, strict=True)}
    server = serve(owner, FakeDirectory(4, urls))
    try:
        status, _, body = request(server, "/groups/tier1")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["at_risk_missing_partitions"] == []
        assert sorted(e["ticket_id"] for e in answer["at_risk"]) == ["T-three", "T-two"]
    finally:
        server.stop()
        for peer_server in peers:
            peer_server.stop()
