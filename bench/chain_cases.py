"""The events and seeded state of item 2's chain measurements, one builder per function (see
``bench/chain_paths.py`` for how they are sent, counted and checked)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from bench import load
from bench.servers import CONFIG, PROJECT
from shared.chain.contracts import Cause, RolloutRequested, TrainingRequested, TrainingState
from shared.config import PipelineConfig, parse_config
from shared.events import new_envelope
from shared.ledger import Ledger, Run, StepStatus
from shared.ports import FakePorts, fake_ports
from shared.ports.builds import Build
from shared.publisher import encode

JsonObject = dict[str, Any]

PATH = "in the bench's process (the app; behind an HTTP server; via a push subscription), fake Google ports"
TOPIC_PREFIX = "bench-chain-"
REPOSITORY = "bench/churn-model"
APPROVER = "ada@example.com"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/bench-chain"
#: Objects per closed data batch (the shipped pipeline closes at 50).
BATCH_OBJECTS = 50
#: Why a function has no "every event on one run" variant: one such event per run is its main path.
NO_ONE_RUN_VARIANT = {
    "on_build_status": "a run builds each image once: its builds' statuses are one per image, not N",
    "start_training": "a run trains once: a second training.requested of the run is its duplicate",
    "on_training_state": "a run has one job: a second training.state of the run is its duplicate",
    "on_approval": "a run has one candidate and one decision: a second one is a duplicate or refused",
    "start_rollout": "a run is rolled out once: a second rollout.requested of the run is a duplicate",
}


# -- the configuration ---------------------------------------------------------------------------------------


def wide_model(index: int) -> str:
    return f"m{index:03d}"


def wide_service(index: int) -> str:
    return f"svc-{wide_model(index)}"


def chain_config(models: int, ledger_prefix: str) -> PipelineConfig:
    """``bench/pipeline.yaml`` with its own topic and ledger prefixes, no triggers (nothing drains the next
    events' topics while a function is measured) and ``models`` more models, each served by a service."""
    document = yaml.safe_load(CONFIG.read_text())
    spec = document["spec"]
    repository = f"us-central1-docker.pkg.dev/{spec['project']}/mlops"
    spec.update(topicPrefix=TOPIC_PREFIX, triggers=[])
    spec.setdefault("ledger", {})["collectionPrefix"] = ledger_prefix
    model = {
        # Not the trainer image rule's repository: a trainer build trains churn only.
        "trainer": {"image": f"{repository}/wide-trainer:seed"},
        "servingImage": f"{repository}/server:seed",
        "gates": [{"metric": "accuracy", "direction": "higher", "min": 0.8}],
        "drift": {"debounce": "1h"},
    }
    spec["models"] = [*spec["models"], *({**model, "name": wide_model(i)} for i in range(models))]
    spec["services"] = [
        {
            "name": wide_service(index),
            "model": wide_model(index),
            "strategy": "canary",
            "canary": {"steps": [10, 50, 100], "interval": "4s", "minRequests": 20},
            "analysis": {"max5xxShare": 0.05, "maxP95Ratio": 2.0},
            "smoke": [{"path": "/predict", "method": "POST", "expectJson": ["predictions"]}],
        }
        for index in range(models)
    ]
    overridden = ("PIPELINE_TOPIC_PREFIX", "PIPELINE_LEDGER_PREFIX")
    return parse_config(document, str(CONFIG), {k: v for k, v in os.environ.items() if k not in overridden})


# -- what one function's measurement is made of -----------------------------------------------------------


@dataclass
class Stage:
    """One function's measurement: the config, fresh fakes, the seeding ledger and the run ids' tag."""

    config: PipelineConfig
    seeder: Ledger
    ports: FakePorts = field(default_factory=lambda: fake_ports(project=PROJECT))
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def path(self, kind: str) -> str:
        """The push path of a subscription to ``kind``'s topic (the CloudEvent source is read from it)."""
        return f"/projects/{PROJECT}/topics/{self.config.topic_for(kind)}"


@dataclass
class Case:
    """A function's events, seeded, and what they must have done."""

    requests: list[load.Request]
    #: distinct next events per label (``training.requested``, ``notification:build.succeeded``, ...)
    expect: Counter[str]
    check: Callable[[], str]  # the effect in the ledger and the fakes; raises when missing; what it saw


def delivery(stage: Stage, path: str, data: bytes, attributes: Mapping[str, str], index: int) -> load.Request:
    """The body a Pub/Sub push subscription POSTs for one message."""
    item = load.push(data, dict(attributes), f"{stage.tag}-{index}", SUBSCRIPTION)
    return load.Request(path, item.body, item.headers)


def event_delivery(stage: Stage, kind: str, run_id: str, data: Mapping[str, Any], index: int) -> load.Request:
    body, attributes = encode(new_envelope(kind, run_id, data, event_id=f"{kind}-{stage.tag}-{index}"))
    return delivery(stage, stage.path(kind), body, attributes, index)


def in_parallel(work: Callable[[int], Any], count: int) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(work, range(count)))


def seed_run(ledger: Ledger, run_id: str, cause: JsonObject, steps: Sequence[tuple[str, JsonObject]]) -> None:
    """A run and its steps, as the chain records them (``{"key": ..., "result": ...}`` per step)."""
    ledger.start_run(run_id, cause=cause)
    for name, detail in steps:
        ledger.record_step(run_id, name, StepStatus.SUCCEEDED, detail)


def runs_with(ledger: Ledger, run_ids: Sequence[str], step: str) -> list[Run]:
    """The runs, each required to hold ``step``."""

    def one(index: int) -> Run:
        run = ledger.get_run(run_ids[index])
        if run is None or run.step(step) is None:
            raise RuntimeError(f"run {run_ids[index]} has no step {step!r} after its event")
        return run

    return in_parallel(one, len(run_ids))


def batch_run(stage: Stage, index: int) -> tuple[str, JsonObject, list[tuple[str, JsonObject]]]:
    """A closed batch of ``rows``: its run id (``data-rows-<batch>``), cause and ``data:batch`` step."""
    from shared.ingest.runs import data_run_id

    batch_id = f"b{index:04d}-{stage.tag}"
    cause = {"cause": Cause.DATA.value, "dataset": "rows", "batch_id": batch_id}
    step = {"key": f"batch/rows/{batch_id}", "result": {"batch_id": batch_id, "objects": BATCH_OBJECTS}}
    return data_run_id("rows", batch_id), cause, [("data:batch", step)]


def batch_uris(batch_id: str) -> tuple[str, ...]:
    return tuple(f"gs://bench-data/rows/{batch_id}-{n:03d}.csv" for n in range(BATCH_OBJECTS))


# -- on_build_status: a trainer image built ---------------------------------------------------------------


@dataclass(frozen=True)
class _Push:
    """What ``plan_build`` reads of a push (``shared.ingest.routing.PushLike``)."""

    repository: str
    after: str
    provider: str = "github"
    ref: str = "refs/heads/main"
    before: str = "1" * 40
    commits: tuple[Any, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def clone_url(self) -> str:
        return f"https://github.com/{self.repository}.git"


def _rfc3339(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else ""


def build_resource(build: Build, project: str) -> JsonObject:
    """A fake build as Cloud Build publishes it on ``cloud-builds`` (the Build resource, camelCase)."""
    return {
        "id": build.id,
        "projectId": project,
        "status": build.status.value,
        "tags": list(build.tags),
        "substitutions": dict(build.substitutions),
        "logUrl": f"https://console.cloud.google.com/cloud-build/builds/{build.id}?project={project}",
        "steps": [
            {"name": "gcr.io/cloud-builders/docker", "status": status.value} for status in build.step_statuses
        ],
        "images": [image.name for image in build.images],
        "results": {"images": [{"name": image.name, "digest": image.digest} for image in build.images]},
        "sourceProvenance": {"resolvedGitSource": {"revision": build.source_revision}},
        "createTime": _rfc3339(build.create_time),
        "startTime": _rfc3339(build.start_time),
        "finishTime": _rfc3339(build.finish_time),
    }


def on_build_status(stage: Stage, count: int) -> Case:
    """Per run: on_git_push's build step for the trainer image (run by the chain's own step, so the run, its
    ``build:trainer`` step and the build in the fake are what a push leaves), the build finished SUCCESS in
    the fake, and its ``cloud-builds`` message. Each SUCCESS must publish training.requested for churn."""
    from shared.chain.push import PlannedBuild, build_config_path, build_step
    from shared.deadline import Deadline
    from shared.ingest.builds import load_build_config, plan_build
    from shared.ports.builds import BuildRequest, GitSource
    from shared.publisher import InMemoryPublisher
    from shared.steps import StepRunner

    config = stage.config
    image = config.chain.image("trainer")
    assert image is not None, "bench/pipeline.yaml must list the trainer image under spec.push.images"
    rule = image.rule
    build_config = load_build_config(build_config_path(config, rule.config))
    builds = stage.ports.builds

    def seed(index: int) -> tuple[str, JsonObject]:
        commit = hashlib.sha1(f"{stage.tag}-{index}".encode()).hexdigest()
        push = _Push(REPOSITORY, commit)
        plan = plan_build(push, rule, build_config, config_path=rule.config)
        request = BuildRequest.from_config(
            plan.config,
            source=GitSource(plan.source.url, plan.source.revision, plan.source.dir),
            substitutions=plan.substitutions,
            tags=plan.tags,
        )
        cause: JsonObject = {"cause": "push", "provider": "github", "repo": REPOSITORY, "commit": commit}
        cause.update(branch="main", images=["trainer"], complete=True)  # a push cause (on_git_push adds more)
        step = build_step(builds, PlannedBuild(plan, request, image.role), cause, f"delivery-{index}")
        runner = StepRunner(stage.seeder, InMemoryPublisher(), config, Deadline(60.0))
        started = runner.run(step)
        build = builds.finish(str(started.result["build_id"]))
        return plan.run_id, build_resource(build, PROJECT)

    # Cloud Build publishes a status when the build ends: the messages come in the order the builds finished.
    seeded = sorted(in_parallel(seed, count), key=lambda item: str(item[1]["finishTime"]))
    requests = [
        delivery(
            stage, f"/projects/{PROJECT}/topics/cloud-builds", json.dumps(resource).encode(), attrs, index
        )
        for index, (_run_id, resource) in enumerate(seeded)
        for attrs in [{"buildId": resource["id"], "status": resource["status"]}]
    ]

    def check() -> str:
        runs_with(stage.seeder, [run_id for run_id, _ in seeded], "image:trainer")
        pointer = stage.seeder.get_doc("pointers", "image-trainer")
        newest = seeded[-1][1]["id"]
        if pointer is None or pointer.data.get("build_id") != newest:
            raise RuntimeError(f"the image-trainer pointer is not on the newest build {newest}: {pointer}")
        return f"{count} image:trainer steps recorded, the image-trainer pointer on the newest build"

    expect = Counter({"training.requested": count, "notification:build.succeeded": count})
    return Case(requests, expect, check)


# -- start_training: a closed data batch asks for training ---------------------------------------------------


def start_training(stage: Stage, count: int) -> Case:
    """Per run: a closed batch of ``rows`` (the run and its ``data:batch`` step) and the training.requested
    its closing emits, with the batch's exact objects. Each must submit one job in the fake."""
    seeded = [batch_run(stage, index) for index in range(count)]
    in_parallel(lambda index: seed_run(stage.seeder, *seeded[index]), count)
    requests = []
    for index, (run_id, cause, _steps) in enumerate(seeded):
        wanted = TrainingRequested(
            model="churn",
            cause=Cause.DATA,
            data_uris=batch_uris(str(cause["batch_id"])),
            dataset="rows",
            detail={"batch_id": cause["batch_id"], "objects": BATCH_OBJECTS, "reason": "full"},
        )
        requests.append(event_delivery(stage, "training.requested", run_id, wanted.to_json(), index))

    def check() -> str:
        from shared.chain.training import RUN_LABEL, SUBMITTED

        runs_with(stage.seeder, [run_id for run_id, _, _ in seeded], SUBMITTED)
        submitted = len(stage.ports.training.submitted)
        jobs = {run_id: stage.ports.training.find_by_label(RUN_LABEL, run_id) for run_id, _, _ in seeded}
        if submitted != count or any(len(found) != 1 for found in jobs.values()):
            raise RuntimeError(f"start_training submitted {submitted} jobs for {count} runs")
        return f"{count} jobs submitted in the fake, one per run"

    return Case(requests, Counter({"notification:training.requested": count}), check)


# -- on_training_state: a job succeeded ----------------------------------------------------------------------


def on_training_state(stage: Stage, count: int) -> Case:
    """Per run: the batch, the submitted job (in the fake, finished SUCCEEDED, its metrics.json written where
    the trainer writes it) and the poll's ``training:finished`` step; churn has a champion. Each event must
    pass the gates and register one candidate version (approval requested: churn's approval is manual)."""
    from shared.chain.training import FINISHED, SUBMITTED, TrainingPlan, base_output_dir, model_dir
    from shared.ports.registry import ModelUpload

    config = stage.config
    model = config.chain.model("churn")
    assert model is not None, "bench/pipeline.yaml must define the model churn"
    bucket = config.chain.artifacts_bucket
    objects, training, registry = stage.ports.objects, stage.ports.training, stage.ports.registry
    objects.add_bucket(bucket)
    registry.upload(
        ModelUpload(
            "churn",
            "churn",
            f"gs://{bucket}/runs/champion/model/",
            serving_image=model.serving_image,
            aliases=("champion",),
            metadata={"metrics": {"accuracy": 0.86}},
        )
    )
    image = f"{model.trainer.image.rsplit(':', 1)[0]}@sha256:{'a' * 64}"

    def seed(index: int) -> tuple[str, TrainingState]:
        run_id, cause, steps = batch_run(stage, index)
        uris = batch_uris(str(cause["batch_id"]))
        plan = TrainingPlan(
            run_id, model, Cause.DATA, image, "request", uris, base_output_dir(bucket, run_id)
        )
        job = training.finish(training.submit(plan.job_spec()).name)
        output = model_dir(job.base_output_dir)
        objects.write(bucket, f"{output.split('/', 3)[3]}metrics.json", json.dumps({"accuracy": 0.91}))
        state = TrainingState("churn", job.name, "SUCCEEDED", Cause.DATA, output, image=image, data_uris=uris)
        submitted = {"job": job.name, "image": image, "model": "churn", "cause": "data", "output_dir": output}
        finished = {"job": job.name, "state": "SUCCEEDED", "error": "", "output_dir": output}
        steps += [
            (SUBMITTED, {"key": f"train/{run_id}", "result": submitted}),
            (FINISHED, {"key": f"job-state/{job.name}/SUCCEEDED", "result": finished}),
        ]
        seed_run(stage.seeder, run_id, cause, steps)
        return run_id, state

    seeded = in_parallel(seed, count)
    requests = [
        event_delivery(stage, "training.state", run_id, state.to_json(), index)
        for index, (run_id, state) in enumerate(seeded)
    ]

    def check() -> str:
        from shared.chain.evaluation import REGISTERED
        from shared.chain.training import RUN_LABEL

        runs_with(stage.seeder, [run_id for run_id, _ in seeded], REGISTERED)
        versions = [registry.find_versions("churn", {RUN_LABEL: run_id}) for run_id, _ in seeded]
        if any(len(found) != 1 for found in versions):
            raise RuntimeError("on_training_state did not register one version per run")
        return f"{count} candidate versions registered in the fake"

    return Case(requests, Counter({"notification:approval.requested": count}), check)


# -- on_drift_alert: a Cloud Monitoring incident opens -------------------------------------------------------


def incident(model: str, incident_id: str) -> JsonObject:
    """An open Cloud Monitoring incident notification (schema 1.2), the model labelled on its policy."""
    return {
        "version": "1.2",
        "incident": {
            "incident_id": incident_id,
            "scoping_project_id": PROJECT,
            "url": f"https://console.cloud.google.com/monitoring/alerting/incidents/{incident_id}",
            "started_at": int(time.time()),
            "ended_at": None,
            "state": "open",
            "summary": f"Feature drift of {model} is above the threshold.",
            "observed_value": "0.41",
            "threshold_value": "0.2",
            "resource": {"type": "global", "labels": {}},
            "metric": {"type": "custom.googleapis.com/model/feature_drift", "displayName": "Feature drift"},
            "policy_name": f"{model} drift",
            "policy_user_labels": {"model": model},
            "condition_name": "drift above 0.2",
        },
    }


def on_drift_alert(stage: Stage, count: int, one_run: bool = False) -> Case:
    """Per event: an open incident for a model with no open window (model i of the widened config): each
    starts a retrain. ``one_run``: N incidents for churn at once, the alert storm of one drift: the first
    starts the run, the others are suppressed onto it (a step each on that one run)."""
    from shared.chain.drift import WINDOWS

    models = ["churn"] * count if one_run else [wide_model(index) for index in range(count)]
    bodies = [
        json.dumps(incident(model, f"0.{stage.tag}-{index}")).encode() for index, model in enumerate(models)
    ]
    requests = [
        delivery(stage, stage.path("drift.alert"), body, {}, index) for index, body in enumerate(bodies)
    ]

    def check() -> str:
        windows = [stage.seeder.get_doc(WINDOWS, model) for model in sorted(set(models))]
        run_ids = [str(window.data["run_id"]) for window in windows if window is not None]
        if len(run_ids) != len(windows):
            raise RuntimeError("on_drift_alert opened no drift window for a model")
        runs = runs_with(stage.seeder, run_ids, "drift:alert")
        steps = sum(len(run.steps) for run in runs)
        if steps != count:
            raise RuntimeError(f"on_drift_alert recorded {steps} steps for {count} alerts")
        return f"{len(runs)} drift run(s) with {steps} alert steps"

    if one_run:
        expect = Counter({"training.requested": 1, "notification:drift.suppressed": count - 1})
    else:
        expect = Counter({"training.requested": count})
    return Case(requests, +expect, check)


# -- on_approval and start_rollout: a candidate approved, then rolled out ------------------------------------


def candidate_run(stage: Stage, index: int, *, decided: bool) -> tuple[str, JsonObject]:
    """Run i of model i after its training: the batch, the job, the gate, the registered candidate version 2
    (and, when ``decided``, the approval); returns the run id and the version's registry facts."""
    from shared.chain.evaluation import GATE, REGISTERED
    from shared.chain.training import FINISHED, SUBMITTED

    run_id, cause, steps = batch_run(stage, index)
    bucket = stage.config.chain.artifacts_bucket
    model = wide_model(index)
    job = f"projects/{PROJECT}/locations/us-central1/customJobs/{index + 1}{stage.tag}"
    output = f"gs://{bucket}/runs/{run_id}/model/"
    version = {
        "model": f"projects/{PROJECT}/locations/us-central1/models/{model}",
        "version": "2",
        "resource": f"projects/{PROJECT}/locations/us-central1/models/{model}@2",
        "artifact_uri": output,
        "aliases": ["candidate"],
    }
    steps += [
        (SUBMITTED, {"key": f"train/{run_id}", "result": {"job": job, "model": model, "output_dir": output}}),
        (FINISHED, {"key": f"job-state/{job}/SUCCEEDED", "result": {"job": job, "state": "SUCCEEDED"}}),
        (
            GATE,
            {"key": f"evaluate/{run_id}/{job}", "result": {"passed": True, "metrics": {"accuracy": 0.91}}},
        ),
        (REGISTERED, {"key": f"register/{run_id}", "result": version}),
    ]
    if decided:
        decision = {"decision": "approve", "approver": APPROVER, "model": model, "version": "2"}
        steps.append(("approval:decided", {"key": f"approval/{run_id}/2", "result": decision}))
    seed_run(stage.seeder, run_id, cause, steps)
    return run_id, version


def on_approval(stage: Stage, count: int) -> Case:
    """Per run: model i's champion (version 1) and this run's candidate (version 2, labelled with the run) in
    the fake registry, the run as training left it, and a person's approval on the approvals topic. Each must
    request a rollout on the model's service."""
    from shared.chain.evaluation import APPROVAL_DECISION, BareMessage
    from shared.chain.training import RUN_LABEL
    from shared.ports.registry import ModelUpload

    registry = stage.ports.registry

    def seed(index: int) -> tuple[str, str]:
        model = wide_model(index)
        run_id, version = candidate_run(stage, index, decided=False)
        champion = f"gs://{stage.config.chain.artifacts_bucket}/models/{model}/1/"
        registry.upload(ModelUpload(model, model, champion, aliases=("champion",)))
        registry.upload(
            ModelUpload(
                model,
                model,
                str(version["artifact_uri"]),
                labels={RUN_LABEL: run_id, "cause": "data"},
                aliases=("candidate",),
                metadata={"metrics": {"accuracy": 0.91}},
            )
        )
        return run_id, model

    seeded = in_parallel(seed, count)
    requests = []
    for index, (run_id, model) in enumerate(seeded):
        body = {
            "run_id": run_id,
            "model": model,
            "version": "2",
            "decision": "approve",
            "approver": APPROVER,
            "reason": "gates passed, metrics checked",
            "nonce": f"bench-{stage.tag}-{index}",
            "decided_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        message = BareMessage(
            type=APPROVAL_DECISION, run_id=run_id, event_id=body["nonce"], data={}, body=body
        )
        data, attributes = encode(message)
        requests.append(delivery(stage, stage.path(APPROVAL_DECISION), data, attributes, index))

    def check() -> str:
        from shared.approval.decide import DECIDED

        runs = runs_with(stage.seeder, [run_id for run_id, _ in seeded], DECIDED)
        decided = [run.step(DECIDED) for run in runs]
        requested = [step for step in decided if step and step.detail["result"].get("rollout") == "requested"]
        if len(requested) != count:
            raise RuntimeError(f"on_approval requested {len(requested)} rollouts for {count} approvals")
        return f"{count} approval:decided steps, each with a rollout requested"

    expect = Counter({"rollout.requested": count, "notification:approval.approved": count})
    return Case(requests, expect, check)


def start_rollout(stage: Stage, count: int) -> Case:
    """Per run: service i serving model i's champion on a stable revision (in the fake Cloud Run), the run
    as the approval left it, and its rollout.requested. Each must take the service's lease and deploy the
    candidate revision at 0% behind its tag."""
    from shared.ports.deployments import RevisionSpec, revision_name

    deployments = stage.ports.deployments
    image = f"us-central1-docker.pkg.dev/{PROJECT}/mlops/server@sha256:{'b' * 64}"

    def seed(index: int) -> tuple[str, str, RolloutRequested]:
        service, model = wide_service(index), wide_model(index)
        run_id, version = candidate_run(stage, index, decided=True)
        stable = RevisionSpec(f"{service}-seed", image, env={"MODEL_URI": f"gs://bench/{model}/1/"})
        deployments.create_service(service, stable, tag="stable")
        deployments.get_service(service)  # the stable revision starts
        wanted = RolloutRequested(
            service=service,
            model=model,
            version="2",
            version_resource=str(version["resource"]),
            artifact_uri=str(version["artifact_uri"]),
            image=image,
            cause="approval",
            approved_by=APPROVER,
            nonce=f"bench-{stage.tag}-{index}",
        )
        return run_id, service, wanted

    seeded = in_parallel(seed, count)
    requests = [
        event_delivery(stage, "rollout.requested", run_id, wanted.to_json(), index)
        for index, (run_id, _service, wanted) in enumerate(seeded)
    ]

    def check() -> str:
        from shared.chain.rollout import ROLLOUTS

        for run_id, service, _ in seeded:
            current = deployments.get_service(service)
            lease = stage.seeder.get_doc(ROLLOUTS, service)
            if current is None or current.revision(revision_name(service, run_id)) is None:
                raise RuntimeError(f"start_rollout deployed no candidate of run {run_id} on {service}")
            if lease is None or lease.data.get("run_id") != run_id:
                raise RuntimeError(f"start_rollout took no lease of {service} for run {run_id}")
        return f"{count} candidate revisions deployed at 0%, {count} leases taken"

    return Case(requests, Counter({"rollout.event": count, "notification:rollout.started": count}), check)


BUILDERS: dict[str, Callable[[Stage, int], Case]] = {
    "on_build_status": on_build_status,
    "start_training": start_training,
    "on_training_state": on_training_state,
    "on_drift_alert": on_drift_alert,
    "on_approval": on_approval,
    "start_rollout": start_rollout,
}
FUNCTIONS = tuple(BUILDERS)
