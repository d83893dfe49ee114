"""Inline SVG for the status page: a Gantt timeline with a broken time axis and small line charts.

Drawn by hand rather than with a charting library: the page needs two chart shapes (a Gantt, which none of
the small pure-Python SVG libraries draws, and a categorical line chart), no JavaScript and no external
assets, and the operator command should stay cheap to import. Every text that reaches the SVG goes through
:func:`esc`; numbers are formatted here, so nothing from the ledger becomes markup.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from shared.operator.views import duration

FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
GRID = "#e5e7eb"
AXIS = "#9ca3af"
INK = "#111827"
MUTED = "#6b7280"


def esc(text: object) -> str:
    """Text made safe for HTML and SVG, quotes included (it also goes into attributes)."""
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    """A coordinate: two decimals at most, no exponent."""
    return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def seconds_label(seconds: float) -> str:
    """A tick label: ``+0s``, ``+45s``, ``+2m``, ``+1m30s``, ``+2h``, ``+1h05m``, ``+2h04m15s``."""
    whole = round(seconds)
    if whole < 60:
        return f"+{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"+{minutes}m" + (f"{rest:02d}s" if rest else "")
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"+{hours}h" + (f"{minutes:02d}m" if rest else "") + (f"{seconds:02d}s" if seconds else "")


# -- the time axis ----------------------------------------------------------------------------------------

#: A quiet stretch at least this long, and at least BREAK_SHARE of the run, is drawn as a fixed-width break
#: (an approval that waited all night would otherwise squeeze the rollout's seconds into one pixel).
BREAK_MIN_SECONDS = 300.0
BREAK_SHARE = 0.2
BREAK_PIXELS = 64.0
#: Ticks and the breaks' labels keep this far apart (pixels).
TICK_GAP = 44.0
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Segment:
    """A stretch of time drawn to scale: seconds ``start..end`` at pixels ``left..right``."""

    start: float
    end: float
    left: float
    right: float


@dataclass(frozen=True)
class Tick:
    seconds: float
    x: float
    anchor: str  # SVG text-anchor: a tick right after a break is written rightwards, clear of the break


class TimeScale:
    """Seconds since the run started to pixels: linear within each busy stretch; a long quiet gap between
    two stretches is a fixed-width break, and every stretch gets at least a fair share of the width, so the
    seconds of a rollout stay readable beside the minutes of a training job."""

    def __init__(self, moments: Iterable[float], left: float, right: float) -> None:
        points = sorted({max(0.0, moment) for moment in moments} | {0.0})
        if points[-1] <= 0.0:
            points.append(1.0)  # an empty or instantaneous run still gets a one-second axis
        threshold = max(BREAK_MIN_SECONDS, BREAK_SHARE * (points[-1] - points[0]))
        gaps = [(a, b) for a, b in itertools.pairwise(points) if b - a >= threshold]
        stretches, cursor = [], points[0]
        for start, end in gaps:
            stretches.append((cursor, start))
            cursor = end
        stretches.append((cursor, points[-1]))
        width = right - left - BREAK_PIXELS * len(gaps)
        self.segments: list[Segment] = []
        self.breaks: list[tuple[float, float, float]] = []  # (start, end, pixel of the break's left edge)
        pixel = left
        for index, ((start, end), share) in enumerate(zip(stretches, _shares(stretches), strict=True)):
            self.segments.append(Segment(start, end, pixel, pixel + share * width))
            pixel += share * width
            if index < len(gaps):
                self.breaks.append((gaps[index][0], gaps[index][1], pixel))
                pixel += BREAK_PIXELS
        self.end = points[-1]

    def x(self, seconds: float) -> float:
        seconds = min(max(seconds, 0.0), self.end)
        for segment in self.segments:
            if segment.start <= seconds <= segment.end:
                span = segment.end - segment.start
                share = (seconds - segment.start) / span if span > 0 else 0.0
                return segment.left + share * (segment.right - segment.left)
        for start, end, pixel in self.breaks:
            if start < seconds < end:
                return pixel + BREAK_PIXELS * (seconds - start) / (end - start)
        return self.segments[-1].right

    def ticks(self, min_pixels: float = 70.0) -> list[Tick]:
        """Round moments inside each stretch, at least ``min_pixels`` apart and clear of the breaks; each
        stretch's start is always one (after a break it says where the time picks up again)."""
        edges = [pixel for _, _, pixel in self.breaks] + [pixel + BREAK_PIXELS for _, _, pixel in self.breaks]
        found: list[Tick] = []
        for index, segment in enumerate(self.segments):
            found.append(Tick(segment.start, segment.left, "start" if index else "middle"))
            span, pixels = segment.end - segment.start, segment.right - segment.left
            if span <= 0 or pixels <= 0:
                continue
            step = next((s for s in _NICE_STEPS if s * pixels / span >= min_pixels), _NICE_STEPS[-1])
            moment = math.ceil(segment.start / step) * step
            while moment <= segment.end:
                x = self.x(moment)
                clear = all(abs(x - edge) >= TICK_GAP for edge in edges)
                if clear and x - found[-1].x >= min_pixels * 0.7:
                    found.append(Tick(float(moment), x, "middle"))
                moment += step
        return found


def _shares(stretches: Sequence[tuple[float, float]]) -> list[float]:
    """Each stretch's share of the width: proportional to its length, but none below 1 / (2 * count)."""
    count = len(stretches)
    lengths = [end - start for start, end in stretches]
    total = sum(lengths)
    shares = [length / total if total > 0 else 1 / count for length in lengths]
    if count == 1:
        return [1.0]
    floor = 1 / (2 * count)
    small = [share < floor for share in shares]
    rest = sum(share for share, is_small in zip(shares, small, strict=True) if not is_small)
    scale = (1 - floor * sum(small)) / rest
    return [floor if is_small else share * scale for share, is_small in zip(shares, small, strict=True)]


# -- the Gantt ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GanttRow:
    """One row: a bar from ``start`` to ``end`` (seconds since the run started), or a milestone when they
    are (nearly) equal; ``waited_from`` draws the faint lead-in since the step before it ended."""

    label: str
    start: float
    end: float
    color: str
    status: str
    tooltip: str
    waited_from: float | None = None
    running: bool = False


@dataclass(frozen=True)
class GanttDot:
    """A mark on the shared notifications row."""

    at: float
    color: str
    tooltip: str


STATUS_MARKS = {"SUCCEEDED": "✓", "FAILED": "✗", "STARTED": "…", "SKIPPED": "-", "RUNNING": "…"}
STATUS_COLORS = {"SUCCEEDED": "#15803d", "FAILED": "#b91c1c", "STARTED": "#b45309", "SKIPPED": MUTED}
LABEL_WIDTH = 250.0
ROW_HEIGHT = 26.0
LABEL_CHARS = 32


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gantt(
    rows: Sequence[GanttRow], dots: Sequence[GanttDot], dots_label: str, end: float, width: float = 1120.0
) -> str:
    """The run's timeline as one SVG: one row per step, dots on a last row, an axis of offsets at the top."""
    top, bottom_pad = 30.0, 10.0
    row_count = len(rows) + (1 if dots else 0)
    height = top + row_count * ROW_HEIGHT + bottom_pad
    moments = [end]
    for row in rows:
        moments.extend([row.start, row.end] + ([row.waited_from] if row.waited_from is not None else []))
    moments.extend(dot.at for dot in dots)
    scale = TimeScale(moments, LABEL_WIDTH + 10, width - 16)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'role="img" aria-label="timeline of the run" font-family="{esc(FONT)}">'
    ]
    for index in range(row_count):  # zebra rows, so a long row's label and bar are easy to pair
        if index % 2 == 0:
            y = top + index * ROW_HEIGHT
            parts.append(
                f'<rect x="0" y="{_num(y)}" width="{_num(width)}" height="{_num(ROW_HEIGHT)}" '
                'fill="#f9fafb"/>'
            )
    for tick in scale.ticks():
        shift = 3 if tick.anchor == "start" else 0
        parts.append(
            f'<line x1="{_num(tick.x)}" y1="{_num(top - 4)}" x2="{_num(tick.x)}" '
            f'y2="{_num(height - bottom_pad)}" stroke="{GRID}"/>'
            f'<text x="{_num(tick.x + shift)}" y="{_num(top - 10)}" font-size="11" fill="{MUTED}" '
            f'text-anchor="{tick.anchor}">{esc(seconds_label(tick.seconds))}</text>'
        )
    for start, stop, pixel in scale.breaks:
        parts.append(_axis_break(pixel, top - 4, height - bottom_pad, stop - start))
    for index, row in enumerate(rows):
        parts.append(_gantt_row(row, top + index * ROW_HEIGHT, scale))
    if dots:
        y = top + len(rows) * ROW_HEIGHT
        parts.append(_label(dots_label, y, MUTED, ""))
        for dot in dots:
            parts.append(
                f'<circle cx="{_num(scale.x(dot.at))}" cy="{_num(y + ROW_HEIGHT / 2)}" r="4.5" '
                f'fill="{dot.color}" fill-opacity="0.85" stroke="#fff">'
                f"<title>{esc(dot.tooltip)}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _label(text: str, y: float, color: str, mark: str) -> str:
    middle = y + ROW_HEIGHT / 2 + 4
    return (
        f'<text x="8" y="{_num(middle)}" font-size="12" fill="{color}" font-weight="700">{esc(mark)}</text>'
        f'<text x="24" y="{_num(middle)}" font-size="12.5" fill="{INK}">{esc(_shorten(text, LABEL_CHARS))}'
        f"<title>{esc(text)}</title></text>"
    )


def _gantt_row(row: GanttRow, y: float, scale: TimeScale) -> str:
    status_color = STATUS_COLORS.get(row.status, MUTED)
    parts = [_label(row.label, y, status_color, STATUS_MARKS.get(row.status, "·"))]
    middle = y + ROW_HEIGHT / 2
    start, end = scale.x(row.start), scale.x(row.end)
    if row.waited_from is not None and row.waited_from < row.start:
        lead = scale.x(row.waited_from)
        if start - lead >= 2:
            parts.append(
                f'<line x1="{_num(lead)}" y1="{_num(middle)}" x2="{_num(start)}" y2="{_num(middle)}" '
                f'stroke="{row.color}" stroke-opacity="0.45" stroke-width="3" stroke-dasharray="2 3"/>'
            )
    fill = STATUS_COLORS["FAILED"] if row.status == "FAILED" else row.color
    tooltip = f"<title>{esc(row.tooltip)}</title>"
    if end - start >= 3:
        opacity = ' fill-opacity="0.55"' if row.running else ""
        parts.append(
            f'<rect x="{_num(start)}" y="{_num(y + 6)}" width="{_num(end - start)}" '
            f'height="{_num(ROW_HEIGHT - 12)}" rx="3" fill="{fill}"{opacity}>{tooltip}</rect>'
        )
    else:  # a step recorded once, when its outcome was known: a milestone
        size = 6.0
        parts.append(
            f'<path d="M{_num(start)} {_num(middle - size)} L{_num(start + size)} {_num(middle)} '
            f'L{_num(start)} {_num(middle + size)} L{_num(start - size)} {_num(middle)} Z" fill="{fill}" '
            f'stroke="#fff" stroke-width="1">{tooltip}</path>'
        )
    return "".join(parts)


def _axis_break(pixel: float, top: float, bottom: float, seconds: float) -> str:
    """A hatched band with the quiet time written on it."""
    middle = pixel + BREAK_PIXELS / 2
    return (
        f'<rect x="{_num(pixel + 4)}" y="{_num(top)}" width="{_num(BREAK_PIXELS - 8)}" '
        f'height="{_num(bottom - top)}" fill="#f3f4f6" stroke="{AXIS}" stroke-dasharray="3 3"/>'
        f'<text x="{_num(middle)}" y="{_num(top - 6)}" font-size="10" fill="{MUTED}" '
        f'text-anchor="middle">{esc(duration(seconds))}</text>'
    )


# -- line charts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: a value per category, ``None`` where nothing was measured (drawn as a gap, never as 0)."""

    name: str
    color: str
    values: Sequence[float | None]
    dashed: bool = False


@dataclass(frozen=True)
class Category:
    """An x position: the label under the axis, and an optional verdict band (colour and word)."""

    label: str
    band: str | None = None
    note: str = ""


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times 10^n at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


def line_chart(
    title: str,
    categories: Sequence[Category],
    series: Sequence[Series],
    unit: str,
    *,
    y_max: float | None = None,
    width: float = 420.0,
    height: float = 270.0,
) -> str:
    """A small categorical line chart: grid, y ticks, bands, one line per series, labelled points."""
    left, right, top, bottom = 52.0, width - 64.0, 34.0, height - 50.0
    present = [value for item in series for value in item.values if value is not None]
    ceiling = y_max if y_max is not None else nice_max(max(present, default=0.0) * 1.1)
    count = max(len(categories), 1)
    slot = (right - left) / count

    def x(index: int) -> float:
        return left + slot * (index + 0.5)

    def y(value: float) -> float:
        return bottom - (min(max(value, 0.0), ceiling) / ceiling) * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'role="img" aria-label="{esc(title)}" font-family="{esc(FONT)}">',
        f'<text x="{_num(left - 40)}" y="18" font-size="14" font-weight="600" fill="{INK}">'
        f"{esc(title)}</text>",
    ]
    for index, category in enumerate(categories):
        if category.band:
            parts.append(
                f'<rect x="{_num(left + slot * index + 1)}" y="{_num(top)}" width="{_num(slot - 2)}" '
                f'height="{_num(bottom - top)}" fill="{category.band}" fill-opacity="0.08"/>'
            )
    divisions = _divisions(ceiling)
    for step in range(divisions + 1):
        fraction = step / divisions
        value = ceiling * fraction
        parts.append(
            f'<line x1="{_num(left)}" y1="{_num(y(value))}" x2="{_num(right)}" y2="{_num(y(value))}" '
            f'stroke="{GRID if fraction else AXIS}"/>'
            f'<text x="{_num(left - 6)}" y="{_num(y(value) + 4)}" font-size="11" fill="{MUTED}" '
            f'text-anchor="end">{esc(format_value(value, unit))}</text>'
        )
    for index, category in enumerate(categories):
        parts.append(
            f'<text x="{_num(x(index))}" y="{_num(bottom + 17)}" font-size="11.5" fill="{INK}" '
            f'text-anchor="middle">{esc(category.label)}</text>'
        )
        if category.note:
            parts.append(
                f'<text x="{_num(x(index))}" y="{_num(bottom + 32)}" font-size="11" font-weight="600" '
                f'fill="{category.band or MUTED}" text-anchor="middle">{esc(category.note)}</text>'
            )
    labels: dict[int, list[tuple[float, str, str]]] = {}
    for item in series:
        parts.extend(_polylines(item, x, y))
        for index, measured in enumerate(item.values[: len(categories)]):
            if measured is None:
                # Missing data is shown as missing: a hollow mark on the axis, never a point at zero.
                parts.append(
                    f'<circle cx="{_num(x(index))}" cy="{_num(bottom)}" r="4" fill="#fff" '
                    f'stroke="{item.color}" stroke-dasharray="2 2"><title>{esc(item.name)}: no data</title>'
                    "</circle>"
                )
                labels.setdefault(index, []).append((bottom - 8, "no data", item.color))
                continue
            parts.append(
                f'<circle cx="{_num(x(index))}" cy="{_num(y(measured))}" r="4" fill="{item.color}" '
                'stroke="#fff">'
                f"<title>{esc(item.name)}: {esc(format_value(measured, unit))}</title></circle>"
            )
            labels.setdefault(index, []).append((y(measured), format_value(measured, unit), item.color))
    for index, found in labels.items():
        parts.extend(_point_labels(x(index) + 7, found, top + 8, bottom))
    parts.append("</svg>")
    return "".join(parts)


def _polylines(item: Series, x: Callable[[int], float], y: Callable[[float], float]) -> list[str]:
    """The series as lines between consecutive measured points; a gap wherever a value is missing."""
    runs: list[list[str]] = [[]]
    for index, value in enumerate(item.values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append(f"{_num(x(index))},{_num(y(value))}")
    dash = ' stroke-dasharray="6 4"' if item.dashed else ""
    return [
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{item.color}" stroke-width="2.5"'
        f' stroke-linejoin="round"{dash}/>'
        for points in runs
        if len(points) > 1
    ]


def _point_labels(x: float, found: list[tuple[float, str, str]], top: float, bottom: float) -> list[str]:
    """Value labels right of the points, pushed apart so that equal values do not print over each other."""
    placed: list[tuple[float, str, str]] = []
    for wanted, text, color in sorted(found):
        at = max(wanted + 4, top, placed[-1][0] + 13 if placed else top)
        placed.append((at, text, color))
    overflow = placed[-1][0] - bottom if placed else 0.0
    if overflow > 0:  # pushed below the axis: shift the whole stack up
        placed = [(at - overflow, text, color) for at, text, color in placed]
    return [
        f'<text x="{_num(x)}" y="{_num(at)}" font-size="11" fill="{color}" font-weight="600" stroke="#fff" '
        f'stroke-width="3" paint-order="stroke">{esc(text)}</text>'
        for at, text, color in placed
    ]


def _divisions(ceiling: float) -> int:
    """Grid lines that land on round values: 2.5 and 5 (times 10^n) in fives, 1, 2 and 10 in quarters."""
    leading = ceiling / 10 ** math.floor(math.log10(ceiling)) if ceiling > 0 else 1.0
    return 5 if math.isclose(leading, 2.5) or math.isclose(leading, 5) else 4


def format_value(value: float, unit: str) -> str:
    """``12.5%``, ``0.25%``, ``0%``, ``183 ms``, ``12.50 s``; anything else as a short number."""
    if unit == "%":
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return text.rstrip("0").rstrip(".") + "%"
    if unit == "ms":
        return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"
    return f"{value:g}"
