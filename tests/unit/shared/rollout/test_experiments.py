"""The shadow and A/B strategies in the machine: every transition as a table test, plus the pure checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.ports.deployments import RevisionState, TrafficTarget
from shared.ports.metrics import LatencyPercentiles, RevisionMetrics
from shared.rollout.analysis import Thresholds, Verdict, analyse
from shared.rollout.experiments import ABMetric, ShadowComparison, ab_verdict, shadow_checks
from shared.rollout.machine import (
    Command,
    CommandAction,
    EventKind,
    Mirror,
    Observed,
    Phase,
    Policy,
    Rollout,
    SetTraffic,
    advance,
    mirroring,
    supersede,
)
from shared.rolloutconfig import MetricDecision, Strategy

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
CAND, STABLE = "svc-run-2", "svc-seed"
THRESHOLDS = Thresholds(min_requests=20, max_5xx_share=0.05, max_p95_ratio=2.0)
SHADOW = Policy(
    strategy=Strategy.SHADOW,
    steps=(0,),
    interval_seconds=10,
    intervals=(10.0,),
    inconclusive_wait_seconds=10,
    ready_timeout_seconds=60,
    shadow_min_requests=20,
    shadow_min_agreement=0.9,
    shadow_sample=0.5,
)
SHADOW_THEN_CANARY = replace(SHADOW, steps=(0, 50, 100), intervals=(10.0, 5.0, 5.0))
METRIC = MetricDecision("custom.googleapis.com/shop/retained", "higher", 0.01)
AB = Policy(
    strategy=Strategy.AB,
    steps=(50,),
    interval_seconds=30,
    intervals=(30.0,),
    inconclusive_wait_seconds=10,
    ready_timeout_seconds=60,
    ab_decide="metric",
    ab_metric=METRIC,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rollout(
    phase: Phase = Phase.STEPPING, step: int = 0, window: float | None = 0.0, **changes: object
) -> Rollout:
    base = Rollout(
        service="svc",
        run_id="run-2",
        candidate=CAND,
        started_at=T0,
        model="churn",
        version="2",
        stable=STABLE,
    )
    return replace(
        base,
        phase=phase,
        step=step,
        entered_at=T0,
        window_start=at(window) if window is not None else None,
        **changes,  # type: ignore[arg-type]
    )


def metrics(name: str, requests: int, errors: int = 0, p95: float = 20.0) -> RevisionMetrics:
    by_class = {"2xx": requests - errors, **({"5xx": errors} if errors else {})}
    return RevisionMetrics(name, by_class, LatencyPercentiles(p95, p95, p95))


def seen(percent: int, **changes: object) -> Observed:
    split = {STABLE: 100 - percent, CAND: percent}
    observed = Observed(
        exists=True,
        candidate=RevisionState.READY,
        asked=split,
        served=split,
        tags={"stable": STABLE, "candidate": CAND},
    )
    return replace(observed, **changes)  # type: ignore[arg-type]


def shadowed(agree: int, disagree: int = 0, error: int = 0, errors_5xx: int = 0) -> Observed:
    copies = agree + disagree + error
    analysis = analyse(metrics(CAND, copies, errors_5xx), metrics(STABLE, 400), THRESHOLDS)
    return seen(0, analysis=analysis, comparison=ShadowComparison(agree, disagree, error))


# -- shadow --------------------------------------------------------------------------------------------------


def test_a_ready_shadow_candidate_stays_at_zero_and_turns_the_mirror_on() -> None:
    decision = advance(rollout(Phase.DEPLOYING, step=-1, window=None), seen(0), SHADOW, at(2))
    assert decision.rollout.phase is Phase.STEPPING and decision.rollout.step == 0
    assert decision.actions == (
        SetTraffic((TrafficTarget(STABLE, 100, "stable"), TrafficTarget(CAND, 0, "candidate"))),
        Mirror(on=True, sample=0.5),
    )
    assert decision.record is not None and decision.record.name == "rollout:traffic:0"
    assert mirroring(decision.rollout, SHADOW)


def test_the_shadow_window_opens_at_once_since_users_see_no_change() -> None:
    decision = advance(rollout(window=None), seen(0), SHADOW, at(1))
    assert decision.rollout.window_start == at(1) and decision.actions == ()


def test_agreeing_copies_after_the_duration_promote_and_turn_the_mirror_off() -> None:
    early = advance(rollout(), shadowed(agree=40), SHADOW, at(5))
    assert early.rollout == rollout() and early.actions == ()  # held for the duration
    decision = advance(rollout(), shadowed(agree=40), SHADOW, at(10))
    assert decision.rollout.phase is Phase.PROMOTING
    assert decision.rollout.reason == "the shadow comparison passed"
    assert decision.actions[0] == Mirror(on=False)  # the mirror stops before the candidate takes users
    assert isinstance(decision.actions[1], SetTraffic)
    assert decision.record is not None and decision.record.name == "rollout:step:0"
    assert decision.record.result["shadow"] == {
        "agree": 40,
        "disagree": 0,
        "error": 0,
        "total": 40,
        "agreement": 1.0,
    }
    assert decision.record.result["verdict"] == "healthy"


def test_disagreeing_predictions_roll_back_at_once_with_the_mirror_off() -> None:
    decision = advance(rollout(), shadowed(agree=15, disagree=10), SHADOW, at(3))
    assert decision.rollout.phase is Phase.ROLLING_BACK
    assert "shadow comparison unhealthy: predictions agree on 60.0% of copies" in decision.rollout.reason
    assert decision.actions[0] == Mirror(on=False)
    assert decision.actions[1] == SetTraffic(
        (TrafficTarget(STABLE, 100, "stable"), TrafficTarget(CAND, 0, "failed"))
    )
    assert [event.kind for event in decision.events] == [EventKind.STEP]


def test_a_candidate_failing_the_copies_is_rolled_back_on_its_5xx_share() -> None:
    decision = advance(rollout(), shadowed(agree=30, error=10, errors_5xx=10), SHADOW, at(3))
    assert decision.rollout.phase is Phase.ROLLING_BACK and "5xx 25.0%" in decision.rollout.reason


def test_too_few_copies_is_inconclusive_never_a_pass() -> None:
    waiting = advance(rollout(), shadowed(agree=5), SHADOW, at(12))
    assert waiting.rollout.phase is Phase.STEPPING and waiting.rollout.inconclusive_since == at(12)
    failed = advance(waiting.rollout, shadowed(agree=5), SHADOW, at(23))
    assert failed.rollout.phase is Phase.ROLLING_BACK
    assert "5 copies compared, fewer than the 20 needed" in failed.rollout.reason


def test_no_comparison_read_is_inconclusive() -> None:
    analysis = analyse(metrics(CAND, 40), metrics(STABLE, 400), THRESHOLDS)
    decision = advance(rollout(), seen(0, analysis=analysis), SHADOW, at(12))
    assert decision.rollout.phase is Phase.STEPPING and decision.rollout.inconclusive_since is not None


def test_a_passing_shadow_hands_over_to_the_canary_steps() -> None:
    decision = advance(rollout(), shadowed(agree=40), SHADOW_THEN_CANARY, at(10))
    assert decision.rollout.phase is Phase.STEPPING and decision.rollout.step == 1
    assert decision.actions == (
        Mirror(on=False),
        SetTraffic((TrafficTarget(STABLE, 50, "stable"), TrafficTarget(CAND, 50, "candidate"))),
    )
    assert decision.record is not None and decision.record.name == "rollout:step:0"
    assert not mirroring(decision.rollout, SHADOW_THEN_CANARY)


def test_pausing_a_shadow_stops_the_mirror_and_resuming_starts_it_again() -> None:
    pause = Command("c1", CommandAction.PAUSE, by="ana")
    paused = advance(rollout(), seen(0, command=pause), SHADOW, at(3))
    assert paused.rollout.phase is Phase.PAUSED and paused.actions == (Mirror(on=False),)
    resume = Command("c2", CommandAction.RESUME, by="ana")
    resumed = advance(paused.rollout, seen(0, command=resume), SHADOW, at(9))
    assert resumed.rollout.phase is Phase.STEPPING and resumed.actions == (Mirror(on=True, sample=0.5),)


def test_an_operator_rollback_during_the_shadow_turns_the_mirror_off() -> None:
    command = Command("c1", CommandAction.ROLLBACK, by="ana")
    decision = advance(rollout(), seen(0, command=command), SHADOW, at(3))
    assert decision.rollout.phase is Phase.ROLLING_BACK and decision.actions[0] == Mirror(on=False)


def test_supersede_of_a_shadowing_rollout_is_mirroring_until_the_adapter_stops_it() -> None:
    # The adapter adds Mirror(off) to the superseded rollout's step (shared/chain/rollout.py).
    assert mirroring(rollout(), SHADOW)
    assert not mirroring(supersede(rollout(), "run-3", at(1)).rollout, SHADOW)


def test_a_canary_never_touches_the_mirror() -> None:
    canary = Policy(steps=(10, 100), interval_seconds=5)
    decision = advance(rollout(Phase.DEPLOYING, step=-1, window=None), seen(0), canary, at(2))
    assert not any(isinstance(action, Mirror) for action in decision.actions)


# -- A/B -----------------------------------------------------------------------------------------------------


def ab_seen(stable_mean: float | None, candidate_mean: float | None, errors: int = 0) -> Observed:
    analysis = analyse(metrics(CAND, 200, errors), metrics(STABLE, 200), THRESHOLDS)
    metric = ABMetric(
        METRIC.type,
        stable_mean,
        candidate_mean,
        stable_points=10 if stable_mean is not None else 0,
        candidate_points=10 if candidate_mean is not None else 0,
    )
    return seen(50, analysis=analysis, ab=metric)


def test_a_ready_ab_candidate_takes_its_fixed_split() -> None:
    decision = advance(rollout(Phase.DEPLOYING, step=-1, window=None), seen(0), AB, at(2))
    assert decision.actions == (
        SetTraffic((TrafficTarget(STABLE, 50, "stable"), TrafficTarget(CAND, 50, "candidate"))),
    )


def test_the_ab_split_is_held_for_the_duration_even_when_the_metric_already_leads() -> None:
    decision = advance(rollout(), ab_seen(0.5, 0.9), AB, at(29))
    assert decision.rollout == rollout() and decision.actions == ()


def test_an_unhealthy_ab_candidate_is_rolled_back_before_the_duration() -> None:
    decision = advance(rollout(), ab_seen(0.5, 0.9, errors=50), AB, at(5))
    assert (
        decision.rollout.phase is Phase.ROLLING_BACK and "A/B test (50%) unhealthy" in decision.rollout.reason
    )


def test_a_winning_candidate_is_promoted_with_the_numbers() -> None:
    decision = advance(rollout(), ab_seen(0.50, 0.60), AB, at(30))
    assert decision.rollout.phase is Phase.PROMOTING
    assert decision.rollout.reason == "the candidate won the A/B test"
    assert decision.record is not None and decision.record.result["ab"]["candidate_mean"] == 0.60
    assert any("A/B won" in reason for reason in decision.record.result["reasons"])


def test_a_losing_candidate_is_rolled_back_with_the_numbers() -> None:
    decision = advance(rollout(), ab_seen(0.50, 0.505), AB, at(30))  # lift 0.005 < 0.01
    assert decision.rollout.phase is Phase.ROLLING_BACK
    assert "A/B lost: custom.googleapis.com/shop/retained: candidate 0.505 vs stable 0.5" in (
        decision.rollout.reason
    )


def test_an_ab_metric_without_points_is_inconclusive_then_fails() -> None:
    waiting = advance(rollout(), ab_seen(0.5, None), AB, at(30))
    assert waiting.rollout.phase is Phase.STEPPING and waiting.rollout.inconclusive_since == at(30)
    failed = advance(waiting.rollout, ab_seen(0.5, None), AB, at(41))
    assert (
        failed.rollout.phase is Phase.ROLLING_BACK and "no points for the candidate" in failed.rollout.reason
    )


def test_an_ab_test_decided_by_a_person_pauses_with_the_reading_then_promote_works() -> None:
    human = replace(AB, ab_decide="human")
    decision = advance(rollout(), ab_seen(0.50, 0.40), human, at(30))
    assert decision.rollout.phase is Phase.PAUSED and decision.actions == ()  # the split holds
    assert "waiting for an operator to promote or roll back" in decision.rollout.reason
    assert "A/B lost" in decision.rollout.reason  # the reading is shown, the person decides
    assert decision.record is not None and decision.record.name == "rollout:paused"
    assert [event.kind for event in decision.events] == [EventKind.STEP, EventKind.PAUSED]
    promote = Command("c1", CommandAction.PROMOTE, by="ana")
    promoted = advance(decision.rollout, seen(50, command=promote), human, at(40))
    assert promoted.rollout.phase is Phase.PROMOTING


# -- the pure checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comparison", "verdicts"),
    [
        (None, [Verdict.INCONCLUSIVE]),
        (ShadowComparison(19), [Verdict.INCONCLUSIVE]),
        (ShadowComparison(18, 2), [Verdict.HEALTHY, Verdict.HEALTHY]),  # 90% = the minimum
        (ShadowComparison(17, 2, 1), [Verdict.HEALTHY, Verdict.UNHEALTHY]),  # an error counts against
    ],
)
def test_shadow_checks(comparison: ShadowComparison | None, verdicts: list[Verdict]) -> None:
    assert [check.outcome for check in shadow_checks(comparison, 20, 0.9)] == verdicts


@pytest.mark.parametrize(
    ("decision", "stable", "candidate", "verdict"),
    [
        (MetricDecision("m", "higher", 0.0), 0.5, 0.5, Verdict.HEALTHY),  # not worse is enough at lift 0
        (MetricDecision("m", "higher", 0.1), 0.5, 0.55, Verdict.UNHEALTHY),
        (MetricDecision("m", "lower", 0.0), 120.0, 100.0, Verdict.HEALTHY),
        (MetricDecision("m", "lower", 0.0), 100.0, 120.0, Verdict.UNHEALTHY),
        (MetricDecision("m", "higher", 0.0), None, 0.5, Verdict.INCONCLUSIVE),
    ],
)
def test_ab_verdict(
    decision: MetricDecision, stable: float | None, candidate: float | None, verdict: Verdict
) -> None:
    metric = ABMetric("m", stable, candidate, 3 if stable is not None else 0, 3)
    assert ab_verdict(metric, decision)[0] is verdict
    assert ab_verdict(None, decision)[0] is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("policy", [SHADOW, AB, Policy(steps=(10, 100), interval_seconds=5)])
def test_a_candidate_is_smoke_checked_before_its_first_step_when_the_service_has_checks(
    policy: Policy,
) -> None:
    deploying = rollout(Phase.DEPLOYING, step=-1, window=None)
    assert advance(deploying, seen(0), policy, at(2)).rollout.phase is Phase.STEPPING  # no checks: at once
    checked = advance(deploying, seen(0), replace(policy, smoke=True), at(2))
    assert checked.rollout.phase is Phase.SMOKE and checked.actions == ()  # no traffic, no mirror yet
