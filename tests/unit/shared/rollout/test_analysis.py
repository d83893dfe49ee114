"""The canary verdict: every check, every way data can be missing, and how checks combine."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.ports.metrics import LatencyPercentiles, RevisionMetrics
from shared.rollout.analysis import Thresholds, Verdict, analyse

pytestmark = pytest.mark.unit

SHIPPED = Thresholds(min_requests=20, max_5xx_share=0.05, max_p95_ratio=2.0)


def revision(
    ok: int, errors: int = 0, p50: float | None = 10.0, p95: float | None = 20.0, p99: float | None = 30.0
) -> RevisionMetrics:
    counts = {name: count for name, count in (("2xx", ok), ("5xx", errors)) if count}
    return RevisionMetrics("rev", counts, LatencyPercentiles(p50, p95, p99))


GOOD_STABLE = revision(900, p95=20.0)


@pytest.mark.parametrize(
    ("candidate", "stable", "thresholds", "verdict", "reason"),
    [
        # healthy: enough requests, few errors, latency within twice stable's
        (revision(100, 2, p95=30.0), GOOD_STABLE, SHIPPED, Verdict.HEALTHY, "candidate 5xx 2.0% ≤ 5.0%"),
        # the 5xx share alone fails it
        (revision(70, 30, p95=30.0), GOOD_STABLE, SHIPPED, Verdict.UNHEALTHY, "candidate 5xx 30.0% > 5.0%"),
        # latency over the ratio alone fails it
        (revision(100, 0, p95=90.0), GOOD_STABLE, SHIPPED, Verdict.UNHEALTHY, "4.5x stable's 20 ms (> 2x)"),
        # no metrics at all: never a pass
        (None, GOOD_STABLE, SHIPPED, Verdict.INCONCLUSIVE, "no metrics for the candidate"),
        # too few requests: inconclusive even when they all succeeded quickly
        (revision(19, p95=5.0), GOOD_STABLE, SHIPPED, Verdict.INCONCLUSIVE, "fewer than the 20 needed"),
        # too few requests, all failing: still only inconclusive (the window may yet fill with successes)
        (revision(0, 5), GOOD_STABLE, SHIPPED, Verdict.INCONCLUSIVE, "over only 5 requests"),
        # no stable to compare the latency with
        (
            revision(100, p95=30.0),
            None,
            SHIPPED,
            Verdict.INCONCLUSIVE,
            "cannot compare with stable: no stable",
        ),
        # stable with too little data to compare with
        (
            revision(100, p95=30.0),
            revision(3),
            SHIPPED,
            Verdict.INCONCLUSIVE,
            "stable p95 has too little data",
        ),
        # a candidate without latency samples
        (
            revision(100, p95=None),
            GOOD_STABLE,
            SHIPPED,
            Verdict.INCONCLUSIVE,
            "candidate p95: no latency data",
        ),
        # absolute limits
        (
            revision(100, p95=250.0, p99=900.0),
            None,
            Thresholds(max_p95_ms=300, max_p99_ms=800),
            Verdict.UNHEALTHY,
            "candidate p99 900 ms > 800 ms",
        ),
        (
            revision(100, p95=250.0, p99=700.0),
            None,
            Thresholds(max_p95_ms=300, max_p99_ms=800),
            Verdict.HEALTHY,
            "candidate p95 250 ms ≤ 300 ms",
        ),
    ],
)
def test_verdicts(
    candidate: RevisionMetrics | None,
    stable: RevisionMetrics | None,
    thresholds: Thresholds,
    verdict: Verdict,
    reason: str,
) -> None:
    analysis = analyse(candidate, stable, thresholds)

    assert analysis.verdict is verdict
    assert any(reason in text for text in analysis.reasons), analysis.reasons


def test_every_failing_reason_is_reported_failures_first() -> None:
    analysis = analyse(revision(50, 50, p95=100.0), revision(5), SHIPPED)

    assert analysis.verdict is Verdict.UNHEALTHY
    assert analysis.reasons == (
        "candidate 5xx 50.0% > 5.0%",
        "cannot compare with stable: stable p95 has too little data",
    )
    errors = analysis.check("5xx_share")
    assert errors is not None and (errors.observed, errors.limit) == (0.5, 0.05)


def test_a_healthy_verdict_lists_every_passed_check() -> None:
    analysis = analyse(revision(100, p95=30.0), GOOD_STABLE, SHIPPED)

    assert analysis.verdict is Verdict.HEALTHY
    assert [check.name for check in analysis.checks] == ["requests", "5xx_share", "p95_ratio"]
    assert len(analysis.reasons) == 3
    ratio = analysis.check("p95_ratio")
    assert ratio is not None and ratio.observed == pytest.approx(1.5)


def test_the_ratio_reads_the_candidate_not_the_stable() -> None:
    """Argo Rollouts #1700: an analysis that reads stable's numbers for the candidate passes bad canaries."""
    slow_candidate = revision(100, p95=400.0)
    fast_stable = revision(900, p95=20.0)

    assert analyse(slow_candidate, fast_stable, SHIPPED).verdict is Verdict.UNHEALTHY
    assert analyse(fast_stable, slow_candidate, SHIPPED).verdict is Verdict.HEALTHY


def test_a_sub_millisecond_stable_does_not_inflate_the_ratio() -> None:
    analysis = analyse(revision(100, p95=1.5), revision(900, p95=0.2), SHIPPED)

    assert analysis.verdict is Verdict.HEALTHY
    ratio = analysis.check("p95_ratio")
    assert ratio is not None and ratio.observed == pytest.approx(1.5)


def test_zero_requests_reported_as_zero_are_not_a_pass() -> None:
    """Flagger #1581: no traffic must not count as a healthy canary."""
    analysis = analyse(RevisionMetrics("rev"), GOOD_STABLE, Thresholds(min_requests=1))

    assert analysis.verdict is Verdict.INCONCLUSIVE
    assert "no requests to judge the 5xx share by" in analysis.reasons


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"min_requests": 0}, "min_requests"),
        ({"max_5xx_share": 1.5}, "max_5xx_share"),
        ({"max_p95_ratio": 0}, "max_p95_ratio"),
        ({"max_p99_ms": -1}, "max_p99_ms"),
    ],
)
def test_thresholds_that_would_let_missing_data_pass_are_refused(
    fields: dict[str, float], problem: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        Thresholds(**fields)  # type: ignore[arg-type]

    assert any(item.startswith(problem) for item in raised.value.problems)
