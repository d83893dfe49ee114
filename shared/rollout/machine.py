"""The rollout state machine: pure, over plain values, one decision per reconcile tick.

:func:`advance` takes the rollout as stored (:class:`Rollout`), what this tick read (:class:`Observed`:
the service's revisions and its traffic as asked and as served, the step's
:class:`~shared.rollout.analysis.Analysis`, the smoke checks' outcome, an operator :class:`Command`), the
:class:`Policy` from the config and ``now``, and returns a :class:`Decision`: the next state, the port calls
to make (:data:`Action`), the step to record on the run (:class:`Record`, whose key makes the calls happen
once however many ticks overlap) and the rollout events to publish. It never reads a clock, a port or the
ledger, so every transition is a table test.

::

    pending ─▶ deploying ─┬─▶ smoke ─────────────┬─▶ stepping(0..n) ─▶ promoting ─▶ promoted
                          │  (blue/green, first) └─▶ promoting (first deploy)
                          └──────────────────────▶ stepping(0) (canary)
    any active ─▶ rolling_back ─▶ rolled_back     (unhealthy, smoke failed, not ready, inconclusive+fail)
    deploying | smoke | stepping ─▶ paused ─▶ (resume: where it was, with a fresh window)
    active ─▶ superseded (a newer candidate) | aborted (a first deploy that cannot go on)

Rules it keeps:

* **Missing data is never a pass**: no analysis is INCONCLUSIVE; an inconclusive step waits at most
  ``inconclusive_wait_seconds`` after its interval, then fails (rolls back) or pauses, per the policy.
* **An unhealthy verdict acts at once**, even before the interval is over (the analysis only says UNHEALTHY
  with at least ``min_requests``): a bad candidate is rolled back at its first step.
* **Traffic is verified by reading it back**: a step's window starts only once the served split is the
  asked one; promotion and rollback are done only once the served split shows them. When the asked split
  is not ours (a write that failed mid-way, or someone else's), the split is asked again under a new key
  (``attempt``), so a rollback that failed mid-way converges on a later tick.
* Every split sums to 100 and names at most the stable and the candidate revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.ports.deployments import RevisionState, TrafficTarget
from shared.rollout import experiments
from shared.rollout.analysis import Analysis, Check, Verdict
from shared.rollout.model import (
    ABORTED,
    CANDIDATE_TAG,
    CHAMPION,
    DEPLOY,
    FAILED_TAG,
    PAUSABLE,
    PAUSED,
    PREVIOUS_TAG,
    PROMOTED,
    PROMOTING,
    REDEPLOY_AFTER_SECONDS,
    RESUMED,
    ROLLED_BACK,
    ROLLING_BACK,
    SMOKE,
    STABLE_TAG,
    STARTED,
    Action,
    Command,
    CommandAction,
    CreateService,
    Decision,
    DeployCandidate,
    Event,
    EventKind,
    Mirror,
    MoveAlias,
    Observed,
    Phase,
    Policy,
    Record,
    Rollout,
    SetTraffic,
    SmokeOutcome,
    step_name,
    traffic_name,
)
from shared.rolloutconfig import Strategy

__all__ = [
    "CANDIDATE_TAG",
    "CHAMPION",
    "FAILED_TAG",
    "PREVIOUS_TAG",
    "STABLE_TAG",
    "Action",
    "Command",
    "CommandAction",
    "CreateService",
    "Decision",
    "DeployCandidate",
    "Event",
    "EventKind",
    "Mirror",
    "MoveAlias",
    "Observed",
    "Phase",
    "Policy",
    "Record",
    "Rollout",
    "SetTraffic",
    "SmokeOutcome",
    "abort",
    "advance",
    "mirroring",
    "promoted_split",
    "rollback_split",
    "shares",
    "split",
    "stable_of",
    "step_name",
    "step_result",
    "supersede",
    "traffic_name",
]

# -- the splits ----------------------------------------------------------------------------------------------


def split(rollout: Rollout, percent: int) -> tuple[TrafficTarget, ...]:
    """The candidate at ``percent`` (tag ``candidate``), the stable at the rest (tag ``stable``)."""
    if not rollout.stable:
        return (TrafficTarget(rollout.candidate, 100, CANDIDATE_TAG),)
    return (
        TrafficTarget(rollout.stable, 100 - percent, STABLE_TAG),
        TrafficTarget(rollout.candidate, percent, CANDIDATE_TAG),
    )


def promoted_split(rollout: Rollout) -> tuple[TrafficTarget, ...]:
    """The candidate at 100% as ``stable``; the old stable kept at 0% as ``previous`` for a fast rollback."""
    targets = [TrafficTarget(rollout.candidate, 100, STABLE_TAG)]
    if rollout.stable and rollout.stable != rollout.candidate:
        targets.append(TrafficTarget(rollout.stable, 0, PREVIOUS_TAG))
    return tuple(targets)


def rollback_split(rollout: Rollout, candidate_usable: bool = True) -> tuple[TrafficTarget, ...]:
    """The stable at 100%; the candidate at 0% tagged ``failed`` (left out when it cannot serve at all)."""
    targets = [TrafficTarget(rollout.stable, 100, STABLE_TAG)]
    if candidate_usable and rollout.candidate != rollout.stable:
        targets.append(TrafficTarget(rollout.candidate, 0, FAILED_TAG))
    return tuple(targets)


def shares(targets: tuple[TrafficTarget, ...] | Mapping[str, int]) -> dict[str, int]:
    """revision -> percent, zero shares left out (what "the same split" is compared by)."""
    if isinstance(targets, Mapping):
        return {name: percent for name, percent in targets.items() if percent}
    merged: dict[str, int] = {}
    for target in targets:
        if target.percent:
            merged[target.revision] = merged.get(target.revision, 0) + target.percent
    return merged


def key(rollout: Rollout, state: str, n: int | str) -> str:
    """``rollout/<service>/<run_id>/<state>/<n>``: one side effect of one rollout, whatever the ticks."""
    return f"rollout/{rollout.service}/{rollout.run_id}/{state}/{n}"


# -- starting and superseding ----------------------------------------------------------------------------


def supersede(old: Rollout, by_run: str, now: datetime) -> Decision:
    """The active ``old`` rollout gives way to ``by_run``'s (its traffic is taken back by the new one)."""
    reason = f"superseded by run {by_run}"
    ended = replace(old, phase=Phase.SUPERSEDED, reason=reason, entered_at=now)
    return Decision(
        ended,
        record=Record(ABORTED, key(old, "superseded", 0), {"reason": reason, "superseded_by": by_run}),
        events=(Event(EventKind.ABORTED, 0, reason),),
    )


def stable_of(served: Mapping[str, int], asked: Mapping[str, int] | None = None) -> str:
    """The revision serving the largest share (ties: the first listed); "" when nothing serves yet."""
    for source in (served, asked or {}):
        best = max(((percent, name) for name, percent in source.items() if percent), default=None)
        if best is not None:
            return best[1]
    return ""


# -- the transition ----------------------------------------------------------------------------------------


def mirroring(rollout: Rollout, policy: Policy) -> bool:
    """Whether the serving image should be copying requests to this rollout's candidate: only while its
    shadow comparison step runs (paused, promoted, rolled back or past it: off)."""
    return rollout.phase is Phase.STEPPING and policy.is_shadow_step(rollout.step)


def advance(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    """The next decision for ``rollout`` (see the module docstring); a terminal rollout stays as it is."""
    decision = _advance(rollout, observed, policy, now)
    before, after = mirroring(rollout, policy), mirroring(decision.rollout, policy)
    if before != after and decision.record is not None:
        # Every transition into or out of the shadow step records a step, so the mirror's switch rides on
        # that step's key: done once, however many ticks overlap.
        mirror = Mirror(on=after, sample=policy.shadow_sample if after else 0.0)
        ordered = (*decision.actions, mirror) if after else (mirror, *decision.actions)
        decision = replace(decision, actions=ordered)
    return decision


def _advance(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    if rollout.phase.terminal:
        return Decision(rollout)
    command = observed.command
    if command is not None and command.id != rollout.last_command and command.run_id in ("", rollout.run_id):
        seen = replace(rollout, last_command=command.id)
        decided = _command(seen, command, observed, policy, now)
        if decided is not None:
            return decided
        rollout = seen  # a command that does not apply now (resume while not paused): noted, ignored
    handler = _HANDLERS.get(rollout.phase)
    if handler is None:  # paused: only a command moves it
        return Decision(rollout)
    return handler(rollout, observed, policy, now)


def _command(
    rollout: Rollout, command: Command, observed: Observed, policy: Policy, now: datetime
) -> Decision | None:
    by = f" by {command.by}" if command.by else ""
    if command.action is CommandAction.ROLLBACK:
        if rollout.phase is Phase.ROLLING_BACK:
            return None
        if rollout.first_deploy or not rollout.stable:
            return abort(rollout, f"operator rollback{by}: no stable revision to roll back to", now)
        return _rollback(rollout, observed, f"operator rollback{by}", now, "command")
    if command.action is CommandAction.PROMOTE:
        ready = observed.candidate is RevisionState.READY
        if rollout.phase in (Phase.PROMOTING, Phase.ROLLING_BACK) or not ready:
            return None
        return _promote(rollout, f"operator promote{by} (remaining steps skipped)", now, "command")
    if command.action is CommandAction.PAUSE:
        if rollout.phase not in PAUSABLE:
            return None
        reason = f"paused{by}"
        paused = replace(
            rollout,
            phase=Phase.PAUSED,
            paused_phase=rollout.phase.value,
            pauses=rollout.pauses + 1,
            reason=reason,
            entered_at=now,
        )
        percent = _percent(rollout, policy)
        return Decision(
            paused,
            record=Record(
                PAUSED, key(rollout, "paused", rollout.pauses), {"reason": reason, "by": command.by}
            ),
            events=(Event(EventKind.PAUSED, percent, reason),),
        )
    if rollout.phase is not Phase.PAUSED:
        return None
    reason = f"resumed{by}"
    resumed = replace(
        rollout,
        phase=Phase(rollout.paused_phase or Phase.DEPLOYING.value),
        paused_phase="",
        reason="",
        entered_at=now,
        window_start=None,  # a fresh window: what happened while paused is not judged
        inconclusive_since=None,
    )
    return Decision(
        resumed,
        record=Record(RESUMED, key(rollout, "resumed", rollout.pauses), {"reason": reason, "by": command.by}),
        events=(Event(EventKind.RESUMED, _percent(rollout, policy), reason),),
    )


def _percent(rollout: Rollout, policy: Policy) -> int:
    """The candidate's asked share in its current step (0 before stepping; 100 for a first deploy)."""
    if rollout.step < 0:
        return 100 if rollout.first_deploy else 0
    return policy.steps[min(rollout.step, len(policy.steps) - 1)]


def _pending(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    if not observed.exists:
        started = replace(
            rollout, phase=Phase.DEPLOYING, first_deploy=True, stable="", entered_at=now, attempt=0
        )
        return Decision(
            started,
            actions=(CreateService(),),
            record=Record(STARTED, key(rollout, "started", 0), _started_result(started, policy)),
            events=(Event(EventKind.STARTED, 100, "first revision of the service"),),
        )
    stable = rollout.stable or stable_of(observed.served, observed.asked)
    if not stable:
        return Decision(rollout)  # the service has nothing serving yet: read it again next tick
    started = replace(rollout, phase=Phase.DEPLOYING, stable=stable, entered_at=now, attempt=0)
    actions: list[Action] = []
    if set(shares(observed.asked)) - {stable}:
        # A superseded candidate (or someone's manual split) still takes traffic: back to stable first.
        actions.append(SetTraffic((TrafficTarget(stable, 100, STABLE_TAG),)))
    actions.append(DeployCandidate())
    return Decision(
        started,
        actions=tuple(actions),
        record=Record(STARTED, key(rollout, "started", 0), _started_result(started, policy)),
        events=(Event(EventKind.STARTED, 0, f"candidate deployed at 0% beside {stable}"),),
    )


def _started_result(rollout: Rollout, policy: Policy) -> dict[str, Any]:
    return {
        "service": rollout.service,
        "strategy": rollout.strategy,
        "steps": list(policy.steps),
        "candidate": rollout.candidate,
        "stable": rollout.stable,
        "model": rollout.model,
        "version": rollout.version,
        "image": rollout.image,
        "first_deploy": rollout.first_deploy,
    }


def _deploying(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    state = observed.candidate
    waited = _since(rollout.entered_at, now)
    if state is RevisionState.FAILED or (
        state is not RevisionState.READY and waited >= policy.ready_timeout_seconds
    ):
        why = observed.candidate_message or (
            "it does not exist" if state is None else f"not ready after {waited:.0f}s"
        )
        reason = f"candidate {rollout.candidate} will not become ready: {why}"
        if rollout.first_deploy:
            return abort(rollout, reason, now)
        return _rollback(rollout, observed, reason, now, "not-ready", candidate_usable=False)
    if state is None and waited >= REDEPLOY_AFTER_SECONDS * (rollout.attempt + 1):
        # Our deploy did not land (or the revision was deleted): ask again under a new key (harmless when
        # it did land: deploying the same revision again keeps its share).
        again = replace(rollout, attempt=rollout.attempt + 1)
        action: Action = CreateService() if not observed.exists else DeployCandidate()
        return Decision(
            again, actions=(action,), record=Record(DEPLOY, key(rollout, "deploy", again.attempt))
        )
    if state is not RevisionState.READY:
        return Decision(rollout)
    if rollout.first_deploy or policy.smoke_first:
        return Decision(replace(rollout, phase=Phase.SMOKE, entered_at=now))
    return _enter_step(rollout, policy, 0, now)


def _smoke(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    outcome = observed.smoke
    if outcome is None:
        if _since(rollout.entered_at, now) < policy.ready_timeout_seconds:
            return Decision(rollout)  # no tag URL yet: the next tick checks
        outcome = SmokeOutcome(False, ({"ok": False, "reason": "the candidate's tag URL never appeared"},))
    result = {"passed": outcome.passed, "checks": [dict(check) for check in outcome.checks]}
    record = Record(SMOKE, key(rollout, "smoke", 0), result)
    if not outcome.passed:
        reason = "smoke checks failed: " + "; ".join(outcome.reasons or ("no check passed",))
        if rollout.first_deploy:
            return replace(abort(rollout, reason, now), record=record)
        return replace(_rollback(rollout, observed, reason, now, "smoke"), record=record)
    if rollout.first_deploy:
        return replace(
            _promote(rollout, "smoke checks passed on the first revision", now, "smoke"), record=record
        )
    return replace(_enter_step(rollout, policy, 0, now), record=record)


def _enter_step(rollout: Rollout, policy: Policy, index: int, now: datetime) -> Decision:
    percent = policy.steps[index]
    stepping = replace(
        rollout,
        phase=Phase.STEPPING,
        step=index,
        attempt=0,
        entered_at=now,
        window_start=None,
        inconclusive_since=None,
    )
    return Decision(
        stepping,
        actions=(SetTraffic(split(stepping, percent)),),
        record=Record(traffic_name(index), key(rollout, "traffic", index), {"percent": percent}),
    )


def _stepping(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    index = min(max(rollout.step, 0), len(policy.steps) - 1)
    percent = policy.steps[index]
    desired = split(rollout, percent)
    if rollout.window_start is None:
        if shares(observed.served) == shares(desired):
            return Decision(replace(rollout, window_start=now))  # in effect: the step's window opens
        if shares(observed.asked) != shares(desired):
            again = replace(rollout, attempt=rollout.attempt + 1)
            return Decision(
                again,
                actions=(SetTraffic(desired),),
                record=Record(traffic_name(index), key(rollout, "traffic", f"{index}.{again.attempt}")),
            )
        if _since(rollout.entered_at, now) >= policy.ready_timeout_seconds:
            reason = f"the {percent}% split was not in effect after {policy.ready_timeout_seconds:.0f}s"
            return _rollback(rollout, observed, reason, now, "not-in-effect")
        return Decision(rollout)
    analysis, extra = _judged(observed, policy, index, _since(rollout.window_start, now))
    verdict = analysis.verdict if analysis is not None else Verdict.INCONCLUSIVE
    reasons = list(analysis.reasons) if analysis is not None else ["no analysis: no metrics were read"]
    result = step_result(rollout, percent, analysis, verdict, reasons, extra)
    record = Record(step_name(index), key(rollout, "step", index), result)
    event = Event(EventKind.STEP, percent, "; ".join(reasons), result)
    what = _step_label(policy, index, percent)
    if verdict is Verdict.UNHEALTHY:
        reason = f"{what} unhealthy: " + "; ".join(reasons)
        return _with_step(_rollback(rollout, observed, reason, now, "unhealthy"), record, event)
    if _since(rollout.window_start, now) < policy.interval(index):
        return Decision(rollout)
    if verdict is Verdict.HEALTHY:
        if index + 1 >= len(policy.steps):
            if policy.strategy is Strategy.AB and policy.ab_decide == "human":
                return _await_decision(rollout, policy, index, now, result, event)
            why = {
                Strategy.SHADOW: "the shadow comparison passed",
                Strategy.AB: "the candidate won the A/B test",
            }.get(policy.strategy, "every step healthy")
            return _with_step(_promote(rollout, why, now, "steps"), record, event)
        following = _enter_step(rollout, policy, index + 1, now)
        return Decision(following.rollout, following.actions, record, (event,))
    since = rollout.inconclusive_since or now
    if _since(since, now) < policy.inconclusive_wait_seconds:
        return Decision(replace(rollout, inconclusive_since=since))
    waited = f"inconclusive for {_since(since, now):.0f}s: " + "; ".join(reasons)
    if policy.inconclusive_then == "pause":
        return _pause_step(rollout, percent, f"{what} {waited}; paused for an operator", now, result, event)
    reason = f"{what} {waited}"
    return _with_step(_rollback(rollout, observed, reason, now, "inconclusive"), record, event)


def _step_label(policy: Policy, index: int, percent: int) -> str:
    if policy.is_shadow_step(index):
        return "shadow comparison"
    if policy.strategy is Strategy.AB:
        return f"A/B test ({percent}%)"
    return f"step {index} ({percent}%)"


def _judged(
    observed: Observed, policy: Policy, index: int, elapsed: float
) -> tuple[Analysis | None, dict[str, Any]]:
    """The step's analysis with the strategy's own checks folded in, and their numbers for the record: the
    shadow comparison (agreement of the copies), the A/B metric once the test's duration is over."""
    analysis = observed.analysis
    extra: dict[str, Any] = {}
    if policy.is_shadow_step(index):
        checks = experiments.shadow_checks(
            observed.comparison, policy.shadow_min_requests, policy.shadow_min_agreement
        )
        analysis = experiments.with_checks(analysis, checks)
        extra["shadow"] = observed.comparison.to_json() if observed.comparison is not None else None
    if policy.strategy is Strategy.AB and elapsed >= policy.interval(index):
        extra["ab"] = observed.ab.to_json() if observed.ab is not None else None
        if policy.ab_decide == "metric":
            outcome, text = experiments.ab_verdict(observed.ab, policy.ab_metric)
            analysis = experiments.with_checks(analysis, (Check("ab_metric", outcome, text),))
        elif policy.ab_metric.type:
            extra["ab_reading"] = experiments.ab_verdict(observed.ab, policy.ab_metric)[1]
    return analysis, extra


def _await_decision(
    rollout: Rollout, policy: Policy, index: int, now: datetime, result: dict[str, Any], event: Event
) -> Decision:
    """An A/B test decided by a person: it holds its split, paused, until ``promote`` or ``rollback``."""
    percent = policy.steps[index]
    reading = f" ({result['ab_reading']})" if result.get("ab_reading") else ""
    reason = (
        f"A/B test ({percent}%) healthy after {policy.interval(index):.0f}s{reading}; "
        "waiting for an operator to promote or roll back"
    )
    return _pause_step(rollout, percent, reason, now, result, event)


def _pause_step(
    rollout: Rollout, percent: int, reason: str, now: datetime, result: dict[str, Any], event: Event
) -> Decision:
    """The step holds its split, paused for an operator, with the step's numbers on the pause record."""
    paused = replace(
        rollout,
        phase=Phase.PAUSED,
        paused_phase=Phase.STEPPING.value,
        pauses=rollout.pauses + 1,
        reason=reason,
        entered_at=now,
        window_start=None,
        inconclusive_since=None,
    )
    # The step is judged again after the resume: its ``rollout:step:<n>`` is recorded then, once.
    pause = Record(PAUSED, key(rollout, "paused", rollout.pauses), {"reason": reason, "analysis": result})
    return Decision(paused, (), pause, (event, Event(EventKind.PAUSED, percent, reason)))


def step_result(
    rollout: Rollout,
    percent: int,
    analysis: Analysis | None,
    verdict: Verdict,
    reasons: list[str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``rollout:step:<n>`` detail: the split, each revision's numbers, the verdict and why."""
    revisions: dict[str, Any] = {}
    pairs = (("stable", rollout.stable, analysis.stable if analysis else None),) if rollout.stable else ()
    for role, name, metrics in (
        *pairs,
        ("candidate", rollout.candidate, analysis.candidate if analysis else None),
    ):
        revisions[name] = {
            "role": role,
            "percent": percent if role == "candidate" else 100 - percent,
            "requests": metrics.requests if metrics is not None else 0,
            "share_5xx": metrics.share("5xx") if metrics is not None else None,
            "p95_ms": metrics.latency.p95_ms if metrics is not None else None,
        }
    return {
        "strategy": rollout.strategy,
        "percent": percent,
        "revisions": revisions,
        "verdict": verdict.value,
        "reasons": reasons,
        **(extra or {}),
    }


def _with_step(decision: Decision, record: Record, event: Event) -> Decision:
    """``decision`` made because of a step's verdict: the step's record (and event) lead it."""
    return replace(decision, record=record, events=(event, *decision.events))


def _promote(rollout: Rollout, reason: str, now: datetime, why: str) -> Decision:
    promoting = replace(rollout, phase=Phase.PROMOTING, attempt=0, entered_at=now, reason=reason)
    return Decision(
        promoting,
        actions=(SetTraffic(promoted_split(rollout)),),
        record=Record(PROMOTING, key(rollout, "promoting", why), {"reason": reason}),
    )


def _promoting(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    desired = promoted_split(rollout)
    tagged = observed.tags.get(STABLE_TAG) == rollout.candidate
    if shares(observed.served) == shares(desired) and tagged:
        result = {
            "reason": rollout.reason,
            "traffic": dict(observed.served),
            "candidate": rollout.candidate,
            "previous": rollout.stable,
            "model": rollout.model,
            "version": rollout.version,
            "alias": CHAMPION,
        }
        actions: tuple[Action, ...] = ()
        if rollout.model and rollout.version:
            actions = (MoveAlias(rollout.model, rollout.version),)
        return Decision(
            replace(rollout, phase=Phase.PROMOTED, entered_at=now),
            actions=actions,
            record=Record(PROMOTED, key(rollout, "promoted", 0), result),
            events=(Event(EventKind.PROMOTED, 100, rollout.reason, result),),
        )
    if shares(observed.asked) != shares(desired) or not tagged:
        again = replace(rollout, attempt=rollout.attempt + 1)
        return Decision(
            again,
            actions=(SetTraffic(desired),),
            record=Record(PROMOTING, key(rollout, "promoting", again.attempt)),
        )
    return Decision(rollout)


def _rollback(
    rollout: Rollout,
    observed: Observed,
    reason: str,
    now: datetime,
    why: str,
    *,
    candidate_usable: bool | None = None,
) -> Decision:
    usable = observed.candidate is RevisionState.READY if candidate_usable is None else candidate_usable
    rolling = replace(rollout, phase=Phase.ROLLING_BACK, attempt=0, entered_at=now, reason=reason)
    return Decision(
        rolling,
        actions=(SetTraffic(rollback_split(rollout, usable)),),
        record=Record(ROLLING_BACK, key(rollout, "rolling_back", why), {"reason": reason}),
    )


def _rolling_back(rollout: Rollout, observed: Observed, policy: Policy, now: datetime) -> Decision:
    desired = rollback_split(rollout, observed.candidate is RevisionState.READY)
    if shares(observed.served) == shares(desired):
        result = {"reason": rollout.reason, "traffic": dict(observed.served), "candidate": rollout.candidate}
        return Decision(
            replace(rollout, phase=Phase.ROLLED_BACK, entered_at=now),
            record=Record(ROLLED_BACK, key(rollout, "rolled_back", 0), result),
            events=(Event(EventKind.ROLLED_BACK, 0, rollout.reason, result),),
        )
    if shares(observed.asked) != shares(desired):
        # The rollback did not land (a failed write, or someone else's split): ask again, a new key.
        again = replace(rollout, attempt=rollout.attempt + 1)
        return Decision(
            again,
            actions=(SetTraffic(desired),),
            record=Record(ROLLING_BACK, key(rollout, "rolling_back", again.attempt)),
        )
    return Decision(rollout)  # asked, not served yet: Cloud Run is still moving the traffic


def abort(rollout: Rollout, reason: str, now: datetime) -> Decision:
    ended = replace(rollout, phase=Phase.ABORTED, reason=reason, entered_at=now)
    return Decision(
        ended,
        record=Record(ABORTED, key(rollout, "aborted", 0), {"reason": reason}),
        events=(Event(EventKind.ABORTED, 0, reason),),
    )


def _since(moment: datetime | None, now: datetime) -> float:
    return (now - moment).total_seconds() if moment is not None else 0.0


_HANDLERS = {
    Phase.PENDING: _pending,
    Phase.DEPLOYING: _deploying,
    Phase.SMOKE: _smoke,
    Phase.STEPPING: _stepping,
    Phase.PROMOTING: _promoting,
    Phase.ROLLING_BACK: _rolling_back,
}
