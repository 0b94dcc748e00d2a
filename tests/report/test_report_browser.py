"""The HTML report in a real browser: headless Chromium renders it, takes a screenshot, logs
no console message, shows every chart with a size, and the page is not blank."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from PIL import Image

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.report.figures import ReportRequest, build_report
from slaclock.processors.report.outputs import outputs_from_records
from slaclock.processors.report.policy_info import policy_info
from slaclock.processors.report.render import chart_ids, report_chart_ids, report_html
from slaclock.schemas.policy import parse_policy
from tests.report.spec_outputs import story
from tests.report.workload import POLICY_YAML, known_events, replay_outputs

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

PROBE = """
<script>
(function () {
  var charts = Array.prototype.map.call(document.querySelectorAll("figure.chart"), function (f) {
    var svg = f.querySelector("svg");
    var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    var style = svg ? getComputedStyle(svg) : null;
    return {id: f.getAttribute("data-chart"), width: box.width, height: box.height,
            visible: !!style && style.visibility === "visible" && style.display !== "none"
                     && parseFloat(style.opacity) > 0,
            marks: svg ? svg.querySelectorAll("path, rect, use").length : 0};
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({charts: charts, text: document.body.innerText.length});
  document.body.appendChild(out);
})();
</script>
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs the Debian package)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    return found


def run_chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    outputs = [*replay_outputs(known_events()), *story()]
    info = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))
    report = build_report(outputs_from_records(outputs), ReportRequest(period="2026-10"), info, "t")
    page = tmp_path_factory.mktemp("browser") / "report.html"
    page.write_text(report_html(report), encoding="utf-8")
    expected = [chart for section in report.sections for chart in chart_ids(section)]
    return page, expected


def test_report_renders_in_chromium_without_console_messages(
    report_page: tuple[Path, list[str]], tmp_path: Path
) -> None:
    page, _ = report_page
    shot = page.parent / "report-screenshot.png"
    done = run_chromium(
        tmp_path,
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2600",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    print(f"\nreport screenshot: {shot}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2600)
    colours = image.getcolors(maxcolors=1 << 20) or []
    commonest = max(count for count, _ in colours)
    assert len(colours) > 100  # text, tables and charts, not a blank page
    assert commonest < 0.9 * image.size[0] * image.size[1]


def test_console_check_sees_a_page_error(tmp_path: Path) -> None:
    """The check above can fail: a page that logs an error is caught."""
    page = tmp_path / "noisy.html"
    page.write_text('<html><body>x<script>console.error("broken chart")</script></body></html>')
    done = run_chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    assert any("broken chart" in line for line in console_messages(done.stderr))


def test_every_chart_is_present_and_visible_in_chromium(
    report_page: tuple[Path, list[str]], tmp_path: Path
) -> None:
    page, expected = report_page
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    done = run_chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert match is not None, done.stdout[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [chart["id"] for chart in probe["charts"]] == expected
    assert any(c.endswith("-availability") for c in expected)
    assert any(c.endswith("-credits") for c in expected)
    for chart in probe["charts"]:
        assert chart["visible"], chart
        assert chart["width"] > 200 and chart["height"] > 80, chart
        assert chart["marks"] > 5, chart
    assert probe["text"] > 2000


WHATIF_PROBE = """
<script>
(function () {
  function rows(selector) {
    return Array.prototype.map.call(document.querySelectorAll(selector), function (r) {
      var box = r.getBoundingClientRect();
      return {key: r.getAttribute("data-rule") || r.getAttribute("data-move"),
              width: box.width, height: box.height, text: r.innerText};
    });
  }
  var sections = Array.prototype.map.call(document.querySelectorAll("section"), function (s) {
    return s.getAttribute("data-section") || (s.querySelector("h2") || {}).innerText;
  });
  var out = document.createElement("pre");
  out.id = "whatif-probe";
  out.textContent = JSON.stringify({sections: sections, rules: rows("tr[data-rule]"),
                                    moves: rows("tr[data-move]")});
  document.body.appendChild(out);
})();
</script>
"""


def test_whatif_page_shows_its_charts_in_chromium(tmp_path: Path) -> None:
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.policy_diff import diff_policies
    from slaclock.processors.report.whatif import calendar_projection, compare, outcomes_by_key
    from slaclock.processors.report.whatif_render import whatif_html
    from tests.report.workload import policy_yaml

    events = known_events()
    a, b = replay_outputs(events), replay_outputs(events, policy_yaml("30m"))
    policy_a = parse_policy(POLICY_YAML, "a.yaml")
    policy_b = parse_policy(policy_yaml("30m"), "b.yaml")
    comparison = compare(
        outcomes_by_key(a, calendar_projection(compile_policy(policy_a))),
        outcomes_by_key(b, calendar_projection(compile_policy(policy_b))),
    )
    comparison.rule_changes = diff_policies(policy_a, policy_b)
    assert comparison.moves and comparison.rule_changes
    meta = {
        "policy_a": "a.yaml",
        "policy_b": "b.yaml",
        "events": "e.jsonl",
        "until": None,
        "summary_a": "",
        "summary_b": "",
    }
    page = tmp_path / "whatif.html"
    html = whatif_html(comparison, meta)
    page.write_text(html.replace("</body>", PROBE + WHATIF_PROBE + "</body>"), encoding="utf-8")
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
    assert match is not None
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [c["id"] for c in probe["charts"]] == [
        "whatif-compliance",
        "whatif-breaches",
        "whatif-credits",
    ]
    assert all(c["visible"] and c["width"] > 200 and c["height"] > 80 for c in probe["charts"])
    # the rules that differ come first; the deadlines moved are listed next to the flipped
    # outcomes, one visible row per moved (ticket, metric, cycle)
    found = re.search(r'<pre id="whatif-probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found is not None
    whatif = json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&gt;", ">")
    )
    assert whatif["sections"][0] == "rules"
    assert whatif["sections"].index("deadlines") > 0
    assert [r["key"] for r in whatif["rules"]] == ["tiers.gold.targets.first_response.urgent"]
    assert "15m" in whatif["rules"][0]["text"] and "30m" in whatif["rules"][0]["text"]
    expected = [f"{m.ticket_id}|{m.metric}|{m.cycle}" for m in comparison.moves]
    assert [r["key"] for r in whatif["moves"]] == expected
    assert all(r["width"] > 200 and r["height"] > 5 for r in whatif["rules"] + whatif["moves"])


def test_by_group_section_renders_its_charts_in_chromium(tmp_path: Path) -> None:
    """A generated workload with groups, with its events: the By group section's three
    charts (compliance, hand-offs, customer breaches by holding group) are drawn and seen."""
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.explain_replay import HolderChange, replay_to
    from slaclock.processors.replay import replay
    from slaclock.processors.report.groups import add_groups
    from slaclock.schemas.policy import load_policy
    from slaclock.workload import WorkloadShape, ticket_events

    policy_path = Path(__file__).resolve().parents[2] / "benchmarks" / "policy-groups.yaml"
    policy = load_policy(policy_path)
    compiled = compile_policy(policy)
    shape = WorkloadShape(tickets=300, start=datetime(2026, 10, 1, tzinfo=UTC), seed=3)
    lines = [orjson.dumps(e) for e in ticket_events(replace(shape, spread_seconds=25 * 86_400))]
    outputs: list[dict[str, object]] = []
    replay(compiled, lines, outputs.append, lambda r: None, parse_instant("2026-11-05T00:00Z"))
    holders: list[HolderChange] = []
    replay_to(compiled, lines, None, None, holders)
    data = outputs_from_records(outputs)
    report = build_report(data, ReportRequest(period="2026-10"), policy_info(policy), "t")
    add_groups(report, data, policy_info(policy), holders)
    expected = report_chart_ids(report)
    assert expected[-3:] == ["groups-compliance", "groups-handoffs", "groups-held-breaches"]
    probed = tmp_path / "groups.html"
    probed.write_text(report_html(report).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = run_chromium(
        tmp_path,
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
        "--dump-dom",
        probed.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert match is not None, done.stdout[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [chart["id"] for chart in probe["charts"]] == expected
    for chart in probe["charts"][-3:]:
        assert chart["visible"], chart
        assert chart["width"] > 200 and chart["height"] > 80, chart
        assert chart["marks"] > 5, chart
