"""The status page as a browser draws it: headless Chromium screenshots the page written by the command.

Skipped, saying why, where Chromium is not installed (Debian: ``apt-get install -y chromium``); CI does not
install it, so this runs on machines that have it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from shared.config import parse_config
from shared.notify import RecordingTransport
from shared.operator.cli import main
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.chromium import CHROMIUM, screenshot
from tests.status_page_runs import NOW, PUSH_RUN, ledger_with_runs

pytestmark = pytest.mark.functional

WIDTH, HEIGHT = 1280, 1600
PAGE_BACKGROUND = (0xF3, 0xF4, 0xF6)  # the body colour in shared/operator/html.py's CSS


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "demo-project"}},
        "functional.yaml",
        env={},
    )
    test_runtime = Runtime(
        config, ledger_with_runs(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW
    )
    with use(test_runtime):
        yield test_runtime


@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium); the page's content is "
    "covered by tests/unit/shared/operator/test_status_page.py",
)
@pytest.mark.usefixtures("runtime")
def test_chromium_draws_the_timeline_and_the_rollout_charts(tmp_path: Path) -> None:
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow reads the screenshot (requirements-dev.txt)"
    )
    page, png = tmp_path / "status.html", tmp_path / "status.png"
    assert main(["status", PUSH_RUN, "--html", str(page)]) == 0

    screenshot(page, png, tmp_path / "profile", WIDTH, HEIGHT)

    with image_module.open(png) as opened:
        image = opened.convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    pixels = numpy.asarray(image, dtype=numpy.int16).reshape(-1, 3)
    # Not blank: besides white cards on the grey page background, a good share of the pixels is ink.
    plain = (pixels == 255).all(axis=1) | (pixels == PAGE_BACKGROUND).all(axis=1)
    assert 1 - plain.mean() > 0.1, "the page looks blank"
    # The drawn marks themselves, by colour: the build bars (indigo), the candidate's lines and points
    # (orange) and the stable's (blue) in the charts; a page whose SVG failed to draw has none of them.
    assert _near(pixels, (0x63, 0x66, 0xF1)) > 500
    assert _near(pixels, (0xEA, 0x58, 0x0C)) > 300
    assert _near(pixels, (0x25, 0x63, 0xEB)) > 300
    if os.environ.get("STATUS_PAGE_PNG"):  # keep the picture to look at it
        shutil.copyfile(png, os.environ["STATUS_PAGE_PNG"])


def _near(pixels: numpy.ndarray, color: tuple[int, int, int], tolerance: int = 24) -> int:
    """How many pixels are within ``tolerance`` of ``color`` on every channel (anti-aliased edges count)."""
    distance = numpy.abs(pixels - numpy.array(color, dtype=numpy.int16))
    return int((distance <= tolerance).all(axis=1).sum())
