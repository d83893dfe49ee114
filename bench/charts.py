"""One SVG chart per item of the bench, drawn from the report's figures (``bench/report.py``).

Charts are plain SVG text (horizontal bars with their values, the baseline drawn as a bar of its own and the
goal as a dashed line): no plotting dependency, and the files diff as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from bench.report import (
    BURST_GOAL,
    CEILING_GOAL,
    COLD_GOAL,
    E2E_PUSH_GOAL,
    E2E_PUSHES,
    REVISION_START_STAGE,
    WAYS,
    JsonObject,
    ceiling_of,
    pipeline_seconds,
    ratio,
)

# -- drawing ----------------------------------------------------------------------------------------------

_BAR = "#4e79a7"
_BASE = "#9c9c9c"
_BAD = "#e15759"


@dataclass(frozen=True)
class Bar:
    """One row of a chart: a bar from ``start`` to ``value`` with ``text`` after it; a ``heading`` row is
    ``label`` alone, in bold across the row (it names the bars below it)."""

    label: str
    value: float
    text: str
    baseline: bool = False
    bad: bool = False
    start: float = 0.0
    heading: bool = False


#: Rough text widths in pixels per character, by font size (Helvetica/Arial draw about 0.45 em on average;
#: 0.55 em keeps room for capitals and wider fallback fonts): a long label widens its column rather than
#: running off the canvas.
_CHAR = {11: 6.1, 13: 7.2, 16: 9.0}
#: A white outline behind text, wide enough to fill the gaps between letters: a value stays readable where
#: the dashed goal line crosses it.
_HALO = 'stroke="white" stroke-width="6" stroke-linejoin="round" paint-order="stroke"'


def text_width(text: str, size: int = 13) -> float:
    return len(text) * _CHAR[size]


def bar_chart(
    title: str, subtitle: str, bars: Sequence[Bar], unit: str, goal: float | None = None, goal_label: str = ""
) -> str:
    """A horizontal bar chart as SVG text: one labelled bar per figure, an optional dashed goal line.

    ``unit``, the caption under the bars, may hold several lines (one per ``\n``)."""
    bar_width, row, top, margin = 440, 26, 64, 16
    label_width = max([260.0] + [text_width(bar.label) + 28 for bar in bars if not bar.heading])
    captions = unit.split("\n")
    height = top + row * len(bars) + 26 + 14 * len(captions)
    peak = max([bar.value for bar in bars] + [goal or 0.0, 1e-9])
    scale = bar_width / peak
    goal_x = None if goal is None else label_width + goal * scale
    right = max(
        [label_width + bar_width + 200, 12 + text_width(title, 16), 12 + text_width(subtitle)]
        + [label_width + text_width(line, 11) for line in captions]
        + [label_width + bar.value * scale + 6 + text_width(bar.text) for bar in bars if not bar.heading]
        + [12 + text_width(bar.label) for bar in bars if bar.heading]
        + ([] if goal_x is None else [goal_x + 4 + text_width(goal_label)])
    )
    width = int(right + margin)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="12" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
        f'<text x="12" y="44" fill="#555">{escape(subtitle)}</text>',
    ]
    values: list[str] = []
    for index, bar in enumerate(bars):
        y = top + index * row
        if bar.heading:
            parts.append(f'<text x="12" y="{y + 15}" font-weight="bold">{escape(bar.label)}</text>')
            continue
        colour = _BASE if bar.baseline else _BAD if bar.bad else _BAR
        x = label_width + bar.start * scale
        length = max(1.0, (bar.value - bar.start) * scale)
        parts.append(
            f'<text x="{label_width - 8:.0f}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" fill="{colour}"/>'
        )
        values.append(f'<text x="{x + length + 6:.1f}" y="{y + 15}" {_HALO}>{escape(bar.text)}</text>')
    if goal_x is not None:  # over the bars, under the values (their halo hides it where it crosses them)
        bottom = top + row * len(bars)
        parts.append(
            f'<line x1="{goal_x:.1f}" y1="{top - 4}" x2="{goal_x:.1f}" y2="{bottom}" '
            'stroke="#333" stroke-dasharray="5,4" shape-rendering="crispEdges"/>'
        )
        parts.append(f'<text x="{goal_x + 4:.1f}" y="{bottom + 16}" fill="#333">{escape(goal_label)}</text>')
    parts += values
    for index, line in enumerate(captions):
        y = height - 6 - 14 * (len(captions) - 1 - index)
        parts.append(f'<text x="{label_width:.0f}" y="{y}" fill="#666" font-size="11">{escape(line)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def end_to_end_chart(e2e: JsonObject, where: str) -> str:
    """Item 4's stages, push by push: each stage a bar from the previous stage's end to its own (seconds
    since the push), the revision's start in grey, then push → canary and the pipeline's own part."""
    bars: list[Bar] = []
    for prefix, label in E2E_PUSHES:
        stages, total = e2e.get(f"{prefix}stages"), e2e.get(f"{prefix}push_to_canary_seconds")
        if not stages or total is None:
            continue
        bars.append(Bar(f"{label[0].upper()}{label[1:]}", 0.0, "", heading=True))
        for stage in stages:
            at = float(stage["at"])
            bars.append(
                Bar(
                    stage["name"],
                    at,
                    f"{at:.2f} s (+{stage['seconds']:.2f})",
                    baseline=stage["name"] == REVISION_START_STAGE,
                    start=max(at - float(stage["seconds"]), 0.0),
                )
            )
        ticks = e2e.get(f"{prefix}push_to_canary_ticks")
        bars.append(Bar("push → canary", total, f"{total:.2f} s, {ticks} ticks", bad=total > E2E_PUSH_GOAL))
        own = pipeline_seconds(e2e, prefix)
        if own is not None:
            bars.append(
                Bar(
                    "pipeline's own part",
                    own,
                    f"{own:.2f} s (without the revision's start)",
                    bad=own > E2E_PUSH_GOAL,
                )
            )
    return bar_chart(
        "4 · Signed push → candidate taking traffic, stage by stage",
        where,
        bars,
        "seconds since the push; each stage runs from the end of the one before it\n"
        f"grey: {REVISION_START_STAGE} (the candidate revision's own start, then the smoke checks)\n"
        "red: over the goal",
        E2E_PUSH_GOAL,
        f"goal {E2E_PUSH_GOAL:.0f} s",
    )


def charts(results: JsonObject) -> dict[str, str]:
    machine = results.get("machine", {})
    where = (
        f"{machine.get('cores', '?')} cores, Python {machine.get('python', '?')}, {machine.get('date', '')}"
    )
    out: dict[str, str] = {}
    e2e = results.get("end_to_end") or {}
    if e2e.get("measured") and e2e.get("stages"):
        out["end-to-end.svg"] = end_to_end_chart(e2e, where)
    cold = results.get("cold_start")
    if cold:
        bare = cold["bare_seconds"]
        bars = [Bar("bare function", bare * 1000, f"{bare * 1000:.0f} ms", baseline=True)]
        for name, figure in sorted(cold["functions"].items(), key=lambda item: item[1]["seconds"]):
            ms = figure["seconds"] * 1000
            bars.append(
                Bar(name, ms, f"{ms:.0f} ms  ({figure['ratio']:.2f}x)", bad=figure["ratio"] > COLD_GOAL)
            )
        out["cold-start.svg"] = bar_chart(
            "1 · Cold start: fresh process → first event answered",
            where,
            bars,
            "milliseconds",
            bare * COLD_GOAL * 1000,
            f"goal {COLD_GOAL}x bare",
        )
    hot = results.get("hot_path") or {}
    base = results["baselines"]
    if hot:
        bars = [
            Bar(
                "bare function, host",
                base["bare_host"]["rate"],
                f"{base['bare_host']['rate']:.0f}/s",
                baseline=True,
            ),
            Bar(
                "bare function, push",
                base["bare_push"]["rate"],
                f"{base['bare_push']['rate']:.0f}/s",
                baseline=True,
            ),
        ]
        for name, figure in hot.items():
            bars.append(
                Bar(f"{name}: ledger ceiling", figure["ceiling"], f"{figure['ceiling']:.0f}/s", baseline=True)
            )
            for way, label in WAYS.items():
                if way not in figure:
                    continue
                if way.endswith("_shared_run") and ceiling_of(figure, way) != figure["ceiling"]:
                    limit = ceiling_of(figure, way)
                    bars.append(Bar(f"{name}: ceiling, one run", limit, f"{limit:.0f}/s", baseline=True))
                rate = figure[way]["rate"]
                bars.append(
                    Bar(
                        f"{name}: {label}",
                        rate,
                        f"{rate:.0f}/s ({figure[way]['vs_ceiling']:.2f}x ceiling)",
                        bad=figure[way]["vs_ceiling"] < CEILING_GOAL,
                    )
                )
        out["hot-path.svg"] = bar_chart(
            "2 · Hot path: events per second on one instance",
            where,
            bars,
            "events per second; the chain functions (fake Google services) run in the bench's process:\n"
            "in-process = the app itself, host = behind an HTTP server, push = that server fed by a push"
            " subscription",
        )
    burst = results.get("burst")
    scale = results.get("scale") or {}
    if burst:
        bars = [
            Bar(
                f"{figure['events']:,} objects, {senders} sender(s)",
                figure["rate"],
                f"{figure['rate']:.0f}/s, {figure['training_runs']} training run",
                bad=figure["rate"] < BURST_GOAL,
            )
            for senders, figure in (scale.get("burst_senders") or {str(burst["concurrency"]): burst}).items()
        ]
        out["burst.svg"] = bar_chart(
            "3 · Burst: object-finalized events → one training run",
            where,
            bars,
            "events per second",
            BURST_GOAL,
            f"goal {BURST_GOAL:.0f}/s",
        )
    if scale.get("runs"):
        bars = []
        for tier in scale["runs"]:
            listing, tick = tier["runs_listing_seconds"] * 1000, tier["tick_seconds"] * 1000
            runs = f"{tier['finished_runs']:,} finished"
            bars.append(
                Bar(f"runs listing, {runs}", listing, f"{listing:.0f} ms, {tier['runs_listing_reads']} reads")
            )
            bars.append(Bar(f"reconcile tick, {runs}", tick, f"{tick:.0f} ms, {tier['tick_reads']} reads"))
        out["scale-runs.svg"] = bar_chart(
            "5 · Scale: the runs listing and a reconcile tick against finished runs",
            where,
            bars,
            "milliseconds",
        )
    senders = [
        Bar(f"notify, {count} sender(s)", figure["rate"], f"{figure['rate']:.0f}/s")
        for count, figure in (scale.get("notify_senders") or {}).items()
    ] + [
        Bar(
            f"burst, {count} sender(s)",
            figure["rate"],
            f"{figure['rate']:.0f}/s, {figure['training_runs']} run",
        )
        for count, figure in (scale.get("burst_senders") or {}).items()
    ]
    if senders:
        out["scale-senders.svg"] = bar_chart(
            "5 · Scale: events per second against concurrent senders", where, senders, "events per second"
        )
    return out


def before_after_chart(before: JsonObject, after: JsonObject) -> str:
    """The improvements: each figure of a run before them (grey) above the same figure after (blue).

    Each pair has its own scale (the larger of the two fills the plot): the figures differ in kind and size
    (round trips, reads, events per second), and one scale for all of them would flatten the small ones."""

    def figures(results: JsonObject) -> list[tuple[str, float]]:
        notify = results["hot_path"]["notify"]
        data = results["hot_path"]["on_data_object"]
        return [
            ("notify: round trips per event (fewer is better)", notify["per_event"]["round_trips"]),
            (
                "notify, every event on one run: round trips per event (fewer is better)",
                notify["per_event_shared_run"]["round_trips"],
            ),
            ("on_data_object: reads per event (fewer is better)", data["per_event"]["reads"]),
            ("burst of 1,000 objects: events per second (more is better)", results["burst"]["rate"]),
        ]

    bars = []
    for (label, old), (_, new) in zip(figures(before), figures(after), strict=True):
        full = max(old, new, 1e-9)
        bars.append(Bar(label, 0.0, "", heading=True))
        bars.append(Bar("before", old / full, f"{old:.3g}", baseline=True))
        bars.append(Bar("after", new / full, f"{new:.3g}  ({ratio(new, old):.2g}x before)"))
    when = f"before {before['machine']['date']}, after {after['machine']['date']}"
    return bar_chart(
        "Before / after the improvements",
        when,
        bars,
        "each pair on its own scale: the larger of the two fills the plot",
    )
