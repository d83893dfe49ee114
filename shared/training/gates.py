"""Metric gates: may a trained candidate become a model version? Every reason, numbers side by side.

A gate names a metric, which direction is better, optional absolute bounds (``min``/``max``) and an optional
tolerance against the champion (how much worse than the champion the candidate may be, absolute or
relative to the champion's value). The rules:

* a metric the candidate did not report (or reported as NaN/infinite/non-number) fails its gate;
* the absolute bounds always apply; both may be set (e.g. ``accuracy`` at least 0.8 but below 0.999,
  since a perfect score usually means a leak);
* the champion comparison applies only when the gate has a tolerance and the champion reported the metric.
  No champion, or a champion without that metric (a hand-registered model), leaves only the absolute bounds,
  and the verdict says so;
* the candidate passes only when no check fails.

Config shape (one entry of a model's ``gates`` list; parsed by :func:`parse_gates`)::

    - metric: accuracy
      direction: higher        # higher (default) | lower: which is better
      min: 0.8                 # absolute floor
      max: 0.999               # absolute ceiling
      tolerance: 0.01          # at most 0.01 below the champion; "2%" = 2% of the champion's value
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.problems import Problems, Reader, shown

Direction = Literal["higher", "lower"]
Outcome = Literal["pass", "fail", "skipped"]
Kind = Literal["present", "min", "max", "champion"]
Op = Literal[">=", "<="]

#: Two floats this close are equal for a gate: 0.9 - 10% must admit 0.81 whatever the rounding.
_REL_TOL = 1e-9
_ABS_TOL = 1e-12


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the champion a candidate may be: ``amount`` absolute, or a fraction if relative."""

    amount: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount < 0:
            raise ValueError("a tolerance is a finite amount >= 0")

    def allowance(self, champion: float) -> float:
        return abs(champion) * self.amount if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"


@dataclass(frozen=True)
class Gate:
    """One metric's requirements."""

    metric: str
    direction: Direction = "higher"
    minimum: float | None = None
    maximum: float | None = None
    tolerance: Tolerance | None = None

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("a gate names a metric")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"direction must be higher or lower, got {self.direction!r}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{self.metric}: min {self.minimum:g} is above max {self.maximum:g}")


@dataclass(frozen=True)
class Check:
    """One comparison made for a gate, with the numbers it compared."""

    metric: str
    kind: Kind
    outcome: Outcome
    candidate: float | None
    bound: float | None
    champion: float | None
    reason: str
    op: Op | None = None  # how the candidate had to compare with ``bound``

    @property
    def failed(self) -> bool:
        return self.outcome == "fail"


@dataclass(frozen=True)
class Row:
    """A metric side by side: candidate, champion, change and what was required (for approval texts)."""

    metric: str
    direction: Direction
    candidate: float | None
    champion: float | None
    required: tuple[str, ...]
    outcome: Outcome

    @property
    def change(self) -> float | None:
        if self.candidate is None or self.champion is None:
            return None
        return self.candidate - self.champion


@dataclass(frozen=True)
class Verdict:
    """The gates' decision: ``passed`` and every check that led to it."""

    checks: tuple[Check, ...]
    rows: tuple[Row, ...]
    has_champion: bool

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        """Why it failed: one line per failed check (empty when it passed)."""
        return [check.reason for check in self.checks if check.failed]

    @property
    def notes(self) -> list[str]:
        """Checks that could not apply (no champion, or a champion without the metric)."""
        return [check.reason for check in self.checks if check.outcome == "skipped"]

    def table(self) -> str:
        """Plain-text table for a notification: metric, candidate, champion, change, required, result."""
        header = ("metric", "candidate", "champion", "change", "required", "result")
        lines = [header] + [
            (
                row.metric,
                _number(row.candidate),
                _number(row.champion),
                "-" if row.change is None else f"{row.change:+.4g}",
                "; ".join(row.required) or "-",
                row.outcome,
            )
            for row in self.rows
        ]
        widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for the run ledger and the approval request event)."""
        return {
            "passed": self.passed,
            "hasChampion": self.has_champion,
            "reasons": self.reasons,
            "notes": self.notes,
            "metrics": [
                {
                    "metric": row.metric,
                    "direction": row.direction,
                    "candidate": row.candidate,
                    "champion": row.champion,
                    "change": row.change,
                    "required": list(row.required),
                    "outcome": row.outcome,
                }
                for row in self.rows
            ],
            "checks": [
                {
                    "metric": check.metric,
                    "kind": check.kind,
                    "outcome": check.outcome,
                    "candidate": check.candidate,
                    "bound": check.bound,
                    "champion": check.champion,
                    "reason": check.reason,
                }
                for check in self.checks
            ],
        }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def metric_value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """The metric as a finite float, or None when absent or not a usable number."""
    if metrics is None:
        return None
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _at_least(value: float, bound: float) -> bool:
    return value >= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _at_most(value: float, bound: float) -> bool:
    return value <= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def evaluate(
    gates: Iterable[Gate], candidate: Mapping[str, Any], champion: Mapping[str, Any] | None = None
) -> Verdict:
    """Apply every gate to the candidate's metrics, against the champion's when there is one."""
    checks: list[Check] = []
    rows: list[Row] = []
    for gate in gates:
        gate_checks = _gate_checks(gate, candidate, champion)
        checks += gate_checks
        rows.append(
            Row(
                metric=gate.metric,
                direction=gate.direction,
                candidate=metric_value(candidate, gate.metric),
                champion=metric_value(champion, gate.metric),
                required=tuple(_requirement(check) for check in gate_checks if check.bound is not None),
                outcome="fail" if any(check.failed for check in gate_checks) else "pass",
            )
        )
    return Verdict(tuple(checks), tuple(rows), has_champion=champion is not None)


def _requirement(check: Check) -> str:
    assert check.bound is not None and check.op is not None
    return f"{check.op} {check.bound:.4g}" + (" (champion)" if check.kind == "champion" else "")


def _compare(metric: str, kind: Kind, value: float, op: Op, bound: float, champion: float | None) -> Check:
    ok = _at_least(value, bound) if op == ">=" else _at_most(value, bound)
    if kind == "champion":
        relation = "within tolerance of" if ok else "worse than"
        said = f"is {relation} the champion's {champion:.4g} (needs {op} {bound:.4g})"
    elif ok:
        said = f"is {'at least' if op == '>=' else 'at most'} {bound:.4g}"
    else:
        said = f"is {'below the minimum' if op == '>=' else 'above the maximum'} {bound:.4g}"
    return Check(
        metric, kind, "pass" if ok else "fail", value, bound, champion, f"{metric}: {value:.4g} {said}", op
    )


def _gate_checks(gate: Gate, candidate: Mapping[str, Any], champion: Mapping[str, Any] | None) -> list[Check]:
    metric = gate.metric
    value = metric_value(candidate, metric)
    best = metric_value(champion, metric)
    if value is None:
        why = (
            "missing" if metric not in candidate else f"not a finite number ({shown(candidate.get(metric))})"
        )
        return [
            Check(metric, "present", "fail", None, None, best, f"{metric}: {why} in the candidate's metrics")
        ]
    checks: list[Check] = []
    if gate.minimum is not None:
        checks.append(_compare(metric, "min", value, ">=", gate.minimum, best))
    if gate.maximum is not None:
        checks.append(_compare(metric, "max", value, "<=", gate.maximum, best))
    if gate.tolerance is not None:
        if best is None:
            why = "the champion reported no usable value" if champion is not None else "there is no champion"
            reason = f"{metric}: {why}; only the absolute bounds apply"
            checks.append(Check(metric, "champion", "skipped", value, None, None, reason))
        elif gate.direction == "higher":
            checks.append(
                _compare(metric, "champion", value, ">=", best - gate.tolerance.allowance(best), best)
            )
        else:
            checks.append(
                _compare(metric, "champion", value, "<=", best + gate.tolerance.allowance(best), best)
            )
    return checks


# ---------------------------------------------------------------------------------------------- parsing


def parse_gates(items: Any, path: str, problems: Problems) -> list[Gate]:
    """Gates from the config list at ``path``; each problem recorded in ``problems`` as ``path[i].field``."""
    if items is None:
        return []
    if not isinstance(items, list):
        problems.add(path, f"must be a list, got {type(items).__name__}")
        return []
    gates: list[Gate] = []
    for index, item in enumerate(items):
        gate = _parse_gate(Reader(item, f"{path}[{index}]", problems))
        if gate is not None:
            gates.append(gate)
    return gates


def _parse_gate(reader: Reader) -> Gate | None:
    reader.unknown({"metric", "direction", "min", "max", "tolerance"})
    metric = reader.string("metric", required=True)
    direction = reader.string("direction", "higher")
    if direction not in ("higher", "lower"):
        reader.add("direction", f"must be higher or lower, got {shown(direction)}")
        return None
    minimum = reader.number("min", math.nan) if reader.has("min") else None
    maximum = reader.number("max", math.nan) if reader.has("max") else None
    tolerance = _parse_tolerance(reader)
    if reader.has("tolerance") and tolerance is None:
        return None  # the problem is recorded
    if minimum is not None and maximum is not None and minimum > maximum:
        reader.add("max", f"must not be below min ({minimum:g}), got {maximum:g}")
        return None
    if minimum is None and maximum is None and not reader.has("tolerance"):
        reader.add("metric", "a gate needs at least one of min, max or tolerance")
        return None
    if (
        metric is None
        or (minimum is not None and math.isnan(minimum))
        or (maximum is not None and math.isnan(maximum))
    ):
        return None
    return Gate(metric, "lower" if direction == "lower" else "higher", minimum, maximum, tolerance)


def _parse_tolerance(reader: Reader) -> Tolerance | None:
    if not reader.has("tolerance"):
        return None
    raw = reader.get("tolerance")
    relative = isinstance(raw, str) and raw.strip().endswith("%")
    try:
        if relative:
            amount = float(str(raw).strip()[:-1]) / 100
        elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueError
        else:
            amount = float(raw)
        return Tolerance(amount, relative)
    except ValueError:
        reader.add("tolerance", f"must be a number >= 0 or a percentage such as '2%', got {shown(raw)}")
        return None
