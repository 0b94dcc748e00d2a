"""The report's breach timelines (docs/semantics.md: Explanations): each breach of the HTML
list links to an SVG strip of its cycle, drawn from the same timeline `slaclock explain`
gives; `slaclock report --events` replays the events to get them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.report.figures import ReportRequest, build_report
from slaclock.processors.report.outputs import outputs_from_records
from slaclock.processors.report.policy_info import policy_info
from slaclock.processors.report.render import report_html
from slaclock.processors.report.timelines import BreachKey, breach_timelines
from slaclock.schemas.policy import parse_policy
from tests.core.builders import Harness, created, status
from tests.core.test_explain import POLICY, POLICY_YAML
from tests.report.test_report_browser import console_messages, run_chromium

AT = "2026-12-29T12:00:00Z"


def story() -> list[dict[str, Any]]:
    """Two December tickets of the Berlin office: one over the holidays, one paused."""
    return [
        created("2026-12-23T15:00:00Z", ticket="H-1", customer="x", event_id="h1"),
        created("2026-12-21T09:00:00Z", ticket="P-1", customer="x", event_id="p0"),
        status("2026-12-21T09:30:00Z", "pending", ticket="P-1", event_id="p1"),
        status("2026-12-22T09:00:00Z", "open", ticket="P-1", event_id="p2"),
    ]


def in_time_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: parse_instant(e["occurred_at"]))


def report_page(with_timelines: bool = True) -> tuple[str, dict[BreachKey, Any]]:
    harness = Harness(POLICY).feed(*in_time_order(story())).until(AT)
    outputs = harness.outputs
    info = policy_info(parse_policy(POLICY_YAML, "p.yaml"))
    report = build_report(outputs_from_records(outputs), ReportRequest(period="2026-12"), info, "t")
    keys = [(b.ticket_id, b.metric, b.cycle) for b in report.sections[0].breaches]
    timelines = breach_timelines(POLICY, harness.replayer.store, keys, parse_instant(AT))
    return report_html(report, timelines if with_timelines else None), timelines


def test_each_breach_links_to_a_strip_of_its_timeline() -> None:
    html, timelines = report_page()
    assert set(timelines) == {
        ("H-1", "first_response", 1),
        ("P-1", "first_response", 1),
        ("P-1", "resolution", 1),
    }
    strips = re.findall(r'<figure class="timeline" data-timeline="([^"]+)">', html)
    assert len(strips) == 2 * len(timelines)  # on the all-customers page and the customer's
    for strip in strips:
        assert f'<a href="#{strip}">' in html and f'id="{strip}"' in html
    holiday = re.search(r'id="all-timeline-H-1-first_response-1".*?</svg>', html, re.DOTALL)
    assert holiday is not None
    svg = holiday.group(0)
    assert svg.count('class="seg holiday"') == 2
    assert ">2026-12-24<" in svg and ">2026-12-25<" in svg
    assert 'class="deadline"' in svg and "deadline 2026-12-28T09:00:00Z" in svg
    paused = re.search(r'id="all-timeline-P-1-resolution-1".*?</svg>', html, re.DOTALL)
    assert paused is not None and 'class="seg paused"' in paused.group(0)
    assert "status pending" in paused.group(0)


def test_without_events_the_breach_list_has_no_strips() -> None:
    html, _ = report_page(with_timelines=False)
    assert 'class="timeline"' not in html and "Breached targets" in html


def test_report_events_flag_adds_the_timelines_and_needs_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in in_time_order(story())))
    outputs = tmp_path / "outputs.jsonl"
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "replay",
            "--policy",
            str(policy),
            "--events",
            str(events),
            "--until",
            AT,
            "--out",
            str(outputs),
        ],
    )
    assert done.exit_code == 0, done.stderr
    out = tmp_path / "r"
    args = ["report", "--outputs", str(outputs), "--period", "2026-12", "--out", str(out)]
    done = runner.invoke(app, [*args, "--policy", str(policy), "--events", str(events)])
    assert done.exit_code == 0, done.stderr
    html = (tmp_path / "r.html").read_text()
    assert html.count('<figure class="timeline"') == 6
    done = runner.invoke(app, [*args, "--events", str(events)])
    assert done.exit_code == 1 and "--events needs --policy" in done.stderr


TIMELINE_PROBE = """
<script>
(function () {
  var strips = Array.prototype.map.call(document.querySelectorAll("figure.timeline"), function (f) {
    var svg = f.querySelector("svg");
    var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    var line = svg ? svg.querySelector("line.deadline") : null;
    var lineBox = line ? line.getBoundingClientRect() : {height: 0};
    var kinds = {};
    Array.prototype.forEach.call(svg ? svg.querySelectorAll("rect.seg") : [], function (r) {
      var kind = r.getAttribute("class").split(" ")[1];
      kinds[kind] = (kinds[kind] || 0) + r.getBoundingClientRect().width;
    });
    var link = document.querySelector('a[href="#' + f.getAttribute("data-timeline") + '"]');
    return {id: f.getAttribute("data-timeline"), width: box.width, height: box.height,
            visible: !!svg && getComputedStyle(svg).visibility === "visible",
            deadline: lineBox.height, kinds: kinds, linked: !!link};
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(strips);
  document.body.appendChild(out);
})();
</script>
"""


def test_breach_timelines_are_drawn_and_linked_in_chromium(tmp_path: Path) -> None:
    html, timelines = report_page()
    page = tmp_path / "timelines.html"
    page.write_text(html.replace("</body>", TIMELINE_PROBE + "</body>"), encoding="utf-8")
    done = run_chromium(
        tmp_path,
        "--window-size=1280,2000",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert match is not None, done.stdout[-2000:]
    strips = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(strips) == 2 * len(timelines)
    for strip in strips:
        assert strip["visible"] and strip["linked"], strip
        assert strip["width"] > 300 and strip["height"] > 30, strip
        assert strip["deadline"] > 10, strip  # the deadline line is drawn
        assert strip["kinds"].get("counted", 0) > 1, strip
    holidays = [s for s in strips if "H-1-first_response" in s["id"]]
    assert holidays and all(s["kinds"].get("holiday", 0) > 50 for s in holidays)
    paused = [s for s in strips if "P-1-resolution" in s["id"]]
    assert paused and all(s["kinds"].get("paused", 0) > 5 for s in paused)
