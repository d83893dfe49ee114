"""The build-status stage: a build of ours ended → training requested, the image recorded, or a failure told.

The same decision is reached from two sources, so they share one step and one step key:

* ``on_build_status`` — a message on ``cloud-builds`` (Cloud Build publishes every status change);
* :func:`poll_run` — the reconciler reading the build with ``Builds.get`` when a message was lost or late.

Both become :class:`BuildFacts`; :func:`judge` (pure) decides; :func:`settle` runs the step
``build-status/<build_id>/<status>``, so whichever source comes second is a duplicate and publishes nothing
new. What a terminal build of ours leads to:

* **trainer image, SUCCESS** — ``training.requested`` (:class:`~shared.chain.contracts.TrainingRequested`)
  for every model whose trainer uses that image repository, with the built image *by digest*
  (``repo@sha256:…``) and the git context from the build's substitutions; the ``image-trainer`` pointer
  document (collection ``pointers``, one per image name) is moved to it when it is newer; a
  ``build.succeeded`` notification.
* **server image, SUCCESS** — the step ``image:server`` on the run with the digest (the rollout consumes
  it), the ``image-server`` pointer, a ``build.succeeded`` notification.
* **FAILURE, TIMEOUT, INTERNAL_ERROR, CANCELLED, EXPIRED** — a ``build.failed`` notification (severity
  error) naming the failing step and linking the log, and the run finished FAILED.

"Ours" means tagged ``mlops`` and ``run-<run id>`` (and ``image-<name>``), as ``on_git_push`` tags them;
anything else (other pipelines' builds, the stack's seed builds) and every non-terminal status is ignored.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.chain.contracts import (
    ROLLOUT_REQUESTED,
    TRAINING_REQUESTED,
    Cause,
    GitContext,
    RolloutRequested,
    TrainingRequested,
)
from shared.chain.notices import notice
from shared.chain.pointers import POINTERS, pointer_id
from shared.chainconfig import ChainConfig
from shared.errors import is_permanent
from shared.events import BuildMessage
from shared.ingest.builds import OUR_TAG
from shared.ingest.runs import is_run_id
from shared.ledger import DocConflictError, Ledger, Run, RunNotFoundError, RunStatus, StepStatus
from shared.ports.builds import Build, BuildStatus
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, StepResult, raise_for_retries

#: The ledger collection of pointer documents: ``image-<image name>`` (``image-trainer``, ``image-server``)
#: holds the newest image of that name our builds produced, ``{"image": "repo@sha256:…", "built_at": ISO
#: 8601 UTC, ...}``; ``start_training`` reads the trainer's when a request names no image.
#: A port or ledger call's share of the invocation deadline.
CALL_SECONDS = 5.0
_POINTER_ATTEMPTS = 3

__all__ = [
    "POINTERS",
    "BuildFacts",
    "Judgement",
    "Verdict",
    "image_reference",
    "judge",
    "pointer_id",
    "poll_run",
    "roll_out_server_image",
    "settle",
    "status_key",
    "update_pointer",
]


@dataclass(frozen=True)
class FailingStep:
    index: int
    id: str
    name: str
    exit_code: int | None
    status: str

    def describe(self) -> str:
        label = (
            f'step {self.index} "{self.id}" ({self.name})' if self.id else f"step {self.index} ({self.name})"
        )
        ended = f"exited {self.exit_code}" if self.exit_code is not None else self.status.lower()
        return f"{label} {ended}"


@dataclass(frozen=True)
class BuildFacts:
    """A build as either source reports it (a ``cloud-builds`` message or ``Builds.get``)."""

    build_id: str
    status: BuildStatus
    tags: tuple[str, ...] = ()
    substitutions: Mapping[str, str] = field(default_factory=dict)
    images: tuple[tuple[str, str], ...] = ()  # (name as listed, digest)
    log_url: str = ""
    detail: str = ""
    failing_step: FailingStep | None = None
    source_revision: str = ""
    finish_time: datetime | None = None

    @classmethod
    def from_message(cls, message: BuildMessage) -> BuildFacts:
        raw = message.raw if isinstance(message.raw, Mapping) else {}
        provenance = raw.get("sourceProvenance")
        resolved = provenance.get("resolvedGitSource") if isinstance(provenance, Mapping) else None
        revision = resolved.get("revision") if isinstance(resolved, Mapping) else None
        return cls(
            build_id=message.build_id,
            status=_status(message.status),
            tags=message.tags,
            substitutions=dict(message.substitutions),
            images=tuple((image.name, image.digest) for image in message.built_images),
            log_url=message.log_url,
            detail=message.failure,
            failing_step=_failing_step(raw.get("steps")),
            source_revision=revision if isinstance(revision, str) else "",
            finish_time=message.finish_time,
        )

    @classmethod
    def from_build(cls, build: Build) -> BuildFacts:
        failing = build.failing_step
        return cls(
            build_id=build.id,
            status=build.status,
            tags=build.tags,
            substitutions=dict(build.substitutions),
            images=tuple((image.name, image.digest) for image in build.images),
            log_url=build.log_url,
            detail=build.status_detail,
            failing_step=(
                FailingStep(failing.index, failing.id, failing.name, failing.exit_code, failing.status.value)
                if failing
                else None
            ),
            source_revision=build.source_revision,
            finish_time=build.finish_time,
        )

    def tag_value(self, prefix: str) -> str:
        """The value of the first ``prefix-value`` tag ("" when there is none)."""
        return next((tag[len(prefix) + 1 :] for tag in self.tags if tag.startswith(prefix + "-")), "")


class Verdict(enum.StrEnum):
    IGNORED = "ignored"
    BUILT = "built"
    FAILED = "failed"


@dataclass(frozen=True)
class Judgement:
    """What a build's status means for the chain (:func:`judge`)."""

    verdict: Verdict
    reason: str
    run_id: str = ""
    image: str = ""  # the image rule's name (from the ``image-<name>`` tag)
    role: str = ""  # trainer | server | other
    reference: str = ""  # BUILT: the image by digest, ``repo@sha256:…``
    digest: str = ""
    models: tuple[str, ...] = ()  # the models that use this image (trainer: to train; server: to serve)
    git: GitContext = field(default_factory=GitContext)


def judge(facts: BuildFacts, chain: ChainConfig) -> Judgement:
    """Pure: is this build ours, has it ended, and what does its end mean?"""
    if not facts.status.terminal:
        return Judgement(Verdict.IGNORED, f"status {facts.status.value} is not terminal")
    if OUR_TAG not in facts.tags:
        return Judgement(Verdict.IGNORED, f"not a pipeline build (no {OUR_TAG!r} tag)")
    run_id = facts.tag_value("run")
    if not is_run_id(run_id):
        return Judgement(Verdict.IGNORED, "not a pipeline build (no run-<run id> tag)")
    image = facts.tag_value("image")
    if not image:
        return Judgement(Verdict.IGNORED, "not a pipeline build (no image-<name> tag)")
    spec = chain.image(image)
    role = spec.role if spec else "other"
    repository = _repository(spec.rule.repository if spec else facts.substitutions.get("_IMAGE", ""))
    models = _models_using(chain, role, repository)
    subs = facts.substitutions
    git = GitContext(
        repo=subs.get("_REPO", ""),
        commit=subs.get("COMMIT_SHA", "") or facts.source_revision,
        branch=subs.get("_BRANCH", ""),
    )
    common: dict[str, Any] = {"run_id": run_id, "image": image, "role": role, "models": models, "git": git}
    if facts.status.failed:
        return Judgement(Verdict.FAILED, f"{image} build ended {facts.status.value}", **common)
    reference, digest = _built_reference(facts.images, repository or facts.substitutions.get("_IMAGE", ""))
    return Judgement(Verdict.BUILT, f"{image} built", reference=reference, digest=digest, **common)


def image_reference(name: str, digest: str) -> str:
    """``repo@sha256:…`` for an image listed as ``repo:tag`` with ``digest`` (the name when no digest)."""
    return f"{_repository(name)}@{digest}" if digest else name


def status_key(build_id: str, status: BuildStatus) -> str:
    return f"build-status/{build_id}/{status.value}"


def settle(
    runtime: Runtime, facts: BuildFacts, causation_id: str = ""
) -> tuple[Judgement, StepResult | None]:
    """Judge the build and, when it is a terminal build of ours, run its status step (None when ignored)."""
    judgement = judge(facts, runtime.config.chain)
    if judgement.verdict is Verdict.IGNORED:
        return judgement, None
    result = runtime.steps().run(_status_step(runtime, facts, judgement, causation_id))
    if result.outcome in (Outcome.DONE, Outcome.DUPLICATE):
        roll_out_server_image(runtime, judgement, causation_id)
    return judgement, result


def poll_run(runtime: Runtime, run: Run) -> list[str]:
    """For the reconciler: read each build started on ``run`` whose end is not recorded yet and, if it has
    ended, settle it exactly as ``on_build_status`` would. Returns what was emitted, one line per build.

    A build Cloud Build no longer knows is logged and skipped; a transient error escapes (the next tick
    tries again)."""
    settled = {
        str(step.detail.get("key", "")).split("/")[1]
        for step in run.steps
        if str(step.detail.get("key", "")).startswith("build-status/")
    }
    emitted: list[str] = []
    for step in run.steps:
        result = step.detail.get("result")
        if not step.name.startswith("build:") or step.status is not StepStatus.SUCCEEDED:
            continue
        build_id = str(result.get("build_id", "")) if isinstance(result, Mapping) else ""
        if not build_id or build_id in settled:
            continue
        timeout = deadlines.current().timeout(CALL_SECONDS)
        try:
            build = runtime.ports.builds.get(build_id, timeout=timeout)
        except Exception as error:
            if not is_permanent(error):
                raise
            log.warning(
                "a started build cannot be read", run_id=run.run_id, build_id=build_id, error=str(error)
            )
            continue
        if not build.status.terminal:
            continue
        judgement, outcome = settle(runtime, BuildFacts.from_build(build), f"reconcile/{build_id}")
        if outcome is not None and outcome.outcome is Outcome.DONE:
            emitted.append(_describe(build_id, build.status, judgement))
    return emitted


def update_pointer(ledger: Ledger, image_name: str, data: Mapping[str, Any], built_at: datetime) -> bool:
    """Point ``image-<image name>`` at ``data["image"]`` unless it already holds an image built at or after
    ``built_at`` (an older build's message may arrive last); compare-and-set, re-read on a lost race. True
    when written."""
    doc_id = pointer_id(image_name)
    for attempt in range(1, _POINTER_ATTEMPTS + 1):
        current = ledger.get_doc(POINTERS, doc_id, timeout=deadlines.current().timeout(CALL_SECONDS))
        if current is not None:
            stored = _parse_time(current.data.get("built_at"))
            if stored is not None and stored >= built_at:
                return False
        try:
            ledger.put_doc(
                POINTERS,
                doc_id,
                {**data, "built_at": built_at.astimezone(UTC).isoformat()},
                create_only=current is None,
                expect_version=current.version if current is not None else None,
                timeout=deadlines.current().timeout(CALL_SECONDS),
            )
            return True
        except DocConflictError:
            if attempt == _POINTER_ATTEMPTS:
                raise  # transient: the delivery comes back and decides again
    return False


# -- internals ----------------------------------------------------------------------------------------------


def _status_step(runtime: Runtime, facts: BuildFacts, judgement: Judgement, causation_id: str) -> Step:
    cause = {
        "cause": Cause.PUSH.value,
        **judgement.git.to_json(),
        "images": [judgement.image],
        # Used only when the push's own step never reached the ledger (its holder crashed after starting
        # the build): the run is then created from what the build itself says.
        "recorded_from": "build status",
    }

    def effect(context: StepContext) -> Effect:
        if judgement.verdict is Verdict.FAILED:
            _finish_failed(runtime.ledger, judgement.run_id, cause)
            return Effect(_failed_result(facts), [_failed_notice(facts, judgement)], failed=True)
        built_at = facts.finish_time or runtime.clock()
        if judgement.reference:
            pointer = {
                "image": judgement.reference,
                "role": judgement.role,
                "build_id": facts.build_id,
                "run_id": judgement.run_id,
                "commit": judgement.git.commit,
            }
            update_pointer(runtime.ledger, judgement.image, pointer, built_at)
        return Effect(_built_result(facts, judgement), _built_emits(facts, judgement))

    return Step(
        key=status_key(facts.build_id, facts.status),
        payload={"build_id": facts.build_id, "status": facts.status.value},
        effect=effect,
        name=f"image:{judgement.image}",
        run_id=judgement.run_id,
        causation_id=causation_id,
        cause=cause,
    )


def _built_emits(facts: BuildFacts, judgement: Judgement) -> list[Emit]:
    emits: list[Emit] = []
    if judgement.role == "trainer":
        for model in judgement.models:
            request = TrainingRequested(
                model=model,
                cause=Cause.PUSH,
                image=judgement.reference,
                git=judgement.git,
                detail={
                    "build_id": facts.build_id,
                    "image_name": judgement.image,
                    "digest": judgement.digest,
                },
            )
            emits.append(Emit(TRAINING_REQUESTED, request.to_json()))
    models = ", ".join(judgement.models) or "no model (none uses this image)"
    next_step = {"trainer": f"training requested for {models}", "server": "recorded for the rollout"}.get(
        judgement.role, "recorded"
    )
    emits.append(
        notice(
            "build.succeeded",
            f"{judgement.image} image built",
            text=f"{judgement.reference or judgement.image}: {next_step}",
            model=judgement.models[0] if len(judgement.models) == 1 else "",
            context=_context(facts, judgement),
            links=_links(facts),
        )
    )
    return emits


def _failed_notice(facts: BuildFacts, judgement: Judgement) -> Emit:
    step = facts.failing_step.describe() if facts.failing_step else "no failing step reported"
    text = f"{step}: {facts.detail}" if facts.detail else step
    return notice(
        "build.failed",
        f"{judgement.image} image build {facts.status.value.lower().replace('_', ' ')}",
        severity="error",
        text=text,
        model=judgement.models[0] if len(judgement.models) == 1 else "",
        context={**_context(facts, judgement), "failing_step": step},
        links=_links(facts),
    )


def _context(facts: BuildFacts, judgement: Judgement) -> dict[str, Any]:
    return {
        "run_id": judgement.run_id,
        "repo": judgement.git.repo,
        "commit": judgement.git.commit[:12],
        "branch": judgement.git.branch,
        "image": judgement.image,
        "build_id": facts.build_id,
        "status": facts.status.value,
    }


def _links(facts: BuildFacts) -> list[tuple[str, str]]:
    return [("Build log", facts.log_url)] if facts.log_url else []


def _built_result(facts: BuildFacts, judgement: Judgement) -> dict[str, Any]:
    return {
        "build_id": facts.build_id,
        "status": facts.status.value,
        "image": judgement.reference,
        "digest": judgement.digest,
        "role": judgement.role,
        "models": list(judgement.models),
    }


def _failed_result(facts: BuildFacts) -> dict[str, Any]:
    return {
        "build_id": facts.build_id,
        "status": facts.status.value,
        "failing_step": facts.failing_step.describe() if facts.failing_step else "",
        "detail": facts.detail[:1000],
        "log_url": facts.log_url,
    }


def _finish_failed(ledger: Ledger, run_id: str, cause: Mapping[str, Any]) -> None:
    """The run ends FAILED (idempotent); a run whose push step was never recorded is created first."""
    try:
        ledger.finish_run(run_id, RunStatus.FAILED, timeout=deadlines.current().timeout(CALL_SECONDS))
    except RunNotFoundError:
        ledger.start_run(run_id, cause=dict(cause), timeout=deadlines.current().timeout(CALL_SECONDS))
        ledger.finish_run(run_id, RunStatus.FAILED, timeout=deadlines.current().timeout(CALL_SECONDS))


def _describe(build_id: str, status: BuildStatus, judgement: Judgement) -> str:
    head = f"build {build_id} ({judgement.image}) {status.value}"
    if judgement.verdict is Verdict.FAILED:
        return f"{head}: build.failed notification, run {judgement.run_id} FAILED"
    if judgement.role == "trainer" and judgement.models:
        return f"{head}: training.requested for {', '.join(judgement.models)} with {judgement.reference}"
    return f"{head}: recorded {judgement.reference or judgement.image}"


def _status(value: str) -> BuildStatus:
    try:
        return BuildStatus(value)
    except ValueError:
        return BuildStatus.UNKNOWN


def _failing_step(steps: Any) -> FailingStep | None:
    """The first step that failed (and was not allowed to), from a Build resource's ``steps`` JSON."""
    if not isinstance(steps, list):
        return None
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping) or step.get("allowFailure") is True:
            continue
        status = str(step.get("status", ""))
        if status in (BuildStatus.FAILURE.value, BuildStatus.TIMEOUT.value):
            code = step.get("exitCode")
            exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            return FailingStep(index, str(step.get("id", "")), str(step.get("name", "")), exit_code, status)
    return None


def _repository(name: str) -> str:
    """``name`` without its tag or digest (a tag follows the last ':' after the last '/')."""
    base = name.split("@", 1)[0]
    colon = base.rfind(":")
    return base[:colon] if colon > base.rfind("/") else base


def _built_reference(images: tuple[tuple[str, str], ...], repository: str) -> tuple[str, str]:
    """The built image of ``repository`` by digest (the first listed image when none is named so)."""
    wanted = _repository(repository)
    ours = [(name, digest) for name, digest in images if wanted and _repository(name) == wanted]
    chosen = next(iter(ours or [item for item in images if item[1]] or images), None)
    if chosen is None:
        return "", ""
    return image_reference(*chosen), chosen[1]


def _models_using(chain: ChainConfig, role: str, repository: str) -> tuple[str, ...]:
    if not repository:
        return ()
    if role == "trainer":
        return tuple(m.name for m in chain.models if _repository(m.trainer.image) == repository)
    if role == "server":
        return tuple(m.name for m in chain.models if _repository(m.serving_image) == repository)
    return ()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# -- a server-image-only push (issue 9): the champion rolled out on the new image ----------------------------

#: Who "approves" a server-image-only rollout (``spec.rollout.serverImageChanges: auto``).
SERVER_IMAGE_APPROVER = "policy:serverImageChanges"


def roll_out_server_image(runtime: Runtime, judgement: Judgement, causation_id: str = "") -> list[StepResult]:
    """A server image built by a push that built no trainer image: per model served by that image, one step
    ``server-image/<run_id>/<model>`` that emits ``rollout.requested`` (cause ``server_image``) for the
    model's service with its ``champion`` version on the new image — when ``spec.rollout.serverImageChanges``
    is ``auto``; ``manual`` records ``approval:held`` and notifies. No champion: recorded, nothing rolled out.
    A push that also built a trainer image is a model change: its candidate brings the image (approval)."""
    if judgement.verdict is not Verdict.BUILT or judgement.role != "server" or not judgement.reference:
        return []
    chain = runtime.config.chain
    run = runtime.ledger.get_run(judgement.run_id, timeout=deadlines.current().timeout(CALL_SECONDS))
    built = [str(name) for name in (run.cause.get("images") or [])] if run is not None else []
    built += [
        step.name.split(":", 1)[1] for step in (run.steps if run else ()) if step.name.startswith("build:")
    ]
    if any((spec := chain.image(name)) is not None and spec.role == "trainer" for name in built):
        return []
    from shared.rolloutconfig import service_for_model

    auto = runtime.config.rollout.server_image_changes == "auto"
    steps: list[Step] = []
    for model in judgement.models:
        service = service_for_model(runtime.config.services, model)
        if service is not None:
            steps.append(_server_image_step(runtime, judgement, model, service.name, auto, causation_id))
    results = runtime.steps().run_all(steps)
    raise_for_retries(results, f"rolling out server image {judgement.reference}")
    return results


def _server_image_step(
    runtime: Runtime, judgement: Judgement, model: str, service: str, auto: bool, causation_id: str
) -> Step:
    from shared.approval.decide import DECIDED

    def effect(context: StepContext) -> Effect:
        result: dict[str, Any] = {
            "decision": "approve" if auto else "held",
            "approver": SERVER_IMAGE_APPROVER,
            "channel": "policy",
            "model": model,
            "service": service,
            "image": judgement.reference,
        }
        champion = runtime.ports.registry.get_version(
            model, "champion", timeout=context.deadline.timeout(CALL_SECONDS)
        )
        if champion is None:
            result["rollout"] = f"model {model} has no champion version: nothing to roll out on the new image"
            return Effect(result)
        result["version"] = champion.version_id
        if not auto:
            result["rollout"] = "held: spec.rollout.serverImageChanges is manual"
            held = notice(
                "rollout.held",
                f"{judgement.image} image built: {model} version {champion.version_id} not rolled out",
                text=(
                    f"{judgement.reference}: spec.rollout.serverImageChanges is manual. To roll it out: "
                    f"python -m shared.operator start {service} --image {judgement.reference}"
                ),
                model=model,
                context={"run_id": judgement.run_id, "version": champion.version_id, "service": service},
            )
            return Effect(result, (held,))
        digest = hashlib.sha256(f"{judgement.run_id}\n{model}\n{judgement.reference}".encode()).hexdigest()[
            :32
        ]
        request = RolloutRequested(
            service=service,
            model=model,
            version=champion.version_id,
            version_resource=champion.resource_name,
            artifact_uri=champion.artifact_uri,
            image=judgement.reference,
            cause="server_image",
            approved_by=SERVER_IMAGE_APPROVER,
            nonce=f"server-image-{digest}",
        )
        result["rollout"] = "requested"
        return Effect(result, (Emit(ROLLOUT_REQUESTED, request.to_json(), ordering_key=service),))

    return Step(
        key=f"server-image/{judgement.run_id}/{model}",
        payload={"run_id": judgement.run_id, "model": model, "image": judgement.reference},
        effect=effect,
        name=DECIDED if auto else "approval:held",
        run_id=judgement.run_id,
        causation_id=causation_id,
    )
