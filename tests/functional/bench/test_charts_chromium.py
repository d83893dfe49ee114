"""The bench's charts as a person sees them: headless Chromium draws each SVG the report writes, as an image
in a page (the way docs/performance.md shows it), and the screenshot is checked for what an eye would
notice: a blank chart, missing bars, text missing or running off the canvas, text drawn over a bar.

Skipped, saying why, where Chromium is not installed (Debian: ``apt-get install -y chromium``); CI does not
install it, so this runs on machines that have it. The screenshots are kept in the test's tmp_path and
copied to /tmp/bench-chart-shots/ to look at.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pytest

from bench import charts, report
from bench.chain_cases import FUNCTIONS
from tests.chromium import CHROMIUM, screenshot
from tests.unit.bench.test_report import measured_end_to_end, synthetic, with_chain

pytestmark = pytest.mark.functional

SHOTS = Path("/tmp/bench-chart-shots")
SVG = "{http://www.w3.org/2000/svg}"
PAD = 40  # page background around the chart on every side
PAGE_BACKGROUND = (0xC8, 0xCC, 0xD2)
WHITE = (255, 255, 255)
CHARTS = (
    "before-after.svg",
    "burst.svg",
    "cold-start.svg",
    "end-to-end.svg",
    "hot-path.svg",
    "scale-runs.svg",
    "scale-senders.svg",
)
CHAIN = FUNCTIONS


def realistic() -> dict[str, Any]:
    """A full run's results, shaped and sized like a real one: every function, both pushes, three tiers."""
    results = with_chain(synthetic())
    results["machine"] = {"cores": 2, "python": "3.11.7", "date": "2026-12-01 01:27 UTC"}
    results["baselines"] = {
        "firestore_creates": {"rate": 321.0},
        "bare_host": {"rate": 454.0},
        "bare_push": {"rate": 263.0},
    }
    cold = {
        "notify": 1.17,
        "on_approval": 0.93,
        "on_build_status": 1.49,
        "on_chat_approval": 1.22,
        "on_data_object": 1.30,
        "on_drift_alert": 1.22,
        "on_git_push": 1.67,
        "on_training_state": 1.43,
        "reconcile": 2.32,
        "start_rollout": 1.63,
        "start_training": 2.03,
    }
    results["cold_start"] = {
        "bare_seconds": 0.362,
        "functions": {name: {"seconds": s, "ratio": s / 0.362} for name, s in cold.items()},
    }
    hot = results["hot_path"]
    hot["notify"]["per_event"] = {"reads": 1.0, "writes": 7.0, "round_trips": 8.0}
    hot["notify"]["per_event_shared_run"] = {"reads": 0.1, "writes": 6.0, "round_trips": 6.1}
    hot["notify"].update(host={"rate": 38.0}, host_shared_run={"rate": 49.0}, push={"rate": 27.0})
    burst = {"events": 1000, "concurrency": 10, "rate": 91.0, "training_runs": 1}
    hot["on_data_object"] = {"per_event": {"reads": 0.15, "writes": 1.0, "round_trips": 1.15}, "host": burst}
    for name, writes, rate in zip(
        CHAIN, (4.0, 3.0, 6.0, 5.0, 3.0, 5.0), (38.0, 75.0, 51.0, 62.0, 34.0, 32.0), strict=True
    ):
        hot.setdefault(name, {}).update(
            {
                "path": "in-process, 8 threads, fake Google ports",
                "per_event": {"reads": 3.0, "writes": writes, "round_trips": writes + 3.0},
                "in_process": {"events": 100, "concurrency": 8, "rate": rate},
            }
        )
    hot["on_drift_alert"]["in_process_shared_run"] = {"events": 100, "concurrency": 8, "rate": 76.0}
    results["burst"] = burst
    results["scale"] = {
        "notify_senders": {"1": {"rate": 33.0}, "10": {"rate": 47.0}, "100": {"rate": 44.0}},
        "burst_senders": {
            "1": {"events": 100, "rate": 66.0, "training_runs": 1},
            "10": burst,
            "100": {"events": 500, "rate": 60.0, "training_runs": 1},
        },
        "runs": [
            _tier(10, 13, 0.245, 0.091),
            _tier(1000, 20, 0.275, 0.067),
            _tier(100000, 20, 0.281, 0.072),
        ],
    }
    results["end_to_end"] = measured_end_to_end()
    return results


def _tier(finished: int, listed: int, listing: float, tick: float) -> dict[str, Any]:
    return {
        "finished_runs": finished,
        "runs_listed": listed,
        "runs_listing_seconds": listing,
        "runs_listing_reads": listed,
        "tick_seconds": tick,
        "tick_reads": 3,
    }


def before() -> dict[str, Any]:
    """A run before the improvements, shaped as bench/results-before.json: no chain functions, no item 4."""
    return {
        "machine": {"cores": 2, "python": "3.11.7", "date": "2026-11-30 23:07 UTC"},
        "hot_path": {
            "notify": {
                "per_event": {"reads": 10.0, "writes": 7.0, "round_trips": 17.0},
                "per_event_shared_run": {"reads": 8.1, "writes": 6.05, "round_trips": 14.15},
            },
            "on_data_object": {"per_event": {"reads": 13.5, "writes": 3.0, "round_trips": 16.5}},
        },
        "burst": {"events": 1000, "concurrency": 10, "rate": 2.91, "training_runs": 72},
        "end_to_end": {"measured": False, "why": "not measured then"},
    }


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-charts")
    report.write(report.with_ratios(realistic()), out / "results.json", out / "charts", before())
    return out / "charts"


def test_the_report_writes_a_chart_per_item_and_the_before_after(chart_dir: Path) -> None:
    assert sorted(path.name for path in chart_dir.iterdir()) == list(CHARTS)


@dataclass(frozen=True)
class Text:
    """A text element of the chart, with the box its estimated width gives it (chart coordinates)."""

    content: str
    left: int
    right: int
    top: int
    bottom: int


def texts(root: ElementTree.Element) -> list[Text]:
    out = []
    for element in root.iter(f"{SVG}text"):
        content = element.text or ""
        size = int(element.get("font-size", "13"))
        x, y = float(element.get("x", 0)), float(element.get("y", 0))
        width = charts.text_width(content, size)
        left = x - width if element.get("text-anchor") == "end" else x
        out.append(Text(content, int(left), int(left + width) + 1, int(y - size), int(y + 4)))
    return out


@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium); the charts' content is "
    "covered by tests/unit/bench/test_report.py",
)
@pytest.mark.parametrize("name", CHARTS)
def test_chromium_draws_the_chart_whole_and_readable(name: str, chart_dir: Path, tmp_path: Path) -> None:
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow reads the screenshot (requirements-dev.txt)"
    )
    svg = chart_dir / name
    root = ElementTree.parse(svg).getroot()
    width, height = int(root.get("width", 0)), int(root.get("height", 0))
    page, png = tmp_path / "page.html", tmp_path / f"{svg.stem}.png"
    shutil.copyfile(svg, tmp_path / name)
    page.write_text(
        '<!doctype html><html><body style="margin:0;background:#c8ccd2">'
        f'<img src="{name}" alt="{name}" style="display:block;margin:{PAD}px"></body></html>'
    )

    screenshot(
        page, png, tmp_path / "profile", width + 2 * PAD, height + 2 * PAD, "--force-device-scale-factor=1"
    )
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(png, SHOTS / png.name)

    with image_module.open(png) as opened:
        shot = numpy.asarray(opened.convert("RGB"), dtype=numpy.int16)
    assert shot.shape == (height + 2 * PAD, width + 2 * PAD, 3)
    # The chart sits where the page puts it, at its own size: around it, only the page's background.
    frame = numpy.ones(shot.shape[:2], dtype=bool)
    frame[PAD : PAD + height, PAD : PAD + width] = False
    assert (_near(shot, PAGE_BACKGROUND, 2) | ~frame).all(), "the page around the chart is not plain"
    chart = shot[PAD : PAD + height, PAD : PAD + width]
    white = _near(chart, WHITE, 0)
    # Not blank: besides the white canvas, a good share of the pixels is ink.
    assert 1 - white.mean() > 0.03, f"{name} looks blank"
    # Nothing cut off: a white margin runs round the canvas's edges, so no label or value reaches them.
    for edge, strip in {
        "left": white[:, :8],
        "right": white[:, -8:],
        "top": white[:6],
        "bottom": white[-3:],
    }.items():
        assert strip.all(), f"{name}: something is drawn into the {edge} edge (cut off?)"

    lines = [round(float(line.get("x1", 0))) for line in root.iter(f"{SVG}line")]
    bars = [rect for rect in root.iter(f"{SVG}rect")][1:]  # the first is the canvas
    assert bars, name
    for rect in bars:
        # Every bar is drawn where the SVG puts it, at its size and in its colour (inside its anti-aliased
        # edges and away from the dashed goal line over it); a bar too thin for an inside is at least there.
        left, top, right, bottom = _box(rect)
        colour = _near(chart[top:bottom, left:right], _rgb(rect.get("fill", "")), 3)
        inside = numpy.ones(colour.shape, dtype=bool)
        for x in lines:
            inside[:, max(0, x - 1 - left) : max(0, x + 2 - left)] = False
        if right - left >= 3 and inside.any():
            share = colour[1:-1, 1:-1][inside[1:-1, 1:-1]].mean()
            assert share > 0.97, f"{name}: a {rect.get('fill')} bar at x={left} is {share:.0%} drawn"
        else:
            assert not white[top:bottom, left:right].all(), f"{name}: the thin bar at x={left} is missing"

    ink = _ink(chart)
    for x in lines:  # the dashed goal line is not text
        ink[:, max(0, x - 2) : x + 3] = False
    boxes = texts(root)
    assert boxes, name
    laid_out = numpy.zeros(ink.shape, dtype=bool)
    for text in boxes:
        box = ink[max(0, text.top) : text.bottom, max(0, text.left) : text.right]
        glyphs = sum(1 for char in text.content if not char.isspace())
        assert box.sum() >= 4 * glyphs, f"{name}: {text.content!r} is not drawn"
        laid_out[max(0, text.top) : text.bottom, max(0, text.left) : text.right] = True
        for rect in bars:
            assert not _overlaps(text, rect), f"{name}: {text.content!r} is drawn over a bar"
    # Every text stays inside the box its estimated width gave it, the box the chart was laid out by.
    stray = ink & ~laid_out
    assert stray.sum() <= 10, f"{name}: text drawn wider than laid out, at {numpy.argwhere(stray)[:5]}"


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _box(rect: ElementTree.Element) -> tuple[int, int, int, int]:
    """A rect's pixels: left, top, right, bottom (the ends exclusive, partly covered pixels included)."""
    x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
    right, bottom = x + float(rect.get("width", 0)), y + float(rect.get("height", 0))
    return int(x), int(y), int(numpy.ceil(right)), int(numpy.ceil(bottom))


def _near(pixels: numpy.ndarray, colour: tuple[int, int, int], tolerance: int) -> numpy.ndarray:
    """Which pixels are within ``tolerance`` of ``colour`` on every channel."""
    distance = numpy.abs(pixels - numpy.array(colour, dtype=numpy.int16))
    return numpy.asarray((distance <= tolerance).all(axis=-1))


def _ink(pixels: numpy.ndarray) -> numpy.ndarray:
    """Text-coloured pixels: dark and grey (the bars' blue and red are colours, their grey is lighter)."""
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)
    return numpy.asarray((pixels.max(axis=-1) < 140) & (spread < 40))


def _overlaps(text: Text, rect: ElementTree.Element) -> bool:
    x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
    right, bottom = x + float(rect.get("width", 0)), y + float(rect.get("height", 0))
    # The box's top and bottom include the font's ascent and descent room: shrink it to the glyphs' core.
    return text.left < right and x < text.right and text.top + 3 < bottom and y < text.bottom - 3
