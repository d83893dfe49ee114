"""How runs and steps are shown: pure functions from ledger values (and ``now``) to text and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.ledger import Run, Step, StepStatus

#: A detail summary longer than this is cut (``--json`` has the whole detail).
SUMMARY_CHARS = 110
_CAUSE_KEYS = ("cause", "kind", "type", "source")


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``5m03s``, ``2h05m``, ``3d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def timestamp(moment: datetime | None) -> str:
    """UTC, to the second: ``2026-11-22 10:00:05Z``."""
    return f"{moment:%Y-%m-%d %H:%M:%SZ}" if moment is not None else "-"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def cause_of(run: Run) -> str:
    """The run's cause in one word (``push``, ``data``, ``drift``...), from its recorded cause object."""
    cause = run.cause
    for key in _CAUSE_KEYS:
        value = cause.get(key)
        if isinstance(value, str) and value:
            return value
    step = cause.get("step")
    if isinstance(step, str) and step:
        return f"step {step}"
    return "-"


def last_step(run: Run) -> Step | None:
    """The step that changed last."""
    return max(run.steps, key=lambda step: (step.updated_at, step.started_at), default=None)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return f"[{len(value)} items]" if len(value) != 1 else f"[{_scalar(value[0])}]"
    if isinstance(value, Mapping):
        return "{…}"
    return json.dumps(value)


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    items: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value and not prefix:
            items.extend(_flat(value, f"{key}."))
        elif value not in ("", None, {}, []):
            items.append(f"{prefix}{key}={_scalar(value)}")
    return items


def summary(step: Step, limit: int = SUMMARY_CHARS) -> str:
    """The step's detail in one line: its error first, then its result's fields (``key=value``)."""
    detail = step.detail
    parts: list[str] = []
    error = detail.get("error")
    if error:
        parts.append(f"error: {error}")
    result = detail.get("result")
    if isinstance(result, Mapping):
        parts.extend(_flat(result))
    parts.extend(_flat({k: v for k, v in detail.items() if k not in ("error", "result", "key")}))
    text = " ".join(parts).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- runs ------------------------------------------------------------------------------------------------


def run_json(run: Run, now: datetime) -> dict[str, Any]:
    last = last_step(run)
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "cause": cause_of(run),
        "cause_detail": run.cause,
        "labels": dict(run.labels),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "age_seconds": round(_seconds(run.started_at, now) or 0.0, 3),
        "duration_seconds": _rounded(_seconds(run.started_at, run.finished_at)),
        "step_count": len(run.steps),
        "last_step": {"name": last.name, "status": last.status.value} if last else None,
    }


def runs_table(runs: Sequence[Run], now: datetime) -> list[str]:
    """A header and one line per run; the id column is as wide as the longest id."""
    if not runs:
        return ["no runs"]
    rows = [
        (
            run.run_id,
            run.status.value,
            cause_of(run),
            timestamp(run.started_at),
            duration(_seconds(run.started_at, now)),
            f"{last.name} {last.status.value}" if (last := last_step(run)) else "-",
        )
        for run in runs
    ]
    header = ("RUN", "STATUS", "CAUSE", "STARTED", "AGE", "LAST STEP")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(5)]
    return [_line(row, widths) for row in [header, *rows]]


# -- one run ---------------------------------------------------------------------------------------------


def waits(run: Run) -> list[float]:
    """For each step, how long after the steps before it ended (or the run started) it began.

    Most steps are recorded once, when their outcome is known, so their own duration is 0: the time a build
    or a training job took shows as the wait of the step that learned its end.
    """
    previous_end = run.started_at
    found: list[float] = []
    for step in run.steps:
        found.append(max(0.0, (step.started_at - previous_end).total_seconds()))
        previous_end = max(previous_end, step.finished_at or step.started_at)
    return found


def step_json(step: Step, run: Run, now: datetime, waited: float | None = None) -> dict[str, Any]:
    finished = step.finished_at if step.status is not StepStatus.STARTED else None
    return {
        "name": step.name,
        "status": step.status.value,
        "started_at": step.started_at.isoformat(),
        "finished_at": finished.isoformat() if finished else None,
        "offset_seconds": _rounded(_seconds(run.started_at, step.started_at)),
        "waited_seconds": _rounded(waited),
        "duration_seconds": _rounded(_seconds(step.started_at, finished)),
        "running_seconds": None if finished else _rounded(_seconds(step.started_at, now)),
        "summary": summary(step, limit=10_000),
        "detail": step.detail,
    }


def status_json(run: Run, now: datetime) -> dict[str, Any]:
    steps = [step_json(step, run, now, waited) for step, waited in zip(run.steps, waits(run), strict=True)]
    return {**run_json(run, now), "steps": steps}


def status_lines(run: Run, now: datetime) -> list[str]:
    """The run's chain: a heading, then one line per step in the order they started."""
    age = duration(_seconds(run.started_at, now))
    if run.finished_at is not None:
        took = duration(_seconds(run.started_at, run.finished_at))
        when = (
            f"{run.status.value} in {took} "
            f"(started {timestamp(run.started_at)}, finished {timestamp(run.finished_at)})"
        )
    else:
        when = f"{run.status.value} (started {timestamp(run.started_at)}, {age} ago)"
    lines = [
        f"run     {run.run_id}",
        f"status  {when}",
        f"cause   {cause_of(run)}  {json.dumps(run.cause, sort_keys=True)[:SUMMARY_CHARS]}",
    ]
    if run.labels:
        lines.append("labels  " + ", ".join(f"{key}={value}" for key, value in sorted(run.labels.items())))
    if not run.steps:
        lines.append("no steps recorded yet")
        return lines
    rows = []
    for step, waited in zip(run.steps, waits(run), strict=True):
        finished = step.finished_at if step.status is not StepStatus.STARTED else None
        took = (
            duration(_seconds(step.started_at, finished))
            if finished
            else f"{duration(_seconds(step.started_at, now))}…"
        )
        rows.append(
            (
                f"{step.started_at:%H:%M:%S}",
                f"+{duration(_seconds(run.started_at, step.started_at))}",
                duration(waited),
                step.name,
                step.status.value,
                f"{finished:%H:%M:%S}" if finished else "-",
                took,
                summary(step),
            )
        )
    header = ("START", "OFFSET", "WAITED", "STEP", "STATUS", "END", "TOOK", "DETAIL")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(7)]
    lines.append("")
    lines.extend(_line(row, widths) for row in [header, *rows])
    return lines


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells padded to their column's width; the last cell is free (it holds the long text)."""
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join([*padded, *cells[len(widths) :]]).rstrip()


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None
