"""GET /services/{service_id} over real HTTP: the core's availability view of a service."""

from __future__ import annotations

import json
from typing import Any

from slaclock.processors.engine.services_stage import ServiceStage
from tests.core.service_builders import HOUR, ServiceHarness, T, plus, status_changed
from tests.unit.test_http_server import FakeView, request, serve, view


class ServicesView(FakeView):
    """The fake worker view, plus a services stage."""

    stage: ServiceStage

    def service_status(self, service_id: str) -> dict[str, Any] | None:
        return self.stage.status(service_id)

    def service_ids(self) -> list[str]:
        return sorted(self.stage.availability.services)


def test_a_service_shows_its_downtime_budget_left_and_when_the_budget_runs_out() -> None:
    fake = view(http_open_data=True)
    services = ServicesView(fake.settings)
    harness = ServiceHarness().feed(status_changed(T, "major_outage")).until(plus(T, HOUR))
    services.stage = harness.stage
    server = serve(services)
    try:
        status, _, body = request(server, "/services/portal")
        assert status == 200
        answer = json.loads(body)
        assert answer["status"] == "major_outage"
        assert answer["downtime_seconds"] == 3600
        assert answer["budget_left_seconds"] == 12_960 - 3600
        assert answer["budget_exhausted_at"] == plus(T, 12_960 * 1_000_000)
        status, _, body = request(server, "/services/nope")
        assert status == 404
        assert json.loads(body)["error"] == "unknown service"
    finally:
        server.stop()
