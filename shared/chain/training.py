"""Training: one Vertex AI job per run (``start_training``), and learning how it ended (``poll_run``).

``start_training`` turns a ``training.requested`` event into one step, keyed ``train/<run_id>``, whose effect

1. looks the job up by its ``run-id`` label and submits only when there is none, so a redelivery, or a
   retry after a crash between the create call and the ledger's completion, finds the first job instead of
   starting a second one (a CustomJob has no client-chosen id, so the label is the only handle);
2. picks the trainer image: the request's (a build's digest), else the newest image our builds produced
   (the ``pointers`` state document ``image-<name>`` of each ``role: trainer`` image, written by
   ``on_build_status``), else the model's configured default;
3. picks the data: the request's exact URIs (a closed data batch), else — a push or a drift alert names
   none — the dataset's current objects under its prefix that on_data_object validated (its member
   documents; quarantined copies and not-yet-validated files excluded);
4. submits a CustomJob: labels ``run-id``, ``model``, ``cause``; display name ``train-<run_id>``; machine
   type and service account from the model's ``trainer`` config; base output directory
   ``gs://<artifacts bucket>/runs/<run_id>/`` (Vertex gives the container ``AIP_MODEL_DIR`` =
   ``<base>/model/``, where the sample trainer writes ``model.joblib`` and ``metrics.json``); the data as
   one ``--data URI`` argument each, or, past :data:`MAX_ARG_URIS`, a ``--data-list`` manifest object.

The step is recorded on the run as ``training:submitted`` (job name, image, data URIs). A permanent failure
(an unknown model, no data, ``kind: pipeline_job``, which the ``TrainingJobs`` port cannot submit yet) fails
the step, notifies ``training.failed`` and finishes the run FAILED.

:func:`poll_run` is the reconciler's hook (Vertex publishes no completion event): for a run whose job was
submitted and whose end is not recorded yet, it reads the job; once terminal, one step keyed
``job-state/<job>/<state>`` (recorded as ``training:finished``) emits ``training.state``. The claim makes
overlapping ticks emit it once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.chain.contracts import TRAINING_STATE, Cause, GitContext, TrainingRequested, TrainingState
from shared.chain.notices import notice
from shared.chain.pointers import POINTERS, pointer_id
from shared.chainconfig import ModelSpec
from shared.errors import ConfigError, PermanentError
from shared.ledger import Run, RunStatus, StepStatus
from shared.ports.common import label_value
from shared.ports.errors import NotFound
from shared.ports.training import JobState, MachineSpec, TrainingJob, TrainingJobSpec
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, StepResult, raise_for_retries

SUBMITTED = "training:submitted"  # step names on the run
FINISHED = "training:finished"
RUN_FAILED = "run:failed"
#: The state documents holding the newest image each of our builds produced (``on_build_status``).
RUN_LABEL = "run-id"
#: More data URIs than this go to the job in a manifest object rather than one argument each.
MAX_ARG_URIS = 200
#: The data URIs recorded on the run are cut to about this many bytes (the job's arguments hold them all).
RECORDED_URIS_BYTES = 32_000
#: The longest one port or ledger call of these steps may take (less when the invocation has less left).
CALL_SECONDS = 20.0
#: The most objects a dataset listing takes (the trainer reads each one).
MAX_DATASET_OBJECTS = 10_000
QUARANTINE = "quarantine/"
MEMBERS = "members"  # on_data_object's documents of validated objects (shared.chain.data)


@dataclass(frozen=True)
class TrainingPlan:
    """What one run's job is made of; :meth:`job_spec` turns it into the port's request."""

    run_id: str
    model: ModelSpec
    cause: Cause
    image: str
    image_source: str  # request | pointer | config
    data_uris: tuple[str, ...]
    base_output_dir: str
    manifest_uri: str = ""  # set when the URIs go to the job as a --data-list object

    def job_spec(self) -> TrainingJobSpec:
        trainer = self.model.trainer
        return TrainingJobSpec(
            display_name=f"train-{self.run_id}",
            image_uri=self.image,
            args=(*trainer.args, *data_args(self.data_uris, self.manifest_uri)),
            labels=job_labels(self.run_id, self.model.name, self.cause),
            machine=MachineSpec(trainer.machine_type),
            service_account=trainer.service_account,
            base_output_dir=self.base_output_dir,
        )


def job_labels(run_id: str, model: str, cause: Cause) -> dict[str, str]:
    return {RUN_LABEL: run_id, "model": label_value(model), "cause": cause.value}


def base_output_dir(artifacts_bucket: str, run_id: str) -> str:
    return f"gs://{artifacts_bucket}/runs/{run_id}/"


def model_dir(base: str) -> str:
    """Where Vertex AI tells the container to write the model (``AIP_MODEL_DIR``): ``<base>/model/``."""
    return f"{base.rstrip('/')}/model/"


def manifest_uri(artifacts_bucket: str, run_id: str) -> str:
    return f"gs://{artifacts_bucket}/runs/{run_id}/data-uris.txt"


def data_args(uris: Sequence[str], manifest: str = "") -> tuple[str, ...]:
    """The trainer's data arguments: ``--data-list MANIFEST``, or ``--data URI`` for each URI."""
    if manifest:
        return ("--data-list", manifest)
    return tuple(arg for uri in uris for arg in ("--data", uri))


def data_from_args(args: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """The inverse of :func:`data_args`: the ``--data`` URIs and the ``--data-list`` manifest in ``args``."""
    uris: list[str] = []
    manifest = ""
    items = iter(args)
    for flag in items:
        if flag == "--data":
            uris.append(next(items, ""))
        elif flag == "--data-list":
            manifest = next(items, "")
    return tuple(uris), manifest


def recorded_uris(uris: Sequence[str], budget: int = RECORDED_URIS_BYTES) -> tuple[list[str], bool]:
    """The URIs to record on the run, cut to ``budget`` bytes of JSON (the run record has a size limit);
    True when some were left out."""
    kept: list[str] = []
    used = 2
    for uri in uris:
        used += len(json.dumps(uri)) + 1
        if used > budget:
            return kept, True
        kept.append(uri)
    return kept, False


def dataset_objects(names: Sequence[str], prefix: str) -> list[str]:
    """Object names that are data: under ``prefix``, not a quarantined copy, not a folder placeholder."""
    return [
        name
        for name in names
        if name.startswith(prefix) and not name.startswith(QUARANTINE) and not name.endswith("/")
    ]


def require_model(runtime: Runtime, name: str) -> ModelSpec:
    model = runtime.config.chain.model(name)
    if model is None:
        known = [spec.name for spec in runtime.config.chain.models]
        raise ConfigError(f"{runtime.config.source}: spec.models has no model {name!r} (known: {known})")
    return model


# ------------------------------------------------------------------------------------------- the decisions


def resolve_image(
    runtime: Runtime, request: TrainingRequested, model: ModelSpec, timeout: float
) -> tuple[str, str]:
    """The image and where it came from: the request, the newest our builds made, or the config."""
    if request.image:
        return request.image, "request"
    names = [image.name for image in runtime.config.chain.images if image.role == "trainer"] or ["trainer"]
    newest: tuple[str, str] | None = None  # (built_at, image): the latest build among the trainer images
    for name in names:
        doc = runtime.ledger.get_doc(POINTERS, pointer_id(name), timeout=timeout)
        data = doc.data if doc is not None else {}
        image, built_at = data.get("image"), str(data.get("built_at") or "")
        if isinstance(image, str) and image and (newest is None or built_at > newest[0]):
            newest = (built_at, image)
    if newest is not None:
        return newest[1], "pointer"
    return model.trainer.image, "config"


def resolve_data(runtime: Runtime, request: TrainingRequested, timeout: float) -> tuple[str, ...]:
    """The request's exact URIs; else every current object of the model's dataset(s)."""
    if request.data_uris:
        return request.data_uris
    chain = runtime.config.chain
    named = chain.dataset(request.dataset) if request.dataset else None
    datasets = [named] if named is not None else [d for d in chain.datasets if d.model == request.model]
    uris: list[str] = []
    for dataset in datasets:
        # Only objects on_data_object validated (its member documents) that are still there: a file that
        # just landed and is not validated yet, or one on its way to quarantine, never reaches a trainer.
        validated = {
            str(doc.data.get("uri"))
            for doc in runtime.ledger.query_docs(
                MEMBERS, equals={"dataset": dataset.name}, limit=MAX_DATASET_OBJECTS, timeout=timeout
            )
        }
        listed = runtime.ports.objects.list(
            dataset.bucket, dataset.prefix, limit=MAX_DATASET_OBJECTS, timeout=timeout
        )
        uris += [
            uri
            for name in dataset_objects([o.name for o in listed], dataset.prefix)
            if (uri := f"gs://{dataset.bucket}/{name}") in validated
        ]
    return tuple(uris)


def plan_training(runtime: Runtime, run_id: str, request: TrainingRequested, timeout: float) -> TrainingPlan:
    model = require_model(runtime, request.model)
    if model.trainer.kind != "custom_job":
        raise PermanentError(
            f"model {model.name!r} has trainer kind {model.trainer.kind!r}, but the TrainingJobs port "
            "submits only Vertex AI CustomJobs (it has no PipelineJob support yet): use kind custom_job"
        )
    image, source = resolve_image(runtime, request, model, timeout)
    uris = resolve_data(runtime, request, timeout)
    if not uris:
        where = request.dataset or f"the datasets of model {model.name!r}"
        raise PermanentError(f"no data to train on: the request names none and {where} holds no objects")
    bucket = runtime.config.chain.artifacts_bucket
    return TrainingPlan(
        run_id=run_id,
        model=model,
        cause=request.cause,
        image=image,
        image_source=source,
        data_uris=uris,
        base_output_dir=base_output_dir(bucket, run_id),
        manifest_uri=manifest_uri(bucket, run_id) if len(uris) > MAX_ARG_URIS else "",
    )


# ------------------------------------------------------------------------------------------ start_training


def _submitted_result(
    job: TrainingJob,
    request: TrainingRequested,
    image_source: str,
    data_uris: Sequence[str],
    manifest: str,
) -> dict[str, Any]:
    recorded, truncated = recorded_uris(data_uris)
    return {
        "job": job.name,
        "display_name": job.display_name,
        "image": job.image_uri,
        "image_source": image_source,
        "data_uris": recorded,
        "data_count": len(data_uris),
        "data_uris_truncated": truncated,
        "manifest": manifest,
        "model": request.model,
        "cause": request.cause.value,
        "git": request.git.to_json(),
        "output_dir": model_dir(job.base_output_dir),
        "reused": image_source == "existing job",
    }


def _existing_job(runtime: Runtime, job: TrainingJob, request: TrainingRequested, timeout: float) -> Effect:
    """The result of a job an earlier attempt submitted, its data read back from its arguments."""
    uris, manifest = data_from_args(job.args)
    if manifest and not uris:
        bucket, _, name = manifest.removeprefix("gs://").partition("/")
        uris = tuple(runtime.ports.objects.read_text(bucket, name, timeout=timeout).split())
    return Effect(_submitted_result(job, request, "existing job", uris, manifest))


def submit_step(runtime: Runtime, run_id: str, request: TrainingRequested, causation_id: str = "") -> Step:
    """The step that makes sure exactly one job trains ``run_id``."""

    def effect(context: StepContext) -> Effect:
        training = runtime.ports.training
        # First, always: an earlier attempt (or a crash after its create call) may have submitted the job.
        existing = training.find_by_label(RUN_LABEL, run_id, timeout=context.deadline.timeout(CALL_SECONDS))
        if existing:
            job = existing[-1]  # the oldest: the one the first attempt made
            log.info("training job found, not submitted again", run_id=run_id, job=job.name)
            return _existing_job(runtime, job, request, context.deadline.timeout(CALL_SECONDS))
        plan = plan_training(runtime, run_id, request, context.deadline.timeout(CALL_SECONDS))
        if plan.manifest_uri:
            bucket, _, name = plan.manifest_uri.removeprefix("gs://").partition("/")
            # Same content on every attempt, so overwriting after a crash is harmless.
            runtime.ports.objects.write(
                bucket, name, "\n".join(plan.data_uris) + "\n", timeout=context.deadline.timeout(CALL_SECONDS)
            )
        job = training.submit(plan.job_spec(), timeout=context.deadline.timeout(CALL_SECONDS))
        log.info(
            "training job submitted", run_id=run_id, job=job.name, image=plan.image, data=len(plan.data_uris)
        )
        result = _submitted_result(job, request, plan.image_source, plan.data_uris, plan.manifest_uri)
        started = notice(
            "training.requested",
            f"Training {plan.model.name} for run {run_id}",
            text=f"Vertex AI job {job.name} on {len(plan.data_uris)} data object(s) with {plan.image}",
            model=plan.model.name,
            context={
                "run_id": run_id,
                "cause": plan.cause.value,
                "job": job.name,
                **_git_context(request.git),
            },
        )
        return Effect(result, (started,))

    return Step(
        key=f"train/{run_id}",
        # What decides the job; ``detail`` (the build id, the drift alerts) only informs, so a producer that
        # adds to it on a re-emission is not mistaken for a different request.
        payload={"run_id": run_id, **{k: v for k, v in request.to_json().items() if k != "detail"}},
        effect=effect,
        name=SUBMITTED,
        run_id=run_id,
        causation_id=causation_id,
        cause={"cause": request.cause.value, "model": request.model, **request.git.to_json()},
    )


def _git_context(git: GitContext) -> dict[str, str]:
    return {"repo": git.repo, "branch": git.branch, "commit": git.commit[:12]} if git.commit else {}


def start(runtime: Runtime, run_id: str, request: TrainingRequested, causation_id: str = "") -> StepResult:
    """Submit the run's job once; a permanent failure is announced and fails the run."""
    result = runtime.steps().run(submit_step(runtime, run_id, request, causation_id))
    raise_for_retries([result], f"submitting the training of run {run_id}")
    if failed(result):
        fail_run(
            runtime,
            run_id,
            notice(
                "training.failed",
                f"Training of {request.model} could not start (run {run_id})",
                severity="error",
                text=result.error,
                model=request.model,
                context={"run_id": run_id, "cause": request.cause.value, **_git_context(request.git)},
            ),
            causation_id,
        )
    return result


def failed(result: StepResult) -> bool:
    """The step failed permanently, now or in an earlier delivery (a duplicate carries the stored error)."""
    return result.failed or (result.outcome is Outcome.DUPLICATE and bool(result.error))


def fail_run(runtime: Runtime, run_id: str, announcement: Emit, causation_id: str = "") -> None:
    """Announce why the run failed (once: keyed by the run) and finish it FAILED.

    A step that failed permanently publishes nothing (``shared.steps``), so the announcement is its own step.
    """
    step = Step(
        key=f"run-failed/{run_id}",
        payload={"run_id": run_id},
        effect=lambda _context: Effect(
            {"announced": str(announcement.data.get("kind", ""))}, (announcement,)
        ),
        name=RUN_FAILED,
        run_id=run_id,
        causation_id=causation_id,
    )
    result = runtime.steps().run(step)
    raise_for_retries([result], f"announcing the failure of run {run_id}")
    finish(runtime, run_id, RunStatus.FAILED)


def finish(runtime: Runtime, run_id: str, status: RunStatus) -> None:
    runtime.ledger.finish_run(run_id, status, timeout=deadlines.current().timeout(CALL_SECONDS))
    log.info("run finished", run_id=run_id, status=status.value)


# ------------------------------------------------------------------------------------------- poll_run


def short_state(state: JobState) -> str:
    """``JOB_STATE_SUCCEEDED`` → ``SUCCEEDED`` (the form ``training.state`` carries)."""
    return state.value.removeprefix("JOB_STATE_")


def state_step(run_id: str, submitted: Mapping[str, Any], state: str, error: str) -> Step:
    """The step that emits ``training.state`` for the run's job, once per job and state."""
    job = str(submitted["job"])
    git = submitted.get("git") if isinstance(submitted.get("git"), Mapping) else {}
    assert isinstance(git, Mapping)
    event = TrainingState(
        model=str(submitted.get("model", "")),
        job=job,
        state=state,
        cause=_cause(submitted.get("cause")),
        output_dir=str(submitted.get("output_dir", "")),
        error=error,
        image=str(submitted.get("image", "")),
        data_uris=tuple(str(uri) for uri in submitted.get("data_uris") or ()),
        git=GitContext(str(git.get("repo", "")), str(git.get("commit", "")), str(git.get("branch", ""))),
    )
    return Step(
        key=f"job-state/{job}/{state}",
        payload={"run_id": run_id, "job": job, "state": state},
        effect=lambda _context: Effect(
            {"job": job, "state": state, "error": error, "output_dir": event.output_dir},
            (Emit(TRAINING_STATE, event.to_json()),),
        ),
        name=FINISHED,
        run_id=run_id,
    )


def _cause(value: Any) -> Cause:
    try:
        return Cause(str(value))
    except ValueError:
        return Cause.MANUAL


def submitted_job(run: Run) -> Mapping[str, Any] | None:
    """The submitted step's result when the run waits for its job's end; None otherwise."""
    submitted = run.step(SUBMITTED)
    if submitted is None or submitted.status is not StepStatus.SUCCEEDED or run.step(FINISHED) is not None:
        return None
    result = submitted.detail.get("result")
    return result if isinstance(result, Mapping) and result.get("job") else None


def poll_run(runtime: Runtime, run: Run) -> list[str]:
    """The reconciler's hook: emit ``training.state`` once the run's job is terminal; what was emitted."""
    submitted = submitted_job(run)
    if submitted is None or run.status.terminal:
        return []
    name = str(submitted["job"])
    try:
        job = runtime.ports.training.get(name, timeout=deadlines.current().timeout(CALL_SECONDS))
    except NotFound as error:  # deleted by hand: it will never end, so the run ends here
        state, message = "FAILED", f"the job is gone: {error}"
    else:
        if not job.state.terminal:
            return []
        state, message = short_state(job.state), job.error_message
    result = runtime.steps().run(state_step(run.run_id, submitted, state, message))
    if result.outcome is Outcome.BUSY:  # an overlapping tick holds the step: it emits, not this one
        return []
    raise_for_retries([result], f"reporting the end of job {name}")
    return [f"training.state {state} for {name}"] if result.published else []
