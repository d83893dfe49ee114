"""The decision on a candidate model version, the same whichever channel it came from.

:func:`decide` takes an :class:`~shared.events.approval.ApprovalDecision` (Pub/Sub, the CLI through Pub/Sub,
a Slack or Google Chat button) and the channel it came by, and either refuses it with a reason the person
is told, or runs the one step ``approval/<run_id>/<version>`` (recorded as ``approval:decided``):

* refused, nothing written (:class:`DecisionRefused`, a permanent error: Pub/Sub records it as rejected):

  - ``not_allowed`` — the approver is not on the model's ``approvers`` (an empty list lets anyone decide;
    entries are exact identities or globs such as ``*@example.com``, ``slack:U0123ABCD``); the automatic
    approver ``policy:auto`` only for a model whose ``approval`` is ``auto``;
  - ``unknown`` — no such model in the config, no such version in the Model Registry, a version that is not
    this run's (its ``run-id`` label), or no such run;
  - ``already_decided`` — the run already has a different decision, or the run has ended;
  - ``superseded`` — a newer candidate (a newer version with a ``run-id`` label) exists for the model;

* accepted — the step (payload: the run, model and version only, so the first decision wins and every
  later one, from any channel, finds it):

  - ``approve`` → ``rollout.requested`` (:class:`~shared.chain.contracts.RolloutRequested`, cause
    ``approval``) for the model's service with the image the run's push built (step ``image:server``), else
    the newest server image our builds made (``pointers/image-server``), else the version's serving image;
    an ``approval.approved`` notification. No service serves the model: recorded, nothing rolled out.
  - ``reject`` → the ``candidate`` alias leaves the version, which gets ``rejected-<version>``; the run is
    finished CANCELLED; an ``approval.rejected`` notification.

  The same decision again (a double click, a redelivery, the automatic approval re-published) is a
  duplicate: one step, one ``rollout.requested``; the opposite decision afterwards is refused as
  ``already_decided``.

The step key differs from ``approve/<run_id>/<version>``, the automatic approval's own step in
``on_training_state`` (which only publishes the decision): sharing it would make this step a duplicate of
that one and nothing would ever be rolled out.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.chain.contracts import ROLLOUT_REQUESTED, RolloutRequested
from shared.chain.evaluation import AUTO_APPROVER, CANDIDATE, REGISTERED
from shared.chain.notices import notice
from shared.chain.pointers import POINTERS, pointer_id
from shared.chain.training import RUN_LABEL
from shared.chainconfig import ModelSpec
from shared.errors import PermanentError, RejectionReason
from shared.events.approval import ApprovalDecision
from shared.ledger import Run, RunStatus
from shared.ports.registry import ModelVersion
from shared.rolloutconfig import service_for_model
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, raise_for_retries

DECIDED = "approval:decided"  # the step's name on the run (the status page reads it)
SERVER_IMAGE_STEP = "image:server"
#: The steps of the candidate's run a decision reads: an earlier decision, the registered candidate, and the
#: server image its push built.
RUN_STEPS_READ = (DECIDED, REGISTERED, SERVER_IMAGE_STEP)
REJECTED_ALIAS = "rejected"
#: A port or ledger call's share of the invocation deadline.
CALL_SECONDS = 5.0


class Channel(enum.StrEnum):
    PUBSUB = "pubsub"
    CLI = "cli"
    POLICY = "policy"
    SLACK = "slack"
    GOOGLE_CHAT = "google_chat"


class Refusal(enum.StrEnum):
    NOT_ALLOWED = "not_allowed"
    UNKNOWN = "unknown"
    ALREADY_DECIDED = "already_decided"
    SUPERSEDED = "superseded"


class DecisionRefused(PermanentError):
    """A decision that must not change anything; ``refusal`` says why, the message is for the person."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message, [f"{refusal.value}: {message}"])
        self.refusal = refusal
        self.reason = (
            RejectionReason.UNAUTHORIZED if refusal is Refusal.NOT_ALLOWED else RejectionReason.REFUSED
        )


@dataclass(frozen=True)
class Decided:
    """What :func:`decide` did: the message for the person, and whether this call was the first."""

    decision: str
    approver: str
    duplicate: bool  # decided before (this or another channel); nothing new happened
    rollout_requested: bool  # a rollout.requested event exists for this decision
    message: str


# -------------------------------------------------------------------------------------------- pure pieces


def channel_of(decision: ApprovalDecision) -> Channel:
    """The channel a Pub/Sub decision names (``channel``: ``cli``), the policy for the automatic approver,
    else plain Pub/Sub."""
    if decision.approver == AUTO_APPROVER:
        return Channel.POLICY
    raw = decision.raw.get("channel") if isinstance(decision.raw, Mapping) else None
    return Channel.CLI if raw == Channel.CLI.value else Channel.PUBSUB


def allowed(model: ModelSpec, identities: Sequence[str]) -> bool:
    """May someone known by ``identities`` decide on ``model``'s candidates? The automatic approver only
    under policy ``auto``; otherwise an empty ``approvers`` list lets anyone, else one entry (an exact
    identity or an ``fnmatch`` glob, compared case-insensitively) must match one identity."""
    if AUTO_APPROVER in identities:
        return model.approval == "auto"
    if not model.approvers:
        return True
    wanted = [pattern.lower() for pattern in model.approvers]
    return any(
        fnmatch.fnmatchcase(identity.lower(), pattern) for identity in identities for pattern in wanted
    )


def newer_candidates(versions: Sequence[ModelVersion], version_id: str) -> list[ModelVersion]:
    """The pipeline's candidates (versions labelled with a run id) registered after ``version_id``."""
    ids = [version.version_id for version in versions]
    if version_id not in ids:
        return []
    return [version for version in versions[ids.index(version_id) + 1 :] if version.labels.get(RUN_LABEL)]


def rejected_alias(version_id: str) -> str:
    """An alias names one version of a model, so each rejected version gets its own: ``rejected-<id>``."""
    return f"{REJECTED_ALIAS}-{version_id}"


def rollout_nonce(run_id: str, version: str, approver: str) -> str:
    digest = hashlib.sha256(f"{run_id}\n{version}\n{approver}".encode()).hexdigest()[:32]
    return f"rollout-{digest}"


def previous_decision(run: Run) -> Mapping[str, Any] | None:
    step = run.step(DECIDED)
    result = step.detail.get("result") if step is not None else None
    return result if isinstance(result, Mapping) and result.get("decision") else None


# ------------------------------------------------------------------------------------------------ checks


def _timeout() -> float:
    return deadlines.current().timeout(CALL_SECONDS)


def _model(runtime: Runtime, name: str) -> ModelSpec:
    model = runtime.config.chain.model(name)
    if model is None:
        raise DecisionRefused(Refusal.UNKNOWN, f"no model {name!r} in the pipeline configuration")
    return model


def _check_allowed(model: ModelSpec, approver: str, identities: Sequence[str]) -> None:
    if not allowed(model, identities):
        who = approver or "(nobody)"
        if AUTO_APPROVER in identities:
            raise DecisionRefused(
                Refusal.NOT_ALLOWED, f"model {model.name} needs a human approval (approval: {model.approval})"
            )
        raise DecisionRefused(Refusal.NOT_ALLOWED, f"{who} may not decide on model {model.name}")


def _candidate(runtime: Runtime, decision: ApprovalDecision) -> tuple[ModelVersion, Run]:
    registry = runtime.ports.registry
    version = registry.get_version(decision.model, decision.version, timeout=_timeout())
    if version is None:
        raise DecisionRefused(
            Refusal.UNKNOWN, f"no version {decision.version} of model {decision.model} in the Model Registry"
        )
    owner = version.labels.get(RUN_LABEL, "")
    if owner != decision.run_id:
        raise DecisionRefused(
            Refusal.UNKNOWN,
            f"version {decision.version} of {decision.model} is not run {decision.run_id}'s candidate"
            + (f" (it is run {owner}'s)" if owner else ""),
        )
    # Only the steps a decision reads (a run has a dozen, each a read and larger than the run itself).
    run = runtime.ledger.get_run(decision.run_id, steps=RUN_STEPS_READ, timeout=_timeout())
    if run is None:
        raise DecisionRefused(Refusal.UNKNOWN, f"no run {decision.run_id} in the ledger")
    return version, run


def _check_open(decision: ApprovalDecision, version: ModelVersion, run: Run, runtime: Runtime) -> None:
    """Refuse a candidate that was decided differently, ended, or superseded (a same decision goes on:
    the step turns it into a duplicate)."""
    earlier = previous_decision(run)
    if earlier is not None:
        if earlier.get("decision") != decision.decision:
            raise DecisionRefused(
                Refusal.ALREADY_DECIDED,
                f"version {decision.version} of {decision.model} was already "
                f"{_past(str(earlier.get('decision')))} by {earlier.get('approver')}",
            )
        return
    if run.status is not RunStatus.RUNNING:
        raise DecisionRefused(
            Refusal.ALREADY_DECIDED, f"run {run.run_id} has ended ({run.status.value}): nothing to decide"
        )
    if run.step(REGISTERED) is None:
        raise DecisionRefused(Refusal.UNKNOWN, f"run {run.run_id} registered no candidate")
    newer = newer_candidates(
        runtime.ports.registry.list_versions(decision.model, timeout=_timeout()), version.version_id
    )
    if newer:
        latest = newer[-1]
        raise DecisionRefused(
            Refusal.SUPERSEDED,
            f"version {decision.version} of {decision.model} is superseded by version {latest.version_id} "
            f"(run {latest.labels.get(RUN_LABEL)})",
        )


def _past(decision: str) -> str:
    return {"approve": "approved", "reject": "rejected"}.get(decision, decision)


# ------------------------------------------------------------------------------------------------ effects


def server_image(runtime: Runtime, run: Run, version: ModelVersion) -> str:
    """The image to serve the candidate with: the one the run's push built, else the newest server image our
    builds made, else the version's own serving image."""
    step = run.step(SERVER_IMAGE_STEP)
    result = step.detail.get("result") if step is not None else None
    if isinstance(result, Mapping) and isinstance(result.get("image"), str) and result["image"]:
        return str(result["image"])
    pointer = runtime.ledger.get_doc(POINTERS, pointer_id("server"), timeout=_timeout())
    if pointer is not None and isinstance(pointer.data.get("image"), str) and pointer.data["image"]:
        return str(pointer.data["image"])
    return version.serving_image


def _approve(
    runtime: Runtime, decision: ApprovalDecision, channel: Channel, version: ModelVersion, run: Run
) -> Effect:
    result: dict[str, Any] = {
        "decision": decision.decision,
        "approver": decision.approver,
        "channel": channel.value,
        "reason": decision.reason,
        "nonce": decision.nonce,
        "model": decision.model,
        "version": decision.version,
    }
    service = service_for_model(runtime.config.services, decision.model)
    if service is None:
        result["rollout"] = f"no service in spec.services serves model {decision.model}: nothing rolled out"
        return Effect(result, (_approved_notice(decision, run.run_id, "", result["rollout"]),))
    request = RolloutRequested(
        service=service.name,
        model=decision.model,
        version=version.version_id,
        version_resource=version.resource_name,
        artifact_uri=version.artifact_uri,
        image=server_image(runtime, run, version),
        cause="approval",
        approved_by=decision.approver,
        nonce=decision.nonce or rollout_nonce(run.run_id, version.version_id, decision.approver),
    )
    result.update(service=service.name, image=request.image, rollout="requested")
    emits: list[Emit] = [
        Emit(ROLLOUT_REQUESTED, request.to_json(), ordering_key=service.name),
        _approved_notice(decision, run.run_id, service.name, f"rollout requested on {service.name}"),
    ]
    return Effect(result, emits)


def _approved_notice(decision: ApprovalDecision, run_id: str, service: str, next_step: str) -> Emit:
    return notice(
        "approval.approved",
        f"{decision.model} version {decision.version} approved by {decision.approver} (run {run_id})",
        text=f"{next_step}." + (f"\nReason: {decision.reason}" if decision.reason else ""),
        model=decision.model,
        context={
            "run_id": run_id,
            "version": decision.version,
            "service": service,
            "approver": decision.approver,
        },
    )


def _reject(
    runtime: Runtime, decision: ApprovalDecision, channel: Channel, version: ModelVersion, run: Run
) -> Effect:
    registry = runtime.ports.registry
    remove = [CANDIDATE] if CANDIDATE in version.aliases else []
    registry.merge_aliases(
        decision.model,
        version.version_id,
        add=[rejected_alias(version.version_id)],
        remove=remove,
        timeout=_timeout(),
    )
    runtime.ledger.finish_run(run.run_id, RunStatus.CANCELLED, timeout=_timeout())
    result = {
        "decision": decision.decision,
        "approver": decision.approver,
        "channel": channel.value,
        "reason": decision.reason,
        "nonce": decision.nonce,
        "model": decision.model,
        "version": decision.version,
        "alias": rejected_alias(version.version_id),
    }
    rejected = notice(
        "approval.rejected",
        f"{decision.model} version {decision.version} rejected by {decision.approver} (run {run.run_id})",
        severity="warning",
        text=(decision.reason or "No reason given.")
        + f"\nThe version is aliased {result['alias']}; run cancelled.",
        model=decision.model,
        context={"run_id": run.run_id, "version": decision.version, "approver": decision.approver},
    )
    return Effect(result, (rejected,))


# -------------------------------------------------------------------------------------------------- flow


def decide(
    runtime: Runtime,
    decision: ApprovalDecision,
    channel: Channel,
    identities: Sequence[str] = (),
    causation_id: str = "",
) -> Decided:
    """Check and apply one decision; :class:`DecisionRefused` when it must change nothing. ``identities``
    are the names the approver is known by on its channel (default: the decision's ``approver``)."""
    model = _model(runtime, decision.model)
    _check_allowed(model, decision.approver, tuple(identities) or (decision.approver,))
    version, run = _candidate(runtime, decision)
    _check_open(decision, version, run, runtime)

    def effect(_context: StepContext) -> Effect:
        apply = _approve if decision.approved else _reject
        return apply(runtime, decision, channel, version, run)

    step = Step(
        key=f"approval/{decision.run_id}/{decision.version}",
        # The candidate only: the first decision wins, any later one (any channel) is this step again.
        payload={"run_id": decision.run_id, "model": decision.model, "version": decision.version},
        effect=effect,
        name=DECIDED,
        run_id=decision.run_id,
        causation_id=causation_id,
    )
    outcome = runtime.steps().run(step)
    raise_for_retries([outcome], f"the decision on {decision.model} version {decision.version}")
    if outcome.failed:
        raise DecisionRefused(Refusal.UNKNOWN, f"the decision could not be applied: {outcome.error}")
    stored = outcome.result
    if stored.get("decision") != decision.decision:  # a concurrent opposite decision won the step
        raise DecisionRefused(
            Refusal.ALREADY_DECIDED,
            f"version {decision.version} of {decision.model} was already "
            f"{_past(str(stored.get('decision')))} by {stored.get('approver')}",
        )
    duplicate = outcome.outcome is Outcome.DUPLICATE
    requested = stored.get("rollout") == "requested"
    message = _message(decision, stored, duplicate)
    log.info(
        "approval decided",
        run_id=decision.run_id,
        model=decision.model,
        version=decision.version,
        decision=decision.decision,
        approver=decision.approver,
        channel=channel.value,
        duplicate=duplicate,
    )
    return Decided(decision.decision, str(stored.get("approver", "")), duplicate, requested, message)


def _message(decision: ApprovalDecision, stored: Mapping[str, Any], duplicate: bool) -> str:
    what = f"{decision.model} version {decision.version}"
    if duplicate:
        return (
            f"{what} was already {_past(decision.decision)} by {stored.get('approver')}; nothing more to do."
        )
    if not decision.approved:
        return f"{what} rejected; the run is cancelled."
    if stored.get("rollout") == "requested":
        return f"{what} approved; rollout requested on {stored.get('service')}."
    return f"{what} approved; {stored.get('rollout')}."
