"""Evaluation: a finished training job → gates → a candidate model version → an approval request.

``on_training_state`` runs, for a ``training.state`` event of run R and job J:

* SUCCEEDED — step ``evaluate/R/J`` (recorded as ``gate``): read the ``metrics.json`` the trainer wrote into
  the model directory, read the champion's metrics back from the Model Registry (the version with alias
  ``champion``, its ``metadata.metrics`` — or its metadata itself when that is a flat map of numbers, as a
  hand-registered version may have), and apply the model's gates
  (:func:`shared.training.gates.evaluate`). The verdict is stored with the step, so a redelivery never
  judges again against a champion that has moved since.

  - fail → notification ``training.gate_failed`` with the numbers beside the champion's; the run FAILED.
  - pass → step ``register/R`` (``registry:version``): one new version of the model (``parent_model`` once
    the model exists), looked up first by its ``run-id`` label so one run never registers two versions,
    whatever a crash or a second job did; artifact URI = the model directory, serving image from the config,
    labels ``run-id``, ``cause`` and, for a push, ``git-commit`` (first 12 hex), alias ``candidate``, metadata
    ``{"metrics": …}``. Then, by the model's ``approval`` policy:

    - ``manual`` → notification ``approval.requested``: the metrics beside the champion's, and the exact
      approval decision to publish on the approvals topic; the run stays RUNNING (the approval continues it);
    - ``auto`` → step ``approve/R/VERSION`` (``approval:auto``) publishes that decision itself, approver
      :data:`AUTO_APPROVER`, with a nonce derived from the run and version.

* FAILED, CANCELLED (or any other end) — step ``evaluate/R/J`` (``training:failed``): notification
  ``training.failed`` with the job's error; the run FAILED.

A permanent error along the way (no ``metrics.json``, an unknown model, a refused upload) fails its step,
is announced as ``training.failed`` and finishes the run FAILED (:func:`shared.chain.training.fail_run`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import log
from shared.approval.actions import approval_actions
from shared.chain.contracts import Cause, TrainingState
from shared.chain.notices import notice
from shared.chain.training import CALL_SECONDS, RUN_LABEL, fail_run, failed, finish, require_model
from shared.chainconfig import ModelSpec
from shared.config import PipelineConfig
from shared.errors import InvalidInput
from shared.events import Envelope
from shared.ingest.runs import COMMIT_DIGITS
from shared.ledger import RunStatus
from shared.ports.objects import parse_uri
from shared.ports.registry import ModelUpload, ModelVersion
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Step, StepContext, StepResult, raise_for_retries
from shared.training.gates import evaluate

GATE = "gate"  # step names on the run
REGISTERED = "registry:version"
JOB_FAILED = "training:failed"
AUTO_APPROVED = "approval:auto"
CANDIDATE = "candidate"
CHAMPION = "champion"
APPROVAL_DECISION = "approval.decision"  # the event kind (topic) of approval decisions
AUTO_APPROVER = "policy:auto"
METRICS_FILE = "metrics.json"


# ------------------------------------------------------------------------------------------ pure pieces


def numeric_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are numbers (finite; booleans are not numbers): what gates compare and the registry
    keeps. The trainer also writes lists and texts (features, classes, data) that are left out."""
    return {
        str(name): float(value)
        for name, value in raw.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def champion_metrics(version: ModelVersion | None) -> dict[str, float] | None:
    """The champion's metrics from its registry metadata: ``metadata.metrics`` (what this pipeline
    registers), else the metadata itself (a hand-registered version with flat numbers); None without a
    champion. A champion with no numbers gives ``{}``: the gates then apply only their absolute bounds."""
    if version is None:
        return None
    nested = version.metadata.get("metrics")
    return numeric_metrics(nested if isinstance(nested, Mapping) else version.metadata)


def metrics_location(output_dir: str) -> tuple[str, str]:
    """``gs://B/runs/R/model/`` → ``(B, "runs/R/model/metrics.json")``."""
    if not output_dir:
        raise InvalidInput(
            "training.state", ["output_dir: required for a SUCCEEDED job (where is the model?)"]
        )
    bucket, prefix = parse_uri(output_dir.rstrip("/") + "/" + METRICS_FILE)
    return bucket, prefix


def parse_metrics(text: str, where: str) -> dict[str, float]:
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise InvalidInput(where, [f"not JSON: {error}"]) from error
    if not isinstance(raw, dict):
        raise InvalidInput(where, [f"must be a JSON object of metrics, got {type(raw).__name__}"])
    return numeric_metrics(raw)


def version_labels(run_id: str, state: TrainingState) -> dict[str, str]:
    labels = {RUN_LABEL: run_id, "cause": state.cause.value}
    if state.cause is Cause.PUSH and state.git.commit:
        labels["git-commit"] = state.git.commit[:COMMIT_DIGITS].lower()
    return labels


def approval_body(run_id: str, model: str, version: str, decided_at: datetime) -> dict[str, str]:
    """An automatic approval in the approval decision contract (``shared.events.approval``, docs/events.md),
    its nonce derived from the run and version so every re-publication is recognised as one decision."""
    digest = hashlib.sha256(f"{run_id}\n{model}\n{version}".encode()).hexdigest()[:32]
    return {
        "run_id": run_id,
        "model": model,
        "version": version,
        "decision": "approve",
        "approver": AUTO_APPROVER,
        "reason": "approval policy auto: every gate passed",
        "nonce": f"auto-{digest}",
        "decided_at": decided_at.isoformat().replace("+00:00", "Z"),
    }


def how_to_approve(config: PipelineConfig, run_id: str, model: str, version: str) -> str:
    """The approval instructions of an ``approval.requested`` notification: the exact message to publish."""
    topic = config.topic_for(APPROVAL_DECISION)
    example = {
        "run_id": run_id,
        "model": model,
        "version": version,
        "decision": "approve",
        "approver": "YOUR-NAME",
        "reason": "why",
        "nonce": "A-UNIQUE-ID",
    }
    return (
        f"To approve (or reject), publish an approval decision on projects/{config.project}/topics/{topic}:\n"
        f"gcloud pubsub topics publish {topic} --project {config.project} "
        f"--message '{json.dumps(example, separators=(',', ':'))}'\n"
        'Use "decision": "reject" to reject; each decision needs a fresh nonce.'
    )


@dataclass(frozen=True)
class BareMessage(Envelope):
    """A message whose body is ``body`` itself, not an envelope: the approval decision contract is a plain
    JSON object (humans and the CLI publish it that way), so an automatic approval must look the same. The
    envelope's fields still give the message its attributes (``type``, ``run_id``, ``event_id``)."""

    body: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.body)


# ---------------------------------------------------------------------------------------------- steps


def _context(run_id: str, state: TrainingState, **extra: Any) -> dict[str, Any]:
    git = state.git
    facts = {"run_id": run_id, "cause": state.cause.value, "job": state.job}
    if git.commit:
        facts.update(repo=git.repo, branch=git.branch, commit=git.commit[:COMMIT_DIGITS])
    return {**facts, **extra}


def gate_step(runtime: Runtime, run_id: str, state: TrainingState, causation_id: str) -> Step:
    def effect(context: StepContext) -> Effect:
        model = require_model(runtime, state.model)
        bucket, name = metrics_location(state.output_dir)
        text = runtime.ports.objects.read_text(bucket, name, timeout=context.deadline.timeout(CALL_SECONDS))
        metrics = parse_metrics(text, f"gs://{bucket}/{name}")
        champion = runtime.ports.registry.get_version(
            model.name, CHAMPION, timeout=context.deadline.timeout(CALL_SECONDS)
        )
        verdict = evaluate(model.gates, metrics, champion_metrics(champion))
        result = {
            "passed": verdict.passed,
            "metrics": metrics,
            "champion": champion.resource_name if champion is not None else "",
            "verdict": verdict.to_dict(),
            "table": verdict.table(),
        }
        if verdict.passed:
            return Effect(result)
        rejected = notice(
            "training.gate_failed",
            f"{model.name}: the candidate of run {run_id} failed its gates",
            severity="warning",
            text="\n".join([*verdict.reasons, "", verdict.table()]),
            model=model.name,
            context=_context(run_id, state, metrics=metrics),
        )
        return Effect(result, (rejected,))

    return Step(
        key=f"evaluate/{run_id}/{state.job}",
        payload={"run_id": run_id, **state.to_json()},
        effect=effect,
        name=GATE,
        run_id=run_id,
        causation_id=causation_id,
    )


def register_step(
    runtime: Runtime, run_id: str, state: TrainingState, gate: Mapping[str, Any], causation_id: str
) -> Step:
    def effect(context: StepContext) -> Effect:
        model = require_model(runtime, state.model)
        registry = runtime.ports.registry
        found = registry.find_versions(
            model.name, {RUN_LABEL: run_id}, timeout=context.deadline.timeout(CALL_SECONDS)
        )
        metrics = dict(gate.get("metrics") or {})
        if found:
            version = found[0]  # registered by an earlier attempt (or another job of this run)
            log.info("model version found, not uploaded again", run_id=run_id, version=version.resource_name)
        else:
            upload = ModelUpload(
                model_id=model.name,
                display_name=model.name,
                artifact_uri=state.output_dir,
                serving_image=model.serving_image,
                labels=version_labels(run_id, state),
                aliases=(CANDIDATE,),
                description=f"run {run_id} ({state.cause.value}), job {state.job}",
                metadata={"metrics": metrics},
            )
            version = registry.upload(upload, timeout=context.deadline.timeout(CALL_SECONDS))
        result = {
            "model": version.model,
            "version": version.version_id,
            "resource": version.resource_name,
            "artifact_uri": version.artifact_uri,
            "aliases": list(version.aliases),
        }
        return Effect(result, (_announcement(runtime, run_id, state, model, version, gate),))

    return Step(
        key=f"register/{run_id}",
        # Keyed by the run alone (one version per run): a second job of the run finds the first's version.
        payload={"run_id": run_id, "model": state.model},
        effect=effect,
        name=REGISTERED,
        run_id=run_id,
        causation_id=causation_id,
    )


def _announcement(
    runtime: Runtime,
    run_id: str,
    state: TrainingState,
    model: ModelSpec,
    version: ModelVersion,
    gate: Mapping[str, Any],
) -> Emit:
    table = str(gate.get("table") or "")
    champion = str(gate.get("champion") or "") or "none yet"
    context = _context(
        run_id, state, version=version.version_id, metrics=dict(gate.get("metrics") or {}), champion=champion
    )
    if model.approval == "auto":
        return notice(
            "model.registered",
            f"{model.name} version {version.version_id} registered and approved automatically (run {run_id})",
            text=f"Every gate passed (champion: {champion}).\n\n{table}",
            model=model.name,
            context=context,
        )
    instructions = how_to_approve(runtime.config, run_id, model.name, version.version_id)
    requested = notice(
        "approval.requested",
        f"Approve {model.name} version {version.version_id}? (run {run_id})",
        text=f"Every gate passed (champion: {champion}).\n\n{table}\n\n{instructions}",
        model=model.name,
        context=context,
    )
    # Approve / Reject buttons on Slack and Google Chat (their clicks reach on_chat_approval).
    buttons = approval_actions(run_id, model.name, version.version_id)
    return Emit(requested.kind, {**requested.data, "actions": buttons})


def auto_approve_step(runtime: Runtime, run_id: str, model: str, version: str, causation_id: str) -> Step:
    def effect(context: StepContext) -> Effect:
        body = approval_body(run_id, model, version, runtime.clock())
        topic = runtime.config.topic_for(APPROVAL_DECISION)
        message = BareMessage(
            type=APPROVAL_DECISION, run_id=run_id, event_id=body["nonce"], data={}, body=body
        )
        # Published by the effect (the step runner publishes envelopes only); a crash before completion
        # publishes it again with the same nonce, which the approval's consumer recognises.
        runtime.publisher.publish(topic, message)
        return Effect({"topic": topic, "nonce": body["nonce"], "approver": AUTO_APPROVER})

    return Step(
        key=f"approve/{run_id}/{version}",
        payload={"run_id": run_id, "model": model, "version": version},
        effect=effect,
        name=AUTO_APPROVED,
        run_id=run_id,
        causation_id=causation_id,
    )


def job_failed_step(run_id: str, state: TrainingState, causation_id: str) -> Step:
    error = state.error or "(Vertex AI gave no error message)"
    announcement = notice(
        "training.failed",
        f"Training of {state.model} ended {state.state} (run {run_id})",
        severity="error",
        text=f"Job {state.job}: {error}",
        model=state.model,
        context=_context(run_id, state),
    )
    return Step(
        key=f"evaluate/{run_id}/{state.job}",
        payload={"run_id": run_id, **state.to_json()},
        effect=lambda _context: Effect({"state": state.state, "error": error}, (announcement,)),
        name=JOB_FAILED,
        run_id=run_id,
        causation_id=causation_id,
    )


# -------------------------------------------------------------------------------------------- the flow


def _check(runtime: Runtime, run_id: str, state: TrainingState, result: StepResult, doing: str) -> bool:
    """Retry when pending; announce and fail the run when the step failed permanently. True to go on."""
    raise_for_retries([result], f"{doing} for run {run_id}")
    if not failed(result):
        return True
    fail_run(
        runtime,
        run_id,
        notice(
            "training.failed",
            f"{state.model}: {doing} failed (run {run_id})",
            severity="error",
            text=result.error,
            model=state.model,
            context=_context(run_id, state),
        ),
    )
    return False


def on_training_state(runtime: Runtime, run_id: str, state: TrainingState, causation_id: str = "") -> str:
    """Handle a job's end for ``run_id``; returns what happened, in a few words (for the log)."""
    steps = runtime.steps()
    if state.state != "SUCCEEDED":
        result = steps.run(job_failed_step(run_id, state, causation_id))
        raise_for_retries([result], f"announcing the failed job of run {run_id}")
        finish(runtime, run_id, RunStatus.FAILED)
        return f"job {state.state.lower()}: run failed"
    gate = steps.run(gate_step(runtime, run_id, state, causation_id))
    if not _check(runtime, run_id, state, gate, "evaluating the candidate"):
        return "evaluation failed: run failed"
    if not gate.result.get("passed"):
        finish(runtime, run_id, RunStatus.FAILED)
        return "gates failed: run failed"
    registered = steps.run(register_step(runtime, run_id, state, gate.result, causation_id))
    if not _check(runtime, run_id, state, registered, "registering the candidate"):
        return "registration failed: run failed"
    version = str(registered.result.get("version", ""))
    model = require_model(runtime, state.model)
    if model.approval != "auto":
        return f"version {version} registered as candidate: approval requested"
    approved = steps.run(auto_approve_step(runtime, run_id, model.name, version, causation_id))
    if not _check(runtime, run_id, state, approved, "approving the candidate"):
        return "automatic approval failed: run failed"
    return f"version {version} registered as candidate and approved automatically"
