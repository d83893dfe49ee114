"""The canary verdict: candidate against stable over one analysis window, as a pure function.

:func:`analyse` takes the two revisions' metrics (``shared.ports.metrics.RevisionMetrics``, or None when
Monitoring had nothing on a revision) and :class:`Thresholds`, runs every check and returns an
:class:`Analysis`: the verdict and the outcome of each check with its numbers.

* **Missing data is never a pass.** No metrics, fewer requests than ``min_requests``, or a latency percentile
  without samples make a check INCONCLUSIVE (the caller waits, then fails or pauses per its policy), never
  HEALTHY.
* **Ratios need both sides.** A latency ratio to stable needs stable to have ``min_requests`` and the
  percentile; otherwise that check is INCONCLUSIVE (it never compares against nothing, nor against the
  candidate's own numbers).

The verdict is UNHEALTHY if any check failed, else INCONCLUSIVE if any was inconclusive, else HEALTHY.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import InvalidInput

if TYPE_CHECKING:  # only annotations: the config imports this module at cold start, the ports it need not
    from shared.ports.metrics import RevisionMetrics

#: Stable latencies below this are treated as this (ms) in ratios, so a sub-millisecond stable does not
#: turn a 2 ms candidate into a "10x" regression, and a zero never divides.
RATIO_FLOOR_MS = 1.0


class Verdict(enum.StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 20  # per revision, within the window
    max_5xx_share: float = 0.05
    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_p95_ratio: float | None = None  # candidate p95 / stable p95
    max_p99_ratio: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.min_requests < 1:
            problems.append("min_requests: must be at least 1 (zero requests can never be a pass)")
        if not 0.0 <= self.max_5xx_share <= 1.0:
            problems.append(f"max_5xx_share: {self.max_5xx_share} is not between 0 and 1")
        for name in ("max_p95_ms", "max_p99_ms", "max_p95_ratio", "max_p99_ratio"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"{name}: {value} must be positive")
        if problems:
            raise InvalidInput("canary thresholds", problems)


@dataclass(frozen=True)
class Check:
    name: str  # "requests", "5xx_share", "p95", "p99", "p95_ratio", "p99_ratio"
    outcome: Verdict
    reason: str
    observed: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict
    checks: tuple[Check, ...]
    candidate: RevisionMetrics | None
    stable: RevisionMetrics | None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the verdict is what it is: the failed checks, then the inconclusive ones (every passed check
        when healthy)."""
        if self.verdict is Verdict.HEALTHY:
            return tuple(check.reason for check in self.checks)
        failed = [check.reason for check in self.checks if check.outcome is Verdict.UNHEALTHY]
        unsure = [check.reason for check in self.checks if check.outcome is Verdict.INCONCLUSIVE]
        return (*failed, *unsure)

    def check(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)


def analyse(
    candidate: RevisionMetrics | None, stable: RevisionMetrics | None, thresholds: Thresholds
) -> Analysis:
    """The verdict on ``candidate`` (see the module docstring)."""
    checks = [
        _requests(candidate, thresholds),
        _errors(candidate, thresholds),
    ]
    enough = candidate is not None and candidate.requests >= thresholds.min_requests
    for percentile, limit in ((95, thresholds.max_p95_ms), (99, thresholds.max_p99_ms)):
        if limit is not None:
            checks.append(_absolute(candidate, percentile, limit, enough))
    for percentile, ratio in ((95, thresholds.max_p95_ratio), (99, thresholds.max_p99_ratio)):
        if ratio is not None:
            checks.append(_ratio(candidate, stable, percentile, ratio, enough, thresholds.min_requests))
    outcomes = {check.outcome for check in checks}
    if Verdict.UNHEALTHY in outcomes:
        verdict = Verdict.UNHEALTHY
    elif Verdict.INCONCLUSIVE in outcomes:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.HEALTHY
    return Analysis(verdict=verdict, checks=tuple(checks), candidate=candidate, stable=stable)


def _requests(candidate: RevisionMetrics | None, thresholds: Thresholds) -> Check:
    minimum = thresholds.min_requests
    if candidate is None:
        return Check("requests", Verdict.INCONCLUSIVE, "no metrics for the candidate", None, minimum)
    count = candidate.requests
    if count < minimum:
        return Check(
            "requests",
            Verdict.INCONCLUSIVE,
            f"candidate served {count} requests, fewer than the {minimum} needed",
            count,
            minimum,
        )
    return Check(
        "requests", Verdict.HEALTHY, f"candidate served {count} requests (≥ {minimum})", count, minimum
    )


def _errors(candidate: RevisionMetrics | None, thresholds: Thresholds) -> Check:
    limit = thresholds.max_5xx_share
    if candidate is None or candidate.requests == 0:
        return Check("5xx_share", Verdict.INCONCLUSIVE, "no requests to judge the 5xx share by", None, limit)
    errors = candidate.count("5xx")
    share = errors / candidate.requests
    if candidate.requests < thresholds.min_requests:
        # Even a bad share is not final yet: the window may still fill with good requests.
        return Check(
            "5xx_share",
            Verdict.INCONCLUSIVE,
            f"candidate 5xx {share:.1%} over only {candidate.requests} requests",
            share,
            limit,
        )
    if share > limit:
        return Check("5xx_share", Verdict.UNHEALTHY, f"candidate 5xx {share:.1%} > {limit:.1%}", share, limit)
    return Check("5xx_share", Verdict.HEALTHY, f"candidate 5xx {share:.1%} ≤ {limit:.1%}", share, limit)


def _absolute(candidate: RevisionMetrics | None, percentile: int, limit: float, enough: bool) -> Check:
    name = f"p{percentile}"
    value = candidate.latency.get(percentile) if candidate is not None else None
    if value is None or not enough:
        why = "no latency data" if value is None else "too few requests"
        return Check(name, Verdict.INCONCLUSIVE, f"candidate {name}: {why}", value, limit)
    if value > limit:
        return Check(
            name, Verdict.UNHEALTHY, f"candidate {name} {value:.0f} ms > {limit:.0f} ms", value, limit
        )
    return Check(name, Verdict.HEALTHY, f"candidate {name} {value:.0f} ms ≤ {limit:.0f} ms", value, limit)


def _ratio(
    candidate: RevisionMetrics | None,
    stable: RevisionMetrics | None,
    percentile: int,
    limit: float,
    enough: bool,
    min_requests: int,
) -> Check:
    name = f"p{percentile}_ratio"
    value = candidate.latency.get(percentile) if candidate is not None else None
    baseline = stable.latency.get(percentile) if stable is not None else None
    if value is None or not enough:
        why = "no latency data" if value is None else "too few requests"
        return Check(name, Verdict.INCONCLUSIVE, f"candidate p{percentile}: {why}", None, limit)
    if stable is None or baseline is None or stable.requests < min_requests:
        why = "no stable metrics" if stable is None else f"stable p{percentile} has too little data"
        return Check(name, Verdict.INCONCLUSIVE, f"cannot compare with stable: {why}", None, limit)
    ratio = value / max(baseline, RATIO_FLOOR_MS)
    text = f"candidate p{percentile} {value:.0f} ms is {ratio:.1f}x stable's {baseline:.0f} ms"
    if ratio > limit:
        return Check(name, Verdict.UNHEALTHY, f"{text} (> {limit:g}x)", ratio, limit)
    return Check(name, Verdict.HEALTHY, f"{text} (≤ {limit:g}x)", ratio, limit)
