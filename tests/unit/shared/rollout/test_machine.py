"""The rollout state machine, transition by transition (pure: plain values in, a decision out)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.ports.deployments import RevisionState, TrafficTarget
from shared.ports.metrics import LatencyPercentiles, RevisionMetrics
from shared.rollout.analysis import Thresholds, analyse
from shared.rollout.machine import (
    Command,
    CommandAction,
    CreateService,
    DeployCandidate,
    EventKind,
    MoveAlias,
    Observed,
    Phase,
    Policy,
    Rollout,
    SetTraffic,
    SmokeOutcome,
    advance,
    shares,
    stable_of,
    supersede,
)
from shared.rolloutconfig import Strategy

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POLICY = Policy(
    steps=(10, 50, 100), interval_seconds=5, inconclusive_wait_seconds=10, ready_timeout_seconds=60
)
THRESHOLDS = Thresholds(min_requests=20, max_5xx_share=0.05, max_p95_ratio=2.0)
CAND, STABLE = "svc-run-2", "svc-seed"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def base(**changes: object) -> Rollout:
    rollout = Rollout(
        service="svc", run_id="run-2", candidate=CAND, started_at=T0, model="churn", version="2"
    )
    return replace(rollout, entered_at=T0, **changes)  # type: ignore[arg-type]


def stepping(step: int = 0, window: float | None = 0.0, **changes: object) -> Rollout:
    return base(
        phase=Phase.STEPPING,
        stable=STABLE,
        step=step,
        window_start=at(window) if window is not None else None,
        **changes,
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


def healthy(requests: int = 50) -> Observed:
    analysis = analyse(metrics(CAND, requests), metrics(STABLE, 400), THRESHOLDS)
    return seen(10, analysis=analysis)


# -- pending and deploying ---------------------------------------------------------------------------------


def test_pending_on_an_existing_service_deploys_the_candidate_at_zero_and_starts() -> None:
    decision = advance(base(), seen(0), POLICY, T0)
    assert decision.rollout.phase is Phase.DEPLOYING and decision.rollout.stable == STABLE
    assert decision.actions == (DeployCandidate(),)
    assert decision.record is not None and decision.record.name == "rollout:started"
    assert decision.record.key == "rollout/svc/run-2/started/0"
    assert [event.kind for event in decision.events] == [EventKind.STARTED]


def test_pending_takes_a_superseded_candidates_share_back_before_deploying() -> None:
    observed = Observed(
        exists=True, asked={STABLE: 50, "svc-run-1": 50}, served={STABLE: 50, "svc-run-1": 50}
    )
    decision = advance(base(stable=STABLE), observed, POLICY, T0)
    assert decision.actions == (SetTraffic((TrafficTarget(STABLE, 100, "stable"),)), DeployCandidate())


def test_pending_without_a_service_creates_it_with_the_candidate() -> None:
    decision = advance(base(), Observed(exists=False), POLICY, T0)
    assert decision.actions == (CreateService(),)
    assert decision.rollout.first_deploy and decision.rollout.stable == ""


def test_pending_waits_while_nothing_serves_yet() -> None:
    decision = advance(base(), Observed(exists=True), POLICY, T0)
    assert decision.rollout == base() and decision.actions == ()


def test_a_ready_canary_candidate_enters_step_zero() -> None:
    rollout = base(phase=Phase.DEPLOYING, stable=STABLE)
    decision = advance(rollout, seen(0), POLICY, at(2))
    assert decision.rollout.phase is Phase.STEPPING and decision.rollout.step == 0
    assert decision.actions == (
        SetTraffic((TrafficTarget(STABLE, 90, "stable"), TrafficTarget(CAND, 10, "candidate"))),
    )
    assert decision.record is not None and decision.record.name == "rollout:traffic:0"


@pytest.mark.parametrize("strategy", [Strategy.BLUE_GREEN])
def test_a_ready_blue_green_candidate_goes_to_smoke_first(strategy: Strategy) -> None:
    rollout = base(phase=Phase.DEPLOYING, stable=STABLE)
    decision = advance(rollout, seen(0), replace(POLICY, strategy=strategy, steps=(100,)), at(2))
    assert decision.rollout.phase is Phase.SMOKE and decision.actions == ()


def test_a_pending_candidate_waits_until_the_ready_timeout_then_rolls_back() -> None:
    rollout = base(phase=Phase.DEPLOYING, stable=STABLE)
    waiting = seen(0, candidate=RevisionState.PENDING)
    assert advance(rollout, waiting, POLICY, at(30)).rollout == rollout
    decision = advance(rollout, waiting, POLICY, at(61))
    assert decision.rollout.phase is Phase.ROLLING_BACK and "not ready after 61s" in decision.rollout.reason
    assert decision.actions == (SetTraffic((TrafficTarget(STABLE, 100, "stable"),)),)  # unusable: left out


def test_a_failed_candidate_rolls_back_with_its_message() -> None:
    observed = seen(0, candidate=RevisionState.FAILED, candidate_message="exit 1")
    decision = advance(base(phase=Phase.DEPLOYING, stable=STABLE), observed, POLICY, at(1))
    assert decision.rollout.phase is Phase.ROLLING_BACK and "exit 1" in decision.rollout.reason


def test_a_failed_first_revision_aborts_there_is_nothing_to_roll_back_to() -> None:
    observed = Observed(exists=True, candidate=RevisionState.FAILED, candidate_message="exit 1")
    decision = advance(base(phase=Phase.DEPLOYING, first_deploy=True), observed, POLICY, at(1))
    assert decision.rollout.phase is Phase.ABORTED and decision.actions == ()
    assert decision.events[0].kind is EventKind.ABORTED


def test_a_candidate_that_never_appears_is_deployed_again_under_a_new_key() -> None:
    rollout = base(phase=Phase.DEPLOYING, stable=STABLE)
    assert advance(rollout, seen(0, candidate=None), POLICY, at(5)).actions == ()
    decision = advance(rollout, seen(0, candidate=None), POLICY, at(16))
    assert decision.actions == (DeployCandidate(),) and decision.rollout.attempt == 1
    assert decision.record is not None and decision.record.key.endswith("/deploy/1")


# -- smoke ---------------------------------------------------------------------------------------------------


def test_smoke_passed_on_a_first_deploy_promotes() -> None:
    rollout = base(phase=Phase.SMOKE, first_deploy=True)
    observed = Observed(exists=True, candidate=RevisionState.READY, smoke=SmokeOutcome(True, ({"ok": True},)))
    decision = advance(rollout, observed, POLICY, at(3))
    assert decision.rollout.phase is Phase.PROMOTING
    assert decision.actions == (SetTraffic((TrafficTarget(CAND, 100, "stable"),)),)
    assert decision.record is not None and decision.record.name == "rollout:smoke"


def test_smoke_passed_on_blue_green_switches_everything_at_once() -> None:
    policy = replace(POLICY, strategy=Strategy.BLUE_GREEN, steps=(100,))
    decision = advance(
        base(phase=Phase.SMOKE, stable=STABLE), seen(0, smoke=SmokeOutcome(True)), policy, at(3)
    )
    assert decision.rollout.phase is Phase.STEPPING
    assert shares(decision.actions[0].targets) == {CAND: 100}  # type: ignore[union-attr]


def test_smoke_failed_rolls_back_and_missing_smoke_waits_then_fails() -> None:
    rollout = base(phase=Phase.SMOKE, stable=STABLE)
    failed = SmokeOutcome(False, ({"ok": False, "reason": "/predict answered 500, not 200"},))
    decision = advance(rollout, seen(0, smoke=failed), POLICY, at(3))
    assert decision.rollout.phase is Phase.ROLLING_BACK and "answered 500" in decision.rollout.reason
    assert advance(rollout, seen(0), POLICY, at(3)).rollout == rollout  # no tag URL yet: wait
    late = advance(rollout, seen(0), POLICY, at(61))
    assert late.rollout.phase is Phase.ROLLING_BACK and "tag URL" in late.rollout.reason


# -- stepping ------------------------------------------------------------------------------------------------


def test_the_window_opens_only_once_the_split_is_served() -> None:
    rollout = stepping(window=None)
    asked_not_served = seen(10, served={STABLE: 100})
    assert advance(rollout, asked_not_served, POLICY, at(1)).rollout == rollout
    decision = advance(rollout, seen(10), POLICY, at(2))
    assert decision.rollout.window_start == at(2) and decision.actions == ()


def test_a_split_that_did_not_land_is_asked_again_under_a_new_key() -> None:
    lost = seen(10, asked={STABLE: 100}, served={STABLE: 100})
    decision = advance(stepping(window=None), lost, POLICY, at(1))
    assert decision.rollout.attempt == 1
    assert decision.record is not None and decision.record.key == "rollout/svc/run-2/traffic/0.1"
    assert shares(decision.actions[0].targets) == {STABLE: 90, CAND: 10}  # type: ignore[union-attr]


def test_a_healthy_step_holds_its_interval_then_moves_on() -> None:
    assert advance(stepping(), healthy(), POLICY, at(4)).rollout == stepping()
    decision = advance(stepping(), healthy(), POLICY, at(5))
    assert decision.rollout.step == 1 and decision.rollout.window_start is None
    assert shares(decision.actions[0].targets) == {STABLE: 50, CAND: 50}  # type: ignore[union-attr]
    assert decision.record is not None and decision.record.name == "rollout:step:0"
    assert decision.record.result["verdict"] == "healthy"
    assert decision.events[0].kind is EventKind.STEP


def test_the_last_healthy_step_promotes_keeping_the_old_stable_at_zero() -> None:
    decision = advance(stepping(step=2), healthy(), POLICY, at(6))
    assert decision.rollout.phase is Phase.PROMOTING
    assert decision.actions == (
        SetTraffic((TrafficTarget(CAND, 100, "stable"), TrafficTarget(STABLE, 0, "previous"))),
    )


def test_an_unhealthy_step_rolls_back_at_once_even_inside_its_interval() -> None:
    bad = seen(10, analysis=analyse(metrics(CAND, 40, errors=10), metrics(STABLE, 400), THRESHOLDS))
    decision = advance(stepping(), bad, POLICY, at(1))
    assert decision.rollout.phase is Phase.ROLLING_BACK
    assert decision.actions == (
        SetTraffic((TrafficTarget(STABLE, 100, "stable"), TrafficTarget(CAND, 0, "failed"))),
    )
    assert decision.record is not None and decision.record.name == "rollout:step:0"
    assert decision.record.result["verdict"] == "unhealthy"


def test_missing_analysis_is_never_a_pass() -> None:
    decision = advance(stepping(), seen(10, analysis=None), POLICY, at(6))
    assert decision.rollout.phase is Phase.STEPPING and decision.rollout.inconclusive_since == at(6)
    assert decision.actions == ()


def test_too_few_requests_waits_the_limit_then_fails() -> None:
    few = healthy(requests=5)
    waiting = advance(stepping(), few, POLICY, at(6)).rollout
    assert waiting.inconclusive_since == at(6)
    assert advance(waiting, few, POLICY, at(15)).rollout == waiting
    decision = advance(waiting, few, POLICY, at(16))
    assert decision.rollout.phase is Phase.ROLLING_BACK and "inconclusive for 10s" in decision.rollout.reason
    assert decision.record is not None and decision.record.result["verdict"] == "inconclusive"


def test_too_few_requests_pauses_when_the_policy_says_so() -> None:
    policy = replace(POLICY, inconclusive_then="pause")
    waiting = stepping(inconclusive_since=at(6))
    decision = advance(waiting, healthy(requests=5), policy, at(16))
    assert decision.rollout.phase is Phase.PAUSED and decision.rollout.paused_phase == "stepping"
    assert decision.record is not None and decision.record.name == "rollout:paused"
    assert [event.kind for event in decision.events] == [EventKind.STEP, EventKind.PAUSED]


def test_a_split_never_in_effect_rolls_back_after_the_ready_timeout() -> None:
    decision = advance(stepping(window=None), seen(10, served={STABLE: 100}), POLICY, at(61))
    assert decision.rollout.phase is Phase.ROLLING_BACK


# -- promoting and rolling back: verified by reading the traffic back ----------------------------------------


def test_promotion_is_done_once_read_back_then_the_champion_alias_moves() -> None:
    rollout = base(phase=Phase.PROMOTING, stable=STABLE, step=2)
    moved = Observed(
        exists=True,
        candidate=RevisionState.READY,
        asked={CAND: 100},
        served={CAND: 100},
        tags={"stable": CAND},
    )
    decision = advance(rollout, moved, POLICY, at(1))
    assert decision.rollout.phase is Phase.PROMOTED
    assert decision.actions == (MoveAlias("churn", "2", "champion"),)
    assert decision.record is not None and decision.record.name == "rollout:promoted"
    untagged = replace(moved, tags={"stable": STABLE})
    again = advance(rollout, untagged, POLICY, at(1))
    assert again.rollout.phase is Phase.PROMOTING and again.rollout.attempt == 1


def test_a_rollback_is_done_only_once_the_stable_serves_everything() -> None:
    rollout = base(phase=Phase.ROLLING_BACK, stable=STABLE, reason="5xx")
    asked = {STABLE: 100, CAND: 0}
    still_moving = seen(0, asked=asked, served={STABLE: 90, CAND: 10})
    assert advance(rollout, still_moving, POLICY, at(1)).rollout == rollout
    decision = advance(rollout, seen(0, asked=asked, served=asked), POLICY, at(2))
    assert decision.rollout.phase is Phase.ROLLED_BACK
    assert decision.record is not None and decision.record.result["traffic"] == asked
    assert decision.events[0].kind is EventKind.ROLLED_BACK


def test_a_rollback_that_failed_mid_way_converges_on_the_next_tick() -> None:
    rollout = base(phase=Phase.ROLLING_BACK, stable=STABLE, reason="5xx")
    not_landed = seen(50)  # the write failed: the asked split is still the step's
    decision = advance(rollout, not_landed, POLICY, at(1))
    assert decision.rollout.attempt == 1
    assert decision.record is not None and decision.record.key == "rollout/svc/run-2/rolling_back/1"
    assert shares(decision.actions[0].targets) == {STABLE: 100}  # type: ignore[union-attr]


# -- commands, supersede, terminal ---------------------------------------------------------------------------


def test_operator_rollback_skips_the_analysis() -> None:
    command = Command("c1", CommandAction.ROLLBACK, by="ada")
    decision = advance(stepping(), seen(10, command=command), POLICY, at(1))
    assert decision.rollout.phase is Phase.ROLLING_BACK and decision.rollout.last_command == "c1"
    assert decision.rollout.reason == "operator rollback by ada"


def test_operator_promote_skips_the_remaining_steps() -> None:
    decision = advance(stepping(), seen(10, command=Command("c1", CommandAction.PROMOTE)), POLICY, at(1))
    assert decision.rollout.phase is Phase.PROMOTING


def test_pause_and_resume_restart_the_window() -> None:
    paused = advance(stepping(), seen(10, command=Command("c1", CommandAction.PAUSE)), POLICY, at(1))
    assert paused.rollout.phase is Phase.PAUSED and paused.record is not None
    assert paused.record.name == "rollout:paused"
    idle = advance(paused.rollout, healthy(), POLICY, at(30))
    assert idle.rollout == paused.rollout  # paused: the analysis does not move it
    resumed = advance(paused.rollout, seen(10, command=Command("c2", CommandAction.RESUME)), POLICY, at(31))
    assert resumed.rollout.phase is Phase.STEPPING and resumed.rollout.window_start is None


def test_a_command_is_acted_on_once_and_only_for_its_run() -> None:
    done = stepping(last_command="c1")
    assert (
        advance(done, seen(10, command=Command("c1", CommandAction.ROLLBACK)), POLICY, at(1)).rollout == done
    )
    other = Command("c2", CommandAction.ROLLBACK, run_id="run-1")
    assert advance(done, seen(10, command=other), POLICY, at(1)).rollout == done


def test_resume_when_not_paused_is_noted_and_ignored() -> None:
    decision = advance(stepping(), seen(10, command=Command("c1", CommandAction.RESUME)), POLICY, at(1))
    assert decision.rollout == stepping(last_command="c1") and decision.actions == ()


def test_supersede_ends_the_old_rollout_with_the_reason() -> None:
    decision = supersede(stepping(), "run-3", at(1))
    assert decision.rollout.phase is Phase.SUPERSEDED and decision.rollout.reason == "superseded by run run-3"
    assert decision.record is not None and decision.record.name == "rollout:aborted"
    assert decision.events[0].kind is EventKind.ABORTED


@pytest.mark.parametrize("phase", [Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.SUPERSEDED])
def test_a_terminal_rollout_never_moves(phase: Phase) -> None:
    rollout = base(phase=phase)
    command = Command("c1", CommandAction.ROLLBACK)
    assert advance(rollout, seen(10, command=command), POLICY, at(100)).rollout == rollout


def test_the_state_round_trips_through_json() -> None:
    rollout = stepping(inconclusive_since=at(3), reason="x", last_command="c1")
    assert Rollout.from_json(rollout.to_json()) == rollout


def test_stable_is_the_largest_served_share() -> None:
    assert stable_of({"a": 10, "b": 90}) == "b"
    assert stable_of({}, {"a": 100}) == "a"
    assert stable_of({}) == ""
