"""The HTML status page (``status RUN_ID --html FILE``) on synthetic runs: what it shows, what it escapes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.config import parse_config
from shared.ledger import InMemoryLedger, StepStatus
from shared.notify import RecordingTransport
from shared.operator.charts import TimeScale, nice_max, seconds_label
from shared.operator.cli import main
from shared.operator.html import rollout_steps, status_page
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.status_page_runs import (
    CANDIDATE,
    DATA_RUN,
    HOSTILE,
    NOW,
    PUSH_RUN,
    STABLE,
    T0,
    Clock,
    canary_step,
    ledger_with_runs,
)

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def svgs(page: str) -> list[ET.Element]:
    """Each inline SVG, parsed as XML: a chart that is not well-formed fails here."""
    return [ET.fromstring(match) for match in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def titles(svg: ET.Element) -> list[str]:
    return [element.text or "" for element in svg.iter(f"{SVG}title")]


def texts(svg: ET.Element) -> list[str]:
    """The texts drawn (a ``<title>`` inside a text is its tooltip, not drawn)."""
    return [element.text or "" for element in svg.iter(f"{SVG}text")]


@pytest.fixture
def ledger() -> InMemoryLedger:
    return ledger_with_runs()


def push_page(ledger: InMemoryLedger) -> str:
    run = ledger.get_run(PUSH_RUN)
    assert run is not None
    return status_page(run, NOW)


def test_the_timeline_shows_the_chain_in_order_with_notifications_on_one_row(ledger: InMemoryLedger) -> None:
    page = push_page(ledger)
    gantt, *charts = svgs(page)

    assert gantt.get("class") == "gantt" and len(charts) == 3
    labels = [text for text in titles(gantt) if "·" not in text and not text.startswith("cause ")]
    assert labels == [
        "cause: push",
        "build:trainer",
        "build:server",
        "image:trainer",
        "image:server",
        "training:submitted",
        "training:state",
        "gate",
        "registry:version",
        "approval:decided",
        "rollout:started",
        "rollout:step:1",
        "rollout:step:2",
        "rollout:step:3",
        "rollout:step:4",
        "rollout:promoted",
        "notifications (3)",
    ]
    # The builds ran for 37 and 42 seconds: bars; the rest were recorded once: milestones.
    bars = [rect for rect in gantt.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert sorted(rect.findtext(f"{SVG}title", "").split(" · ")[0] for rect in bars) == [
        "build:server",
        "build:trainer",
    ]
    assert any("took 37.0s" in (rect.findtext(f"{SVG}title") or "") for rect in bars)
    # Notifications are dots on their own row, the failed delivery in red; none takes a row of its own.
    dots = list(gantt.iter(f"{SVG}circle"))
    assert len(dots) == 3 and "notifications (3)" in texts(gantt)
    failed = [dot for dot in dots if dot.get("fill") == "#b91c1c"]
    assert len(failed) == 1 and "HTTP 404" in (failed[0].findtext(f"{SVG}title") or "")
    # The two hours awaiting approval are a labelled break, so the rollout's seconds stay readable.
    axis = texts(gantt)
    assert "2h00m" in axis and "+0s" in axis and any(label.startswith("+2h04m") for label in axis)


def test_the_rollout_charts_show_each_revision_per_step_and_missing_data_as_missing(
    ledger: InMemoryLedger,
) -> None:
    page = push_page(ledger)
    _, traffic, errors, latency = svgs(page)

    assert [texts(chart)[0] for chart in (traffic, errors, latency)] == [
        "Traffic share",
        "5xx share",
        "p95 latency",
    ]
    candidate, stable = f"{CANDIDATE} (candidate)", f"{STABLE} (stable)"
    assert [text for text in titles(traffic) if text.startswith(candidate)] == [
        f"{candidate}: {value}" for value in ("10%", "10%", "50%", "100%")
    ]
    assert [text for text in titles(traffic) if text.startswith(stable)] == [
        f"{stable}: {value}" for value in ("90%", "90%", "50%", "0%")
    ]
    assert [text for text in titles(errors) if text.startswith(candidate)] == [
        f"{candidate}: {value}" for value in ("0%", "0%", "1.98%", "0.49%")
    ]
    # The candidate had no p95 in the inconclusive step, the stable none once it had no traffic left.
    assert titles(latency) == [
        f"{stable}: 41 ms",
        f"{stable}: 42 ms",
        f"{stable}: 44 ms",
        f"{stable}: no data",
        f"{candidate}: no data",
        f"{candidate}: 47 ms",
        f"{candidate}: 52 ms",
        f"{candidate}: 50 ms",
    ]
    # A missing value breaks the line: the candidate's p95 line joins steps 2 to 4 only.
    lines = [line.get("points", "") for line in latency.iter(f"{SVG}polyline")]
    assert sorted(len(points.split()) for points in lines) == [3, 3]
    axis = texts(latency)
    for label in ("1 · 10%", "2 · 10%", "3 · 50%", "4 · 100%", "inconclusive", "healthy"):
        assert label in axis


def test_the_rollout_section_says_how_it_ended_and_lists_the_numbers(ledger: InMemoryLedger) -> None:
    page = push_page(ledger)
    text = "".join(parsed(page).text)

    assert re.search(r"promoted\s*4 steps\s*· canary", text)
    assert "candidate: 12 requests < 20" in text  # the inconclusive step's reason
    assert "12 (6%)" in text and "205 (100%)" in text  # requests and their observed share
    assert text.count("no data") >= 3


def test_a_run_without_a_rollout_shows_its_timeline_and_says_so(ledger: InMemoryLedger) -> None:
    run = ledger.get_run(DATA_RUN)
    assert run is not None
    page = status_page(run, NOW)

    (gantt,) = svgs(page)  # no charts
    assert "No rollout yet." in page
    running = [rect for rect in gantt.iter(f"{SVG}rect") if rect.get("fill-opacity") == "0.55"]
    assert len(running) == 1 and "training:state · STARTED" in (running[0].findtext(f"{SVG}title") or "")
    assert "RUNNING" in page and "running for 1m00s" in page


def test_everything_from_the_ledger_is_escaped_and_nothing_is_loaded() -> None:
    clock = Clock()
    ledger = InMemoryLedger(clock=clock)
    ledger.start_run("push-hostile", cause={"cause": "<script>alert('cause')</script>", "repo": '"><b>x</b>'})
    hostile_step = canary_step(10, "healthy", (10, 0.0, 40.0), (10, 0.0, 41.0), ["<i>reason</i>"])
    hostile_step["result"]["revisions"][HOSTILE] = {"role": "candidate", "requests": 3, "share_5xx": 0.0}
    hostile_step["result"]["strategy"] = "</style><script>alert(1)</script>"
    clock.at(5)
    ledger.record_step("push-hostile", "rollout:step:1", StepStatus.SUCCEEDED, hostile_step)
    clock.at(6)
    ledger.record_step(
        "push-hostile",
        "gate</title><script>alert(2)</script>",
        StepStatus.FAILED,
        {"error": "</pre><img src=x onerror=alert(3)>"},
    )
    run = ledger.get_run("push-hostile")
    assert run is not None

    page = status_page(run, T0 + timedelta(seconds=10))

    tags = parsed(page)
    names = {tag for tag, _ in tags.tags}
    assert names <= {
        "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "span", "dl", "dt", "dd",
        "b", "code", "section", "h2", "p", "div", "i", "svg", "rect", "line", "text", "circle", "path",
        "polyline", "table", "tr", "th", "td", "ul", "li", "details", "summary", "pre", "footer",
    }  # fmt: skip
    attributes = {name for _, attrs in tags.tags for name in attrs}
    assert not any(name.startswith("on") for name in attributes)
    assert not attributes & {"src", "href", "xlink:href"}, "the page loads nothing"
    style = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in style and "@import" not in style
    text = "".join(tags.text)
    for shown in (
        HOSTILE,
        "<script>alert('cause')</script>",
        "</pre><img src=x onerror=alert(3)>",
        "<i>reason</i>",
    ):
        assert shown in text  # shown as text, not markup
    assert len(svgs(page)) == 4  # every SVG still well-formed XML


def test_rollout_values_of_the_wrong_type_are_missing_data_not_numbers() -> None:
    clock = Clock()
    ledger = InMemoryLedger(clock=clock)
    ledger.start_run("r-types", cause={"cause": "manual"})
    for number, percent in ((10, "ten"), (2, 50)):
        clock.at(number)
        detail = canary_step(50, "healthy", (5, 0.0, 30.0), (5, 0.0, 30.0))
        detail["result"]["percent"] = percent
        detail["result"]["revisions"][CANDIDATE].update({"requests": True, "share_5xx": "0", "p95_ms": None})
        detail["result"]["reasons"] = "not a list"
        ledger.record_step("r-types", f"rollout:step:{number}", StepStatus.SUCCEEDED, detail)
    run = ledger.get_run("r-types")
    assert run is not None

    steps = rollout_steps(run)

    assert [step.number for step in steps] == [2, 10]  # numerically, not as text
    assert [step.percent for step in steps] == [50.0, None]
    candidate = next(item for item in steps[0].revisions if item.name == CANDIDATE)
    assert (candidate.requests, candidate.share_5xx, candidate.p95_ms) == (None, None, None)
    assert steps[0].reasons == ()
    assert steps[1].traffic_share(candidate) is None
    page = status_page(run, T0 + timedelta(seconds=20))
    assert "2 · 50%" in page and "10 · ?%" in page


def test_the_time_axis_breaks_only_long_quiet_stretches() -> None:
    busy = TimeScale([0, 10, 40, 60], left=100, right=1100)
    assert busy.breaks == [] and busy.x(0) == 100 and busy.x(60) == 1100 and busy.x(30) == pytest.approx(600)

    # An approval awaited for 2 hours between a 5-minute chain and a 30-second rollout.
    scale = TimeScale([0, 300, 7500, 7530], left=100, right=1100)
    ((start, end, _),) = scale.breaks
    assert (start, end) == (300, 7500)
    xs = [scale.x(moment) for moment in (0, 150, 300, 4000, 7500, 7515, 7530)]
    assert xs == sorted(xs) and xs[0] == 100 and xs[-1] == 1100
    # The rollout's 30 seconds get at least a quarter of the drawn width, not 30/330 of it.
    rollout_width = scale.x(7530) - scale.x(7500)
    assert rollout_width >= 0.25 * (1000 - 64) - 0.01
    ticks = [tick.seconds for tick in scale.ticks()]
    assert ticks[0] == 0 and 7500 in ticks
    assert TimeScale([], 0, 100).x(0) == 0  # an empty run still has an axis


def test_labels_and_scales() -> None:
    assert [seconds_label(s) for s in (0, 45, 120, 90, 7200, 7494, 7515)] == [
        "+0s",
        "+45s",
        "+2m",
        "+1m30s",
        "+2h",
        "+2h04m54s",
        "+2h05m15s",
    ]
    assert [nice_max(v) for v in (0, 0.4, 1.98 * 1.1, 2.6, 45, 101)] == [1, 1, 2.5, 5, 50, 200]


# -- the command ---------------------------------------------------------------------------------------------


@pytest.fixture
def runtime(ledger: InMemoryLedger) -> Iterator[Runtime]:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "demo-project"}},
        "unit.yaml",
        env={},
    )
    test_runtime = Runtime(config, ledger, InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW)
    with use(test_runtime):
        yield test_runtime


@pytest.mark.usefixtures("runtime")
def test_status_html_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "status.html"

    code = main(["status", PUSH_RUN, "--html", str(target)])

    out = capsys.readouterr().out
    assert code == 0 and out.strip() == f"wrote the status page of {PUSH_RUN} to {target}"
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "rollout:step:4" in page and [p.name for p in tmp_path.iterdir()] == ["status.html"]

    assert main(["status", DATA_RUN, "--html", "-"]) == 0
    assert "No rollout yet." in capsys.readouterr().out


@pytest.mark.usefixtures("runtime")
def test_status_html_refuses_unknown_runs_and_unwritable_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "status.html"
    assert main(["status", "push-nope", "--html", str(target)]) == 2
    assert "no run 'push-nope'" in capsys.readouterr().err and not target.exists()

    assert main(["status", PUSH_RUN, "--html", str(tmp_path / "missing" / "status.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
