"""The shadow comparison and the A/B decision, as pure functions over numbers a tick read.

**Shadow.** The candidate never answers users: the serving image copies a sample of the requests the
stable revision answered to the candidate's tag URL and counts, per copy, whether the candidate's predictions
*agree* with stable's, *disagree*, or the copy met an *error* (``examples/server/server/shadow.py`` writes
the counts as the custom metric ``custom.googleapis.com/mlops/shadow_comparisons``). The candidate's own
errors and latency come from Cloud Run's request metrics of the candidate revision, which serve the copies
(the canary analysis of :mod:`shared.rollout.analysis`, with the shadow's ``minRequests``). The comparison
adds two checks: enough copies compared (fewer is INCONCLUSIVE, never a pass) and the agreement share.

**A/B.** A fixed split for a duration, health-checked all along like a canary step; at its end a custom
metric the application writes (e.g. a conversion or retention rate, labelled with the ``revision`` that
served the user) decides: the candidate's mean against stable's in the direction the config names, by at
least ``minLift``. No points for either side is INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.rollout.analysis import Analysis, Check, Verdict
from shared.rolloutconfig import MetricDecision

OUTCOMES = ("agree", "disagree", "error")


@dataclass(frozen=True)
class ShadowComparison:
    """Copies of stable's requests the candidate answered over the window, by outcome."""

    agree: int = 0
    disagree: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        return self.agree + self.disagree + self.error

    @property
    def agreement(self) -> float | None:
        """Agreeing copies among every copy (an error counts against); None when nothing was compared."""
        return self.agree / self.total if self.total else None

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "agree": self.agree,
            "disagree": self.disagree,
            "error": self.error,
            "total": self.total,
            "agreement": self.agreement,
        }


@dataclass(frozen=True)
class ABMetric:
    """The A/B decision metric over the test: each side's mean and how many points it rests on."""

    metric_type: str
    stable_mean: float | None = None
    candidate_mean: float | None = None
    stable_points: int = 0
    candidate_points: int = 0

    def to_json(self) -> dict[str, float | int | str | None]:
        return {
            "metric": self.metric_type,
            "stable_mean": self.stable_mean,
            "candidate_mean": self.candidate_mean,
            "stable_points": self.stable_points,
            "candidate_points": self.candidate_points,
        }


def with_checks(analysis: Analysis | None, extra: tuple[Check, ...]) -> Analysis:
    """``analysis`` with ``extra`` checks added and the verdict taken again over all of them (no analysis:
    an inconclusive one, so missing metrics stay missing)."""
    base = analysis or Analysis(
        Verdict.INCONCLUSIVE,
        (Check("metrics", Verdict.INCONCLUSIVE, "no analysis: no metrics were read"),),
        None,
        None,
    )
    checks = (*base.checks, *extra)
    outcomes = {check.outcome for check in checks}
    if Verdict.UNHEALTHY in outcomes:
        verdict = Verdict.UNHEALTHY
    elif Verdict.INCONCLUSIVE in outcomes:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.HEALTHY
    return replace(base, verdict=verdict, checks=checks)


def shadow_checks(
    comparison: ShadowComparison | None, min_requests: int, min_agreement: float
) -> tuple[Check, ...]:
    """How many copies were compared and how many agreed (an unhealthy share only once there are enough)."""
    if comparison is None:
        return (Check("mirrored", Verdict.INCONCLUSIVE, "no shadow comparison was read", None, min_requests),)
    total = comparison.total
    if total < min_requests:
        return (
            Check(
                "mirrored",
                Verdict.INCONCLUSIVE,
                f"{total} copies compared, fewer than the {min_requests} needed",
                total,
                min_requests,
            ),
        )
    mirrored = Check(
        "mirrored", Verdict.HEALTHY, f"{total} copies compared (≥ {min_requests})", total, min_requests
    )
    agreement = comparison.agreement or 0.0
    text = (
        f"predictions agree on {agreement:.1%} of copies ({comparison.disagree} differ, "
        f"{comparison.error} errors)"
    )
    if agreement < min_agreement:
        return mirrored, Check(
            "agreement", Verdict.UNHEALTHY, f"{text} < {min_agreement:.0%}", agreement, min_agreement
        )
    return mirrored, Check(
        "agreement", Verdict.HEALTHY, f"{text} ≥ {min_agreement:.0%}", agreement, min_agreement
    )


def ab_verdict(metric: ABMetric | None, decision: MetricDecision) -> tuple[Verdict, str]:
    """Whether the candidate won the A/B test on its metric: HEALTHY (won), UNHEALTHY (lost) or
    INCONCLUSIVE (a side without points), with the numbers."""
    name = decision.type
    if metric is None:
        return Verdict.INCONCLUSIVE, f"{name} could not be read"
    if metric.stable_mean is None or metric.candidate_mean is None:
        return (
            Verdict.INCONCLUSIVE,
            f"{name}: no points for the "
            + ("stable" if metric.stable_mean is None else "candidate")
            + f" revision (stable {metric.stable_points}, candidate {metric.candidate_points} points)",
        )
    candidate, stable = metric.candidate_mean, metric.stable_mean
    lift = candidate - stable if decision.direction == "higher" else stable - candidate
    better = "higher" if decision.direction == "higher" else "lower"
    text = (
        f"{name}: candidate {candidate:.4g} vs stable {stable:.4g} ({better} is better; "
        f"lift {lift:+.4g}, needed ≥ {decision.min_lift:g}; "
        f"{metric.candidate_points}/{metric.stable_points} points)"
    )
    if lift >= decision.min_lift:
        return Verdict.HEALTHY, f"A/B won: {text}"
    return Verdict.UNHEALTHY, f"A/B lost: {text}"
