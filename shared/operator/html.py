"""``status RUN_ID --html FILE``: one self-contained page showing what a run did, for people rather than logs.

The page has no JavaScript and loads nothing: inline CSS, inline SVG (:mod:`shared.operator.charts`), the
step details as escaped JSON. It shows

* the run's timeline: the cause, then every step in the order it started (builds, training, gate, approval,
  each rollout step) as a Gantt, notifications as dots on one row;
* the rollout, read from the ``rollout:step:<n>`` steps (``detail.result``: ``strategy``, ``percent``,
  ``revisions`` {name: {role, requests, share_5xx, p95_ms}}, ``verdict``, ``reasons``): per revision its
  traffic share, 5xx share and p95 latency over the steps, drawn as charts, and the numbers in a table; the
  outcome from ``rollout:promoted`` / ``rollout:rolled_back`` / ``rollout:paused``;
* every step with its timings, summary and whole detail.

Everything that comes from the ledger is escaped (:func:`html.escape`); a value of the wrong type in a
rollout step is shown as missing rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.ledger import Run, Step, StepStatus
from shared.operator import charts
from shared.operator.charts import Category, GanttDot, GanttRow, Series, esc
from shared.operator.views import cause_of, duration, summary, timestamp, waits

_ROLLOUT_STEP = re.compile(r"^rollout:step:(\d{1,6})$")
#: Step-name prefix (before the first ``:``) -> (phase shown in the legend, colour).
PHASES: dict[str, tuple[str, str]] = {
    "build": ("builds", "#6366f1"),
    "build-status": ("builds", "#6366f1"),
    "image": ("builds", "#6366f1"),
    "object": ("data", "#0891b2"),
    "data": ("data", "#0891b2"),
    "batch": ("data", "#0891b2"),
    "drift": ("data", "#0891b2"),
    "train": ("training", "#0d9488"),
    "training": ("training", "#0d9488"),
    "job-state": ("training", "#0d9488"),
    "evaluate": ("gate", "#9333ea"),
    "gate": ("gate", "#9333ea"),
    "registry": ("gate", "#9333ea"),
    "approval": ("approval", "#d97706"),
    "rollout": ("rollout", "#2563eb"),
}
OTHER_PHASE = ("other", "#64748b")
NOTIFY_PREFIX = "notify:"
VERDICT_COLORS = {"healthy": "#16a34a", "unhealthy": "#dc2626", "inconclusive": "#d97706"}
ROLE_COLORS = {"stable": "#2563eb", "candidate": "#ea580c"}
EXTRA_COLORS = ("#16a34a", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#475569")
RUN_STATUS_COLORS = {
    "RUNNING": "#b45309",
    "SUCCEEDED": "#15803d",
    "FAILED": "#b91c1c",
    "CANCELLED": "#6b7280",
}


def phase_of(name: str) -> tuple[str, str]:
    return PHASES.get(name.split(":", 1)[0], OTHER_PHASE)


def _offset(run: Run, moment: datetime) -> float:
    return max(0.0, (moment - run.started_at).total_seconds())


def _number(value: Any) -> float | None:
    """A finite number, or None (booleans, text, NaN and the like are not measurements)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- the rollout, as recorded -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionSample:
    """One revision's numbers over one rollout step's analysis window."""

    name: str
    role: str
    requests: float | None
    share_5xx: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class RolloutStep:
    number: int
    step: Step
    strategy: str
    percent: float | None
    revisions: tuple[RevisionSample, ...]
    verdict: str
    reasons: tuple[str, ...]

    def traffic_share(self, revision: RevisionSample) -> float | None:
        """The revision's share of traffic in percent: the candidate's ``percent``, the stable's the rest."""
        if self.percent is None:
            return None
        if revision.role == "candidate":
            return self.percent
        if revision.role == "stable":
            return 100.0 - self.percent
        return None


def rollout_steps(run: Run) -> list[RolloutStep]:
    """The run's ``rollout:step:<n>`` steps, by ``n`` (numerically: step 10 comes after step 9)."""
    found: list[RolloutStep] = []
    for step in run.steps:
        match = _ROLLOUT_STEP.match(step.name)
        if not match:
            continue
        result = step.detail.get("result")
        result = result if isinstance(result, Mapping) else {}
        revisions = result.get("revisions")
        samples = []
        for name, numbers in revisions.items() if isinstance(revisions, Mapping) else []:
            numbers = numbers if isinstance(numbers, Mapping) else {}
            role = numbers.get("role")
            samples.append(
                RevisionSample(
                    name=str(name),
                    role=role if isinstance(role, str) else "",
                    requests=_number(numbers.get("requests")),
                    share_5xx=_number(numbers.get("share_5xx")),
                    p95_ms=_number(numbers.get("p95_ms")),
                )
            )
        reasons = result.get("reasons")
        found.append(
            RolloutStep(
                number=int(match.group(1)),
                step=step,
                strategy=str(result.get("strategy") or ""),
                percent=_number(result.get("percent")),
                revisions=tuple(samples),
                verdict=str(result.get("verdict") or ""),
                reasons=tuple(str(reason) for reason in reasons) if isinstance(reasons, list) else (),
            )
        )
    return sorted(found, key=lambda item: item.number)


def revision_colors(steps: Sequence[RolloutStep]) -> dict[str, str]:
    """A colour per revision, stable blue and candidate orange where the roles allow it."""
    colors: dict[str, str] = {}
    taken: set[str] = set()
    extra = iter(EXTRA_COLORS * 4)
    for step in steps:
        for revision in step.revisions:
            if revision.name in colors:
                continue
            color = ROLE_COLORS.get(revision.role)
            if color is None or color in taken:
                color = next(extra, "#475569")
            colors[revision.name] = color
            taken.add(color)
    return colors


def rollout_outcome(run: Run) -> tuple[str, str, Step | None]:
    """(word, colour, step): promoted, rolled back or paused, whichever came last; else in progress."""
    outcomes = {
        "rollout:promoted": ("promoted", "#15803d"),
        "rollout:rolled_back": ("rolled back", "#b91c1c"),
        "rollout:paused": ("paused", "#b45309"),
    }
    recorded = [step for step in run.steps if step.name in outcomes]
    if not recorded:
        return "in progress", "#2563eb", None
    last = max(recorded, key=lambda step: (step.updated_at, step.started_at))
    word, color = outcomes[last.name]
    return word, color, last


# -- the page ------------------------------------------------------------------------------------------------


def status_page(run: Run, now: datetime) -> str:
    """The whole page as text (UTF-8 when written)."""
    steps = rollout_steps(run)
    sections = [_header(run, now), _timeline(run, now), _rollout(run, steps), _steps_table(run, now)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(run.run_id)} · {esc(run.status.value)}</title>"
        f"<style>{CSS}</style></head><body><main>"
        + "".join(sections)
        + f"<footer>Generated {esc(timestamp(now))} by <code>python -m shared.operator status "
        f"{esc(run.run_id)} --html</code> from the run ledger.</footer></main></body></html>\n"
    )


def _pill(text: str, color: str) -> str:
    return f'<span class="pill" style="background:{color}">{esc(text)}</span>'


def _header(run: Run, now: datetime) -> str:
    if run.finished_at is not None:
        took = duration((run.finished_at - run.started_at).total_seconds())
        when = f"finished {timestamp(run.finished_at)} after {took}"
    else:
        when = f"running for {duration((now - run.started_at).total_seconds())}"
    labels = "".join(
        f"<span class=tag>{esc(key)}={esc(value)}</span>" for key, value in sorted(run.labels.items())
    )
    cause = json.dumps(run.cause, sort_keys=True, ensure_ascii=False, default=str)
    rows = [
        ("cause", f"<b>{esc(cause_of(run))}</b> <code class=wrap>{esc(cause)}</code>"),
        ("started", esc(timestamp(run.started_at))),
        ("status", esc(when)),
        ("steps", str(len(run.steps))),
    ]
    if labels:
        rows.append(("labels", labels))
    cells = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    color = RUN_STATUS_COLORS.get(run.status.value, "#6b7280")
    return (
        f'<header><h1>Run <span class="id">{esc(run.run_id)}</span> {_pill(run.status.value, color)}</h1>'
        f"<dl>{cells}</dl></header>"
    )


def _timeline(run: Run, now: datetime) -> str:
    end = _offset(run, run.finished_at or now)
    cause_text = json.dumps(run.cause, sort_keys=True, ensure_ascii=False, default=str)
    rows = [GanttRow(f"cause: {cause_of(run)}", 0.0, 0.0, "#475569", "CAUSE", f"cause {cause_text}")]
    dots: list[GanttDot] = []
    previous_end = 0.0
    used: dict[str, str] = {}
    for step in run.steps:
        start = _offset(run, step.started_at)
        running = step.status is StepStatus.STARTED
        finish = _offset(run, now if running else (step.finished_at or step.started_at))
        end = max(end, finish)
        tooltip = _step_tooltip(step, run, now)
        if step.name.startswith(NOTIFY_PREFIX):
            color = charts.STATUS_COLORS.get(step.status.value, "#64748b")
            dots.append(GanttDot(finish, color, tooltip))
            continue
        phase, color = phase_of(step.name)
        used.setdefault(phase, color)
        rows.append(
            GanttRow(
                step.name, start, finish, color, step.status.value, tooltip, previous_end, running=running
            )
        )
        previous_end = max(previous_end, finish)
    svg = charts.gantt(rows, dots, f"notifications ({len(dots)})", end)
    legend = "".join(
        f'<span class="key"><i style="background:{color}"></i>{esc(name)}</span>'
        for name, color in used.items()
    )
    return (
        "<section><h2>Timeline</h2>"
        f"<p class=\"note\">Offsets from the run's start. A bar is a step's own duration, a diamond a step "
        "recorded at once when its outcome was known; the dotted lead-in is the time since the step before "
        "it ended (a build or a training job running, an approval awaited). Hatched bands are long quiet "
        "stretches drawn short. Hover a mark for its detail.</p>"
        f'<div class="legend">{legend}<span class="key"><i class="failed"></i>failed</span></div>'
        f'<div class="scroll">{svg}</div></section>'
    )


def _step_tooltip(step: Step, run: Run, now: datetime) -> str:
    running = step.status is StepStatus.STARTED
    finished = step.finished_at or step.started_at
    took = duration(((now if running else finished) - step.started_at).total_seconds())
    text = summary(step, limit=300)
    return (
        f"{step.name} · {step.status.value} · at +{duration(_offset(run, step.started_at))} "
        f"({step.started_at:%H:%M:%S}) · took {took}{'…' if running else ''}" + (f"\n{text}" if text else "")
    )


def _rollout(run: Run, steps: Sequence[RolloutStep]) -> str:
    started = run.step("rollout:started")
    if not steps:
        extra = " (started, waiting for its first step)" if started is not None else ""
        return f'<section><h2>Rollout</h2><p class="empty">No rollout yet{esc(extra)}.</p></section>'
    word, color, outcome = rollout_outcome(run)
    strategies = sorted({step.strategy for step in steps if step.strategy})
    detail = summary(outcome, limit=400) if outcome is not None else ""
    banner = (
        f'<div class="banner" style="border-color:{color}">{_pill(word, color)} '
        f"<b>{len(steps)} step{'s' if len(steps) != 1 else ''}</b>"
        + (f" · {esc(', '.join(strategies))}" if strategies else "")
        + (f' <span class="muted">{esc(detail)}</span>' if detail else "")
        + "</div>"
    )
    colors = revision_colors(steps)
    names = list(colors)
    categories = [
        Category(
            f"{step.number} · {_percent(step.percent)}",
            VERDICT_COLORS.get(step.verdict),
            step.verdict,
        )
        for step in steps
    ]

    def series(pick: Any) -> list[Series]:
        made = []
        for name in names:
            values: list[float | None] = []
            role = ""
            for step in steps:
                sample = next((item for item in step.revisions if item.name == name), None)
                values.append(pick(step, sample) if sample is not None else None)
                role = sample.role if sample is not None else role
            made.append(
                Series(f"{name} ({role or 'revision'})", colors[name], values, dashed=role == "stable")
            )
        return made

    traffic = charts.line_chart(
        "Traffic share", categories, series(lambda step, sample: step.traffic_share(sample)), "%", y_max=100
    )
    errors = charts.line_chart(
        "5xx share", categories, series(lambda step, sample: _as_percent(sample.share_5xx)), "%"
    )
    latency = charts.line_chart("p95 latency", categories, series(lambda step, sample: sample.p95_ms), "ms")
    legend = "".join(
        f'<span class="key"><i style="background:{color}"></i>{esc(name)} '
        f'<span class="muted">{esc(_role_of(name, steps))}</span></span>'
        for name, color in colors.items()
    )
    return (
        "<section><h2>Rollout</h2>"
        + banner
        + f'<div class="legend">{legend}</div>'
        + f'<div class="charts">{traffic}{errors}{latency}</div>'
        + '<p class="note">x: rollout step · candidate traffic percent · verdict. "no data" marks a revision '
        "with no measurement in the step's window: missing data is never a pass.</p>"
        + _rollout_table(steps, colors)
        + "</section>"
    )


def _role_of(name: str, steps: Sequence[RolloutStep]) -> str:
    roles = []
    for step in steps:
        for sample in step.revisions:
            if sample.name == name and sample.role and sample.role not in roles:
                roles.append(sample.role)
    return " → ".join(roles)


def _percent(value: float | None) -> str:
    return "?%" if value is None else charts.format_value(value, "%")


def _rollout_table(steps: Sequence[RolloutStep], colors: Mapping[str, str]) -> str:
    rows = []
    for step in steps:
        total = sum(sample.requests or 0 for sample in step.revisions)
        samples = step.revisions or (RevisionSample("(no revisions recorded)", "", None, None, None),)
        verdict_color = VERDICT_COLORS.get(step.verdict, "#6b7280")
        reasons = "".join(f"<li>{esc(reason)}</li>" for reason in step.reasons)
        for index, sample in enumerate(samples):
            cells = []
            if index == 0:
                span = f' rowspan="{len(samples)}"'
                cells += [
                    f"<td{span}>{step.number}</td>",
                    f"<td{span}>{esc(step.strategy or '-')}</td>",
                    f"<td{span} class=num>{esc(_percent(step.percent))}</td>",
                    f"<td{span}>{_pill(step.verdict or 'unknown', verdict_color)}</td>",
                ]
            share = (
                f" ({sample.requests / total * 100:.0f}%)" if sample.requests is not None and total else ""
            )
            swatch = f'<i class="swatch" style="background:{colors.get(sample.name, "#6b7280")}"></i>'
            cells += [
                f"<td>{swatch}<code>{esc(sample.name)}</code></td>",
                f"<td>{esc(sample.role or '-')}</td>",
                f"<td class=num>{esc(_maybe(step.traffic_share(sample), '%'))}</td>",
                f"<td class=num>{'-' if sample.requests is None else f'{sample.requests:g}'}{share}</td>",
                f"<td class=num>{esc(_maybe(_as_percent(sample.share_5xx), '%'))}</td>",
                f"<td class=num>{esc(_maybe(sample.p95_ms, 'ms'))}</td>",
            ]
            if index == 0:
                cells.append(f'<td rowspan="{len(samples)}"><ul>{reasons}</ul></td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
    header = (
        "<tr><th>step</th><th>strategy</th><th>percent</th><th>verdict</th><th>revision</th><th>role</th>"
        "<th>traffic</th><th>requests</th><th>5xx</th><th>p95</th><th>reasons</th></tr>"
    )
    return f'<div class="scroll"><table class="rollout">{header}{"".join(rows)}</table></div>'


def _as_percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def _maybe(value: float | None, unit: str) -> str:
    return "no data" if value is None else charts.format_value(value, unit)


def _steps_table(run: Run, now: datetime) -> str:
    if not run.steps:
        return '<section><h2>Steps</h2><p class="empty">No steps recorded yet.</p></section>'
    rows = []
    for step, waited in zip(run.steps, waits(run), strict=True):
        running = step.status is StepStatus.STARTED
        finished = now if running else (step.finished_at or step.started_at)
        took = duration((finished - step.started_at).total_seconds()) + ("…" if running else "")
        color = charts.STATUS_COLORS.get(step.status.value, "#6b7280")
        detail = json.dumps(step.detail, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        rows.append(
            "<tr>"
            f"<td class=num>{step.started_at:%H:%M:%S}</td>"
            f"<td class=num>+{esc(duration(_offset(run, step.started_at)))}</td>"
            f"<td class=num>{esc(duration(waited))}</td>"
            f"<td><code>{esc(step.name)}</code></td>"
            f"<td>{_pill(step.status.value, color)}</td>"
            f"<td class=num>{esc(took)}</td>"
            f'<td class="summary">{esc(summary(step, limit=240))}'
            f"<details><summary>detail</summary><pre>{esc(detail)}</pre></details></td>"
            "</tr>"
        )
    header = (
        "<tr><th>start</th><th>offset</th><th>waited</th><th>step</th><th>status</th><th>took</th>"
        "<th>detail</th></tr>"
    )
    return (
        f'<section><h2>Steps</h2><div class="scroll"><table>{header}{"".join(rows)}</table></div></section>'
    )


CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#111827;font:14px/1.45 ui-sans-serif,system-ui,-apple-system,
'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 40px}
header,section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:16px 20px;
margin-bottom:16px}
h1{font-size:20px;margin:0 0 10px;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
h1 .id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:18px}
h2{font-size:16px;margin:0 0 8px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dt{color:#6b7280}dd{margin:0;min-width:0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
code.wrap{overflow-wrap:anywhere;color:#374151}
.pill{display:inline-block;color:#fff;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;
letter-spacing:.02em;white-space:nowrap}
.tag{display:inline-block;background:#eef2ff;color:#3730a3;border-radius:4px;padding:0 6px;margin:0 6px 2px 0;
font-size:12.5px}
.note{color:#6b7280;font-size:12.5px;margin:4px 0 10px}
.empty{color:#374151;font-style:italic;margin:4px 0}
.muted{color:#6b7280}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:6px 0 10px;font-size:12.5px}
.key{display:inline-flex;align-items:center;gap:6px}
.key i,.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-1px;
margin-right:6px}
.key i{margin-right:0}.key i.failed{background:#b91c1c}
.scroll{overflow-x:auto}
svg{display:block;width:100%;height:auto}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:12px}
.charts svg{border:1px solid #f0f1f3;border-radius:8px}
.banner{border-left:4px solid;background:#f9fafb;padding:8px 12px;margin:4px 0 8px;border-radius:4px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:#6b7280;font-weight:600;border-bottom:2px solid #e5e7eb;padding:6px 8px;
white-space:nowrap}
td{border-bottom:1px solid #f0f1f3;padding:5px 8px;vertical-align:top}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.summary{color:#374151;overflow-wrap:anywhere;min-width:260px}
td ul{margin:0;padding-left:16px}
details summary{cursor:pointer;color:#2563eb;font-size:12px}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:6px;padding:8px;max-height:360px;overflow:auto;
font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
footer{color:#6b7280;font-size:12px;text-align:center}
""".replace("\n", "")


def write_page(path: str, page: str) -> str:
    """Write the page to ``path`` whole or not at all (a browser reloading it never sees half a page);
    ``-`` writes it to stdout. Returns the absolute path written, or "" for stdout."""
    if path == "-":
        sys.stdout.write(page)
        return ""
    target = os.path.abspath(path)
    handle, temporary = tempfile.mkstemp(prefix=".status-", suffix=".html", dir=os.path.dirname(target))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target
