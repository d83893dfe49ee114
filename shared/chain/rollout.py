"""Rollouts: ``start_rollout`` takes a service's lease and deploys the candidate; reconcile ticks advance it.

The decisions are :mod:`shared.rollout.machine`'s (pure); this module reads what they need and carries them
out through the ports, the step runner and the ledger:

* **The lease** is the state document ``rollouts/<service>`` (``current``: the rollout, ``history``: the run
  ids seen, ``superseded``: the rollout a newer one replaced). It is only ever written with compare-and-set
  (``expect_version`` / ``create_only``), so one rollout per service at a time whatever runs concurrently; a
  lost race is re-read and decided again. A request of a run already seen is a duplicate; a newer candidate
  supersedes the active rollout (``rollout:aborted`` with the reason on the old run, its traffic taken back
  to the stable by the new one before the new candidate is deployed); a request for an older version of
  the same model than the active rollout's is refused as stale.
* **A tick** (:func:`advance_service`, for every configured service from the reconciler's :func:`tick`)
  reads the service (revisions, traffic as asked and as served), the step's metrics (candidate over the
  step's window; stable over the same window, or — when the candidate has 100% — over the rollout before
  it), runs the smoke checks on the candidate's tag URL when they are due, reads the operator's command,
  and asks the machine. A decision's port calls run inside one :class:`~shared.steps.Step` keyed
  ``rollout/<service>/<run_id>/<state>/<n>``, recorded on the run under its exact name
  (``rollout:started``, ``rollout:step:<n>``, ``rollout:promoted``, ``rollout:rolled_back``,
  ``rollout:paused``...) and publishing the rollout events (``rollout.event`` on ``rollouts``) and their
  notifications (``rollout.<kind>``); only then is the new state written. Overlapping ticks therefore make
  each traffic change once (the loser of the claim sees BUSY or DUPLICATE, then loses the compare-and-set).
* **Every update carries the etag** of the service as this tick read it: a :class:`~shared.ports.errors.
  Conflict` (someone else changed it, or Cloud Run answered ABORTED) releases the step, and the next tick
  reads again and decides again; it is never retried blindly. UNAVAILABLE is the same: the step is retried
  by the next tick with a fresh read.
* **Operator commands** (:func:`command`) are the state document ``rollout-commands/<service>`` (the
  command, who, for which run), acted on by the machine at the next tick — which :func:`command` runs at
  once, so ``rollback`` takes effect in the operator's call.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.chain import experiments
from shared.chain.contracts import RolloutRequested
from shared.chain.notices import notice
from shared.config import PipelineConfig
from shared.errors import InvalidInput, TransientError
from shared.ledger import DocConflictError, RunNotFoundError, RunStatus, StoredDoc
from shared.ports.common import label_value
from shared.ports.deployments import RevisionSpec, Service, revision_name
from shared.ports.metrics import RevisionMetrics
from shared.rollout.analysis import Analysis, analyse
from shared.rollout.machine import (
    Action,
    Command,
    CommandAction,
    CreateService,
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
    abort,
    advance,
    supersede,
)
from shared.rolloutconfig import ServiceSpec, Strategy, service_named
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, StepResult

ROLLOUTS = "rollouts"  # state documents: one per service (the lease and the rollout's state)
COMMANDS = "rollout-commands"  # state documents: the operator's last command per service
ROLLOUT_EVENT = "rollout.event"
#: Run ids a service's document remembers (duplicates of older requests are refused as stale by version).
HISTORY = 50
#: The longest one port or ledger call of a tick may take (less when the invocation has less left).
CALL_SECONDS = 15.0
#: Compare-and-set attempts on the lease before the delivery is retried.
LEASE_ATTEMPTS = 3


@dataclass(frozen=True)
class Lease:
    """The ``rollouts/<service>`` document as read: its rollout (if any) and the version to write against."""

    doc: StoredDoc | None
    rollout: Rollout | None
    history: tuple[str, ...]
    superseded: Rollout | None

    @property
    def version(self) -> str | None:
        return self.doc.version if self.doc is not None else None


def _timeout() -> float:
    return deadlines.current().timeout(CALL_SECONDS)


def read_lease(runtime: Runtime, service: str) -> Lease:
    return _lease_of(runtime.ledger.get_doc(ROLLOUTS, service, timeout=_timeout()))


def _lease_of(doc: StoredDoc | None) -> Lease:
    if doc is None:
        return Lease(None, None, (), None)
    current = doc.data.get("current")
    old = doc.data.get("superseded")
    return Lease(
        doc,
        Rollout.from_json(current) if isinstance(current, Mapping) else None,
        tuple(str(item) for item in doc.data.get("history") or ()),
        Rollout.from_json(old) if isinstance(old, Mapping) else None,
    )


def _write(runtime: Runtime, lease: Lease, rollout: Rollout, superseded: Rollout | None = None) -> Lease:
    """The new state, compare-and-set against what was read (DocConflictError: another writer won); the lease
    as written, so the writer goes on without reading it back."""
    history = list(lease.history)
    if rollout.run_id not in history:
        history = [*history, rollout.run_id][-HISTORY:]
    old = superseded if superseded is not None else lease.superseded
    data: dict[str, Any] = {
        "service": rollout.service,
        "run_id": rollout.run_id,
        "phase": rollout.phase.value,
        "active": rollout.active,
        "current": rollout.to_json(),
        "history": history,
        "superseded": old.to_json() if old is not None else None,
    }
    return _lease_of(
        runtime.ledger.put_doc(
            ROLLOUTS,
            rollout.service,
            data,
            create_only=lease.doc is None,
            expect_version=lease.version,
            timeout=_timeout(),
        )
    )


def require_service(runtime: Runtime, name: str) -> ServiceSpec:
    spec = service_named(runtime.config.services, name)
    if spec is None:
        known = [service.name for service in runtime.config.services]
        raise InvalidInput("rollout", [f"service: {name!r} is not in spec.services (known: {known})"])
    return spec


# -- start ------------------------------------------------------------------------------------------------


def start(runtime: Runtime, run_id: str, request: RolloutRequested, now: datetime | None = None) -> str:
    """Take the service's lease for ``run_id``'s candidate (superseding an older rollout), then advance it
    once (the candidate is deployed at 0%); what happened, in a few words."""
    spec = require_service(runtime, request.service)
    if request.model != spec.model:
        raise InvalidInput(
            "rollout.requested",
            [f"model: service {spec.name} serves model {spec.model!r}, not {request.model!r}"],
        )
    strategy = Strategy(request.strategy) if request.strategy else spec.strategy
    refused = spec.problems_for(strategy)
    if refused:
        raise InvalidInput("rollout.requested", [f"strategy: {problem}" for problem in refused])
    now = now or runtime.clock()
    for attempt in range(1, LEASE_ATTEMPTS + 1):
        lease = read_lease(runtime, spec.name)
        if run_id in lease.history:
            _announce_superseded(runtime, lease, run_id)
            advance_service(runtime, spec.name, now)
            return "duplicate"
        current = lease.rollout
        if current is not None and current.active and _older(request, current):
            log.warning(
                "rollout request older than the active rollout: not started",
                run_id=run_id,
                service=spec.name,
                version=request.version,
                active_run=current.run_id,
                active_version=current.version,
            )
            return f"stale: version {request.version} is older than {current.version} (run {current.run_id})"
        superseded = (
            supersede(current, run_id, now).rollout if current is not None and current.active else None
        )
        fresh = Rollout(
            service=spec.name,
            run_id=run_id,
            candidate=revision_name(spec.name, run_id),
            started_at=now,
            model=request.model,
            version=request.version,
            version_resource=request.version_resource,
            artifact_uri=request.artifact_uri,
            image=request.image,
            cause=request.cause,
            strategy=strategy.value,
            stable=superseded.stable if superseded is not None else "",
            entered_at=now,
        )
        try:
            written = _write(runtime, lease, fresh, superseded)
        except DocConflictError:
            if attempt == LEASE_ATTEMPTS:
                raise
            continue
        if superseded is not None:
            _announce_superseded(runtime, written, run_id)
            _finish_run(runtime, superseded)
        advance_service(runtime, spec.name, now, written)
        return f"started on {spec.name}" + (f", superseding run {superseded.run_id}" if superseded else "")
    raise TransientError(f"the lease of service {spec.name} is contended; retry")  # pragma: no cover


def _older(request: RolloutRequested, current: Rollout) -> bool:
    """A request for a lower version of the same model than the active rollout's (a late redelivery)."""
    if request.model != current.model or not (request.version.isdigit() and current.version.isdigit()):
        return False
    return int(request.version) < int(current.version)


def _announce_superseded(runtime: Runtime, lease: Lease, by_run: str) -> None:
    """The ``rollout:aborted`` step and event of the rollout ``by_run`` superseded (idempotent: keyed)."""
    old = lease.superseded
    if old is None or not old.reason.endswith(by_run):
        return
    decision = supersede(old, by_run, old.entered_at or old.started_at)
    assert decision.record is not None
    # A superseded shadow rollout must stop copying requests: the tag it copies to moves to the new one
    # (deleting the control object is idempotent, so whether it was still comparing does not matter).
    stop = (Mirror(on=False),) if old.strategy == Strategy.SHADOW.value else ()
    _run_step(runtime, old, decision.record, stop, decision.events, None)


# -- ticks ------------------------------------------------------------------------------------------------


def tick(runtime: Runtime, now: datetime) -> list[str]:
    """The reconciler's due-work hook: advance the active rollout of every configured service."""
    emitted: list[str] = []
    failures: list[Exception] = []
    for spec in runtime.config.services:
        try:
            what = advance_service(runtime, spec.name, now)
        except Exception as error:  # one service's trouble must not hold the others back
            log.warning(
                "rollout tick failed for a service; the next tick tries again",
                service=spec.name,
                error=f"{type(error).__name__}: {error}",
            )
            failures.append(error)
        else:
            if what:
                emitted.append(what)
    if failures:
        raise failures[0]  # reported by the tick (transient ones answer 500)
    return emitted


def advance_service(runtime: Runtime, name: str, now: datetime, lease: Lease | None = None) -> str:
    """One decision for the service's active rollout; what it did ("" when nothing changed). ``lease``: the
    lease as this caller just wrote it (else it is read)."""
    spec = require_service(runtime, name)
    lease = lease if lease is not None else read_lease(runtime, name)
    rollout = lease.rollout
    if rollout is None or not rollout.active:
        return ""
    service = runtime.ports.deployments.get_service(name, timeout=_timeout())
    observed = observe(runtime, spec, rollout, service, now)
    decision = advance(rollout, observed, _policy(spec, rollout), now)
    if decision.record is not None:
        result = _run_step(runtime, rollout, decision.record, decision.actions, decision.events, service)
        if result.outcome is Outcome.BUSY:
            return ""  # an overlapping tick holds this step: it writes the state
        if result.failed or (result.outcome is Outcome.DUPLICATE and result.error):
            decision = abort(rollout, f"{decision.record.name} failed permanently: {result.error}", now)
            assert decision.record is not None
            _run_step(runtime, rollout, decision.record, (), decision.events, service)
    if decision.rollout == rollout:
        return ""
    try:
        _write(runtime, lease, decision.rollout)
    except DocConflictError:
        log.info("rollout state changed under this tick; the next tick decides again", service=name)
        return ""
    after = decision.rollout
    if after.phase.terminal:
        _finish_run(runtime, after)
    log.info(
        "rollout advanced",
        run_id=rollout.run_id,
        service=name,
        phase=after.phase.value,
        step=after.step,
        reason=after.reason,
    )
    return f"{name}: {rollout.phase.value} → {after.phase.value}" + (
        f" (step {after.step})" if after.phase is Phase.STEPPING else ""
    )


#: How a rollout's end finishes its run (a superseded one gave way to a newer run: cancelled).
_RUN_ENDS = {
    Phase.PROMOTED: RunStatus.SUCCEEDED,
    Phase.ROLLED_BACK: RunStatus.FAILED,
    Phase.ABORTED: RunStatus.FAILED,
    Phase.SUPERSEDED: RunStatus.CANCELLED,
}


def _policy(spec: ServiceSpec, rollout: Rollout) -> Policy:
    """The service's policy under the strategy the rollout runs (a rollout may override the service's)."""
    return Policy.of(spec, rollout.strategy)


def _finish_run(runtime: Runtime, ended: Rollout) -> None:
    try:
        runtime.ledger.finish_run(ended.run_id, _RUN_ENDS[ended.phase], timeout=_timeout())
    except RunNotFoundError:  # a server-image rollout of a run the ledger no longer has: nothing to end
        log.warning("rollout ended for a run the ledger does not have", run_id=ended.run_id)


# -- what a tick reads ---------------------------------------------------------------------------------------


def observe(
    runtime: Runtime, spec: ServiceSpec, rollout: Rollout, service: Service | None, now: datetime
) -> Observed:
    """Everything the machine needs this tick (missing data stays missing: never made up as a pass)."""
    command = _command_of(runtime, spec.name)
    if service is None:
        return Observed(exists=False, command=command)
    revision = service.revision(rollout.candidate)
    asked: dict[str, int] = {}
    tags: dict[str, str] = {}
    for target in service.traffic:
        name = target.revision or service.latest_ready_revision
        asked[name] = asked.get(name, 0) + target.percent
        if target.tag:
            tags[target.tag] = name
    served: dict[str, int] = {}
    for status in service.traffic_statuses:
        served[status.revision] = served.get(status.revision, 0) + status.percent
    observed = Observed(
        exists=True,
        candidate=revision.state if revision is not None else None,
        candidate_message=revision.message if revision is not None else "",
        asked=asked,
        served=served,
        tags=tags,
        command=command,
    )
    if rollout.phase is Phase.STEPPING and rollout.window_start is not None:
        observed = replace(observed, analysis=_analysis(runtime, spec, rollout, now))
        policy = _policy(spec, rollout)
        elapsed = (now - rollout.window_start).total_seconds()
        if policy.is_shadow_step(rollout.step):
            comparison = experiments.read_comparison(runtime, rollout, now, timeout=_timeout())
            observed = replace(observed, comparison=comparison)
        elif policy.strategy is Strategy.AB and policy.ab_metric.type and elapsed >= policy.interval(0):
            ab = experiments.read_ab(runtime, policy, rollout, now, timeout=_timeout())
            observed = replace(observed, ab=ab)
    if rollout.phase is Phase.SMOKE and revision is not None and revision.ready:
        url = service.tag_uri("candidate")
        if url:
            from shared.rollout.smoke import run_checks

            observed = replace(observed, smoke=run_checks(url, spec.smoke))
    return observed


def _analysis(runtime: Runtime, spec: ServiceSpec, rollout: Rollout, now: datetime) -> Analysis | None:
    """Candidate against stable over the step's window; None (inconclusive) when metrics cannot be read."""
    start = rollout.window_start
    assert start is not None
    if now <= start:
        return None
    policy = _policy(spec, rollout)
    percent = policy.steps[min(max(rollout.step, 0), len(policy.steps) - 1)]
    thresholds = spec.thresholds
    if policy.is_shadow_step(rollout.step):  # the candidate serves copies only: the shadow's own minimum
        thresholds = replace(thresholds, min_requests=policy.shadow_min_requests)
    if not rollout.stable:  # a first deploy has nothing to compare with: absolute checks only
        thresholds = replace(thresholds, max_p95_ratio=None, max_p99_ratio=None)
    metrics = runtime.ports.metrics
    names = [rollout.candidate, *([rollout.stable] if rollout.stable else [])]
    try:
        window = metrics.revision_metrics(spec.name, start, now, revisions=names, timeout=_timeout())
        candidate = window.for_revision(rollout.candidate)  # the candidate's own numbers, never stable's
        stable: RevisionMetrics | None = None
        if rollout.stable and percent < 100:
            stable = window.for_revision(rollout.stable)
        elif rollout.stable and start > rollout.started_at:
            # The candidate takes everything now: stable's baseline is how it served before this step.
            before = metrics.revision_metrics(
                spec.name,
                rollout.started_at - timedelta(seconds=1),
                start,
                revisions=[rollout.stable],
                timeout=_timeout(),
            )
            stable = before.for_revision(rollout.stable)
    except Exception as error:  # no metrics is no pass: the step stays inconclusive and waits
        log.warning(
            "rollout metrics could not be read; the step is inconclusive",
            run_id=rollout.run_id,
            service=spec.name,
            error=f"{type(error).__name__}: {error}",
        )
        return None
    return analyse(candidate, stable, thresholds)


def _command_of(runtime: Runtime, service: str) -> Command | None:
    doc = runtime.ledger.get_doc(COMMANDS, service, timeout=_timeout())
    if doc is None:
        return None
    try:
        action = CommandAction(str(doc.data.get("action", "")))
    except ValueError:
        return None
    return Command(
        id=str(doc.data.get("id", "")),
        action=action,
        by=str(doc.data.get("by", "")),
        run_id=str(doc.data.get("run_id", "")),
    )


# -- carrying a decision out --------------------------------------------------------------------------------


def candidate_spec(rollout: Rollout, config: PipelineConfig | None = None) -> RevisionSpec:
    """The candidate revision: deterministic name, the model version's artifacts in its env, labelled; and
    where the serving image finds the shadow mirror's control object (every revision can be a stable one
    that copies requests to a later candidate)."""
    env = {"MODEL_URI": rollout.artifact_uri, "MODEL_VERSION": rollout.version}
    if config is not None:
        env["GOOGLE_CLOUD_PROJECT"] = config.project
        control = experiments.control_uri(config, rollout.service)
        if control:
            env["SHADOW_CONTROL_URI"] = control
    return RevisionSpec(
        name=rollout.candidate,
        image=rollout.image,
        env=env,
        labels={"run-id": label_value(rollout.run_id), "model-version": label_value(rollout.version)},
    )


def _run_step(
    runtime: Runtime,
    rollout: Rollout,
    record: Record,
    actions: Sequence[Action],
    events: Sequence[Event],
    service: Service | None,
) -> StepResult:
    def effect(_context: StepContext) -> Effect:
        _perform(runtime, rollout, actions, service)
        emits: list[Emit] = []
        for event in events:
            emits.extend(_announce(rollout, event, service))
        return Effect(dict(record.result), tuple(emits))

    step = Step(
        key=record.key,
        payload={"service": rollout.service, "run_id": rollout.run_id, "key": record.key},
        effect=effect,
        name=record.name,
        run_id=rollout.run_id,
        cause={"cause": "rollout", "service": rollout.service},
    )
    result = runtime.steps().run(step)
    if result.outcome is Outcome.RETRY:
        raise TransientError(f"{record.name} of {rollout.service} not done yet: {result.error}")
    if result.outcome is Outcome.FAILED:
        log.error(
            "rollout step failed permanently; the rollout is aborted",
            run_id=rollout.run_id,
            service=rollout.service,
            step=record.name,
            error=result.error,
        )
    return result


def _perform(runtime: Runtime, rollout: Rollout, actions: Sequence[Action], service: Service | None) -> None:
    deployments = runtime.ports.deployments
    etag = service.etag if service is not None else None
    for action in actions:
        if isinstance(action, CreateService):
            etag = deployments.create_service(
                rollout.service, candidate_spec(rollout, runtime.config), tag=action.tag, timeout=_timeout()
            )
        elif isinstance(action, DeployCandidate):
            etag = deployments.deploy_revision(
                rollout.service,
                candidate_spec(rollout, runtime.config),
                tag=action.tag,
                etag=etag,
                timeout=_timeout(),
            )
        elif isinstance(action, SetTraffic):
            etag = deployments.set_traffic(rollout.service, action.targets, etag=etag, timeout=_timeout())
        elif isinstance(action, MoveAlias):
            runtime.ports.registry.merge_aliases(
                action.model, action.version, add=[action.alias], timeout=_timeout()
            )
        elif isinstance(action, Mirror):
            experiments.set_mirror(runtime, rollout, action, service, timeout=_timeout())


_SEVERITY = {
    EventKind.ROLLED_BACK: "warning",
    EventKind.ABORTED: "warning",
    EventKind.PAUSED: "warning",
}
_TITLES = {
    EventKind.STARTED: "Rollout of {model} v{version} started on {service}",
    EventKind.STEP: "{service}: candidate at {percent}% — {verdict}",
    EventKind.PAUSED: "Rollout on {service} paused",
    EventKind.RESUMED: "Rollout on {service} resumed",
    EventKind.PROMOTED: "{model} v{version} promoted on {service}",
    EventKind.ROLLED_BACK: "Rollout of {model} v{version} on {service} rolled back",
    EventKind.ABORTED: "Rollout of {model} v{version} on {service} aborted",
}


def _announce(rollout: Rollout, event: Event, service: Service | None) -> list[Emit]:
    """The rollout event (``rollout.event`` on ``rollouts``) and its notification (``rollout.<kind>``)."""
    urls = {}
    if service is not None:
        urls = {tag: url for tag in ("candidate", "stable") if (url := service.tag_uri(tag))}
    data = {
        "kind": event.kind.value,
        "service": rollout.service,
        "run_id": rollout.run_id,
        "model": rollout.model,
        "version": rollout.version,
        "strategy": rollout.strategy,
        "revisions": {"candidate": rollout.candidate, "stable": rollout.stable},
        "percent": event.percent,
        "tag_urls": urls,
        "service_url": service.uri if service is not None else "",
        "analysis": dict(event.detail),
        "reason": event.reason,
    }
    verdict = str(event.detail.get("verdict", ""))
    template = _TITLES[event.kind]
    if event.kind is EventKind.STEP and "shadow" in event.detail:
        template = "{service}: shadow comparison of {model} v{version} — {verdict}"
    elif event.kind is EventKind.STEP and rollout.strategy == Strategy.AB.value:
        template = "{service}: A/B test at {percent}% — {verdict}"
    title = template.format(
        model=rollout.model,
        version=rollout.version,
        service=rollout.service,
        percent=event.percent,
        verdict=verdict,
    )
    announcement = notice(
        f"rollout.{event.kind.value}",
        title,
        severity=_SEVERITY.get(event.kind, "info"),
        text=event.reason,
        model=rollout.model,
        context={
            "service": rollout.service,
            "run_id": rollout.run_id,
            "candidate": rollout.candidate,
            "stable": rollout.stable,
            "percent": event.percent,
            "version": rollout.version,
        },
        links=[(f"{tag} revision", url) for tag, url in urls.items()],
    )
    return [Emit(ROLLOUT_EVENT, data, ordering_key=rollout.service), announcement]


# -- operator commands ---------------------------------------------------------------------------------------


def command(runtime: Runtime, service: str, action: CommandAction, by: str) -> tuple[Rollout, str]:
    """Record the operator's command for the service's active rollout and act on it at once (one tick of
    that service); the rollout as it is afterwards and what the tick did. InvalidInput without one."""
    require_service(runtime, service)
    rollout = read_lease(runtime, service).rollout
    if rollout is None or not rollout.active:
        raise InvalidInput(
            "rollout command",
            [f"service {service} has no active rollout (`rollout {service}` shows the last)"],
        )
    runtime.ledger.put_doc(
        COMMANDS,
        service,
        {
            "id": uuid.uuid4().hex,
            "action": action.value,
            "by": by,
            "run_id": rollout.run_id,
            "at": runtime.clock().isoformat(),
        },
        timeout=_timeout(),
    )
    what = advance_service(runtime, service, runtime.clock())
    after = read_lease(runtime, service).rollout
    assert after is not None
    return after, what
