"""``make demo``: a fresh local stack, the scenario that exists so far, live progress, a clean teardown.

Scenario: notifications published on Pub/Sub travel through a push subscription to ``notify`` on the
function host, which renders them per channel and posts them to the local webhook sink; a duplicate is
delivered once; a malformed message is recorded in the ledger, not lost; the run ledger shows the steps.
Then the sample trainer is built by the Cloud Build emulator (each status seen on ``cloud-builds``), trained
as a Vertex AI CustomJob that writes its real model to the storage emulator, and registered in the Model
Registry, and the result is announced through ``notify``. Finally the server image serves that model on the
Cloud Run emulator, a misbehaving candidate revision takes 10% of real traffic, Cloud Monitoring shows its
errors and latency per revision, and traffic is rolled back and verified by reading it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from emulators._proc import group_alive, wait_for
from emulators.stack import ROOT, Stack, applied_env

Check = Callable[[], Any]


def _say(message: str) -> None:
    print(message, flush=True)


def _sink(env: dict[str, str], prefix: str = "/hook/") -> list[dict[str, Any]]:
    response = requests.get(f"{env['WEBHOOK_SINK_URL']}/_sink/requests", params={"prefix": prefix}, timeout=5)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records


def run_demo(config_path: Path | None = None) -> int:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlops-demo-") as run_dir:
        stack = Stack(Path(run_dir), config_path=config_path or ROOT / "pipeline.yaml")
        _say("▶ starting the local stack")
        state = stack.up(progress=_say)
        try:
            with applied_env(state.env):
                _scenario(state.env, state.project)
        finally:
            _say("▶ tearing the stack down")
            stack.down(progress=_say)
        alive = [c.name for c in state.components.values() if group_alive(c.pid)]
        if alive:
            _say(f"✗ still running: {', '.join(alive)}")
            return 1
    _say(f"✔ demo finished in {time.monotonic() - began:.1f}s; no process left running")
    return 0


def _scenario(env: dict[str, str], project: str) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    from shared import clients
    from shared.config import load_config
    from shared.events import new_envelope
    from shared.ledger import FirestoreLedger
    from shared.publisher import PubSubPublisher

    clients.reset()
    config = load_config(env["PIPELINE_CONFIG"], env={**os.environ, **env})
    topic = config.topic_for("notification")
    publisher = PubSubPublisher(project)
    ledger = FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix)
    run_id = f"demo-{int(time.time())}"

    _say(f"▶ 1. build.succeeded (info) → topic {topic}")
    built = new_envelope(
        "notification",
        run_id,
        {
            "kind": "build.succeeded",
            "severity": "info",
            "title": "Trainer image built",
            "text": "gcr.io/demo-project/trainer:abc1234 is ready",
            "context": {"repo": "acme/churn-model", "commit": "abc1234", "build_id": "b-0001"},
            "links": [{"title": "build log", "url": "http://127.0.0.1/log/b-0001"}],
        },
    )
    publisher.publish(topic, built)
    records = wait_for("slack + audit deliveries", lambda: len(_sink(env)) >= 2 and _sink(env))
    for record in records:
        _say(f"    sink {record['path']:<12} ← {json.dumps(record['body'], ensure_ascii=False)[:90]}…")
    _say("    (platform-chat filtered it out: it takes build.* only from warning up)")

    _say("▶ 2. the same event published again (a duplicate) → delivered once")
    publisher.publish(topic, built)
    time.sleep(2.0)
    _say(f"    sink still holds {len(_sink(env))} deliveries")

    _say("▶ 3. training.failed (error) → every channel")
    failed = new_envelope(
        "notification",
        run_id,
        {
            "kind": "training.failed",
            "severity": "error",
            "title": "Training job failed",
            "text": "CustomJob churn-train-abc1234 ended JOB_STATE_FAILED",
            "context": {"model": "churn", "version": "7", "metrics": {"auc": 0.61}},
        },
    )
    publisher.publish(topic, failed)
    wait_for("three more deliveries", lambda: len(_sink(env)) >= 5)
    for record in _sink(env)[2:]:
        _say(f"    sink {record['path']:<12} ← {str(record['body'].get('text', ''))[:80]!r}")

    _say("▶ 4. a malformed message → recorded in the ledger, acknowledged, never lost")
    raw = PublisherClient()
    raw.publish(raw.topic_path(project, topic), b"{not json", type="notification").result(timeout=30)
    rejected = wait_for("the rejected-event record", lambda: ledger.list_rejected(limit=5))
    for record in rejected:
        _say(f"    rejected {record.event_id}: {record.reason}: {'; '.join(record.problems)}")

    model_uri = _build_train_register(env, project, config.region, run_id, publisher, topic)
    _canary(env, project, config.region, run_id, model_uri, publisher, topic)

    _say(f"▶ 11. the run ledger for {run_id}")
    run = wait_for("the run record", lambda: (r := ledger.get_run(run_id)) and len(r.steps) >= 4 and r)
    for step in run.steps:
        _say(f"    {step.started_at:%H:%M:%S}  {step.name:<45} {step.status.value}")


def _build_train_register(
    env: dict[str, str], project: str, region: str, run_id: str, publisher: Any, topic: str
) -> str:
    """Steps 5-8; returns the gs:// folder of the trained model."""
    import importlib.util

    from google.api_core import exceptions
    from google.api_core.future.polling import DEFAULT_POLLING
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    from emulators.cloudbuild.sources import pack_source
    from shared import clients
    from shared.events import new_envelope

    polling = DEFAULT_POLLING.with_delay(initial=0.2, maximum=1.0, multiplier=1.5)
    storage = clients.storage()
    bucket_name = f"{project}-demo"
    bucket = storage.bucket(bucket_name)
    if not bucket.exists():
        bucket = storage.create_bucket(bucket_name)

    _say("▶ 5. the sample trainer's source and training data go to Cloud Storage")
    source = bucket.blob("source/trainer.tgz")
    source.upload_from_string(pack_source(ROOT / "examples" / "trainer"))
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    bucket.blob("data/train.csv").upload_from_string(make_data.make_csv(rows=400), content_type="text/csv")
    _say(
        f"    gs://{bucket_name}/source/trainer.tgz ({source.size} bytes), gs://{bucket_name}/data/train.csv"
    )

    _say("▶ 6. Cloud Build emulator builds the trainer image; statuses as seen on the cloud-builds topic")
    topics, subscriber = PublisherClient(), SubscriberClient()
    builds_topic = topics.topic_path(project, "cloud-builds")
    with contextlib.suppress(exceptions.AlreadyExists):
        topics.create_topic(request={"name": builds_topic})
    watch = subscriber.subscription_path(project, f"demo-watch-{run_id}")
    subscriber.create_subscription(request={"name": watch, "topic": builds_topic})
    image = f"{region}-docker.pkg.dev/{project}/mlops/trainer:{run_id}"
    operation = clients.cloud_build().create_build(
        project_id=project,
        build={
            "source": {"storage_source": {"bucket": bucket_name, "object_": "source/trainer.tgz"}},
            "steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", image, "."]}],
            "images": [image],
            "tags": [f"run-{run_id}", "trainer"],
        },
    )
    build = operation.result(timeout=120, polling=polling)
    statuses: list[str] = []
    deadline = time.monotonic() + 15
    while "SUCCESS" not in statuses and "FAILURE" not in statuses and time.monotonic() < deadline:
        response = subscriber.pull(request={"subscription": watch, "max_messages": 10}, timeout=10)
        for received in response.received_messages:
            if received.message.attributes.get("buildId") == build.id:
                statuses.append(received.message.attributes.get("status", "?"))
        if response.received_messages:
            subscriber.acknowledge(
                request={"subscription": watch, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
    subscriber.delete_subscription(request={"subscription": watch})
    subscriber.close()
    _say(f"    build {build.id}: {' → '.join(statuses)}")
    digest = build.results.images[0].digest if build.results.images else "?"
    _say(f"    image {image}@{digest[:19]}…")
    if build.status.name != "SUCCESS":
        raise RuntimeError(f"the trainer build ended {build.status.name}: {build.status_detail}")

    _say("▶ 7. Vertex AI emulator runs the image as a CustomJob (the trainer really trains)")
    parent = f"projects/{project}/locations/{region}"
    output = f"gs://{bucket_name}/runs/{run_id}"
    jobs = clients.vertex_jobs()
    job = jobs.create_custom_job(
        parent=parent,
        custom_job={
            "display_name": f"train-{run_id}",
            "labels": {"run_id": run_id},
            "job_spec": {
                "base_output_directory": {"output_uri_prefix": output},
                "worker_pool_specs": [
                    {
                        "machine_spec": {"machine_type": "n1-standard-4"},
                        "replica_count": 1,
                        "container_spec": {
                            "image_uri": image,
                            "args": ["--data", f"gs://{bucket_name}/data/train.csv"],
                        },
                    }
                ],
            },
        },
    )
    states = [job.state.name]
    deadline = time.monotonic() + 180
    while not job.state.name.endswith(("SUCCEEDED", "FAILED", "CANCELLED")) and time.monotonic() < deadline:
        time.sleep(0.3)
        job = jobs.get_custom_job(name=job.name)
        if job.state.name != states[-1]:
            states.append(job.state.name)
    _say(f"    {job.name.rsplit('/', 1)[-1]}: {' → '.join(states)}")
    if job.state.name != "JOB_STATE_SUCCEEDED":
        raise RuntimeError(f"training ended {job.state.name}: {job.error.message}")
    metrics = json.loads(bucket.blob(f"runs/{run_id}/model/metrics.json").download_as_bytes())
    model_size = bucket.get_blob(f"runs/{run_id}/model/model.joblib").size
    _say(f"    {output}/model/model.joblib ({model_size} bytes); metrics {json.dumps(metrics)[:80]}")

    _say("▶ 8. Model Registry: upload the model; a second upload becomes version 2")
    models = clients.vertex_models()
    first = models.upload_model(
        parent=parent,
        model={"display_name": "churn", "artifact_uri": f"{output}/model/", "labels": {"run_id": run_id}},
    ).result(timeout=30, polling=polling)
    second = models.upload_model(
        request={
            "parent": parent,
            "parent_model": first.model,
            "model": {"display_name": "churn", "artifact_uri": f"{output}/model/"},
        }
    ).result(timeout=30, polling=polling)
    _say(f"    {first.model} versions {first.model_version_id} and {second.model_version_id}")
    publisher.publish(
        topic,
        new_envelope(
            "notification",
            run_id,
            {
                "kind": "training.succeeded",
                "severity": "info",
                "title": "New model version registered",
                "context": {"model": "churn", "version": second.model_version_id, "metrics": metrics},
            },
            event_id=f"{run_id}:model:{second.model_version_id}",
        ),
    )
    wait_for("the model announcement", lambda: len(_sink(env)) >= 7)
    _say(f"    sink /hook/slack  ← {_sink(env, '/hook/slack')[-1]['body']['text'].splitlines()[0]!r}")
    return f"{output}/model/"


def _canary(
    env: dict[str, str], project: str, region: str, run_id: str, model_uri: str, publisher: Any, topic: str
) -> None:
    """Steps 9-10: the trained model served on Cloud Run, a bad candidate at 10%, metrics, rollback.

    The canary verdict here is the demo's own check of the metrics; the rollout function that makes it
    for real comes with a later issue.
    """
    import yaml
    from google.api_core.future.polling import DEFAULT_POLLING
    from google.cloud import run_v2

    from emulators.cloudbuild.sources import pack_source
    from emulators.loadgen import run_load
    from shared import clients
    from shared.events import new_envelope

    polling = DEFAULT_POLLING.with_delay(initial=0.2, maximum=1.0, multiplier=1.5)
    _say("▶ 9. the server image is built, then serves the trained model on the Cloud Run emulator")
    bucket_name = f"{project}-demo"
    clients.storage().bucket(bucket_name).blob("source/server.tgz").upload_from_string(
        pack_source(ROOT / "examples" / "server")
    )
    image = f"{region}-docker.pkg.dev/{project}/mlops/server:{run_id}"
    build_config = yaml.safe_load((ROOT / "examples" / "server" / "cloudbuild.yaml").read_text())
    build = (
        clients.cloud_build()
        .create_build(
            project_id=project,
            build={
                "source": {"storage_source": {"bucket": bucket_name, "object_": "source/server.tgz"}},
                "steps": build_config["steps"],
                "images": build_config["images"],
                "substitutions": {"_IMAGE": image},
                "tags": [f"run-{run_id}", "server"],
            },
        )
        .result(timeout=120, polling=polling)
    )
    _say(f"    build {build.id}: {build.status.name}, image {image}")

    services = clients.run_services()
    revision_type = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION

    def container(**variables: str) -> run_v2.Container:
        values = {"MODEL_URI": model_uri, **variables}
        return run_v2.Container(image=image, env=[run_v2.EnvVar(name=k, value=v) for k, v in values.items()])

    service = services.create_service(
        parent=f"projects/{project}/locations/{region}",
        service_id="churn-predictor",
        service=run_v2.Service(template=run_v2.RevisionTemplate(containers=[container(MODEL_VERSION="1")])),
    ).result(timeout=60, polling=polling)
    stable = service.latest_ready_revision.rsplit("/", 1)[-1]
    _say(f"    {service.uri} → {stable} (100%)")

    # The candidate: same image, a misbehaving configuration (30% errors, +80 ms), pinned at 0% first.
    service.traffic = [run_v2.TrafficTarget(type_=revision_type, revision=stable, percent=100)]
    service.template = run_v2.RevisionTemplate(
        containers=[
            container(MODEL_VERSION="2", ERROR_RATE="0.3", ERROR_MODE="deterministic", EXTRA_LATENCY_MS="80")
        ]
    )
    service = services.update_service(service=service).result(timeout=60, polling=polling)
    candidate = service.latest_created_revision.rsplit("/", 1)[-1]
    service.traffic = [
        run_v2.TrafficTarget(type_=revision_type, revision=stable, percent=90),
        run_v2.TrafficTarget(type_=revision_type, revision=candidate, percent=10, tag="candidate"),
    ]
    service = services.update_service(service=service).result(timeout=60, polling=polling)
    split = ", ".join(
        f"{t.revision} {t.percent}%{' #' + t.tag if t.tag else ''}" for t in service.traffic_statuses
    )
    _say(f"    canary: {split}")

    started = time.time()
    body = {"instances": [[0.1, -0.4, 0.3, 1.2], [-1.0, 0.8, 0.0, 0.5]]}
    load = run_load(f"{service.uri}/predict", 1000, concurrency=4, max_seconds=60, json_body=body)
    _say(f"    1000 requests in {load.seconds:.1f}s: {load.summary()['byStatus']}")

    _say("▶ 10. Cloud Monitoring per revision (list_time_series), verdict, rollback verified by reading back")
    monitoring = clients.monitoring()

    service_filter = 'resource.labels.service_name = "churn-predictor"'

    def series(metric: str, aggregation: dict[str, Any], extra: str = "") -> list[Any]:
        now = time.time()
        return list(
            monitoring.list_time_series(
                request={
                    "name": f"projects/{project}",
                    "filter": f'metric.type = "{metric}" AND {service_filter}{extra}',
                    "interval": {
                        "start_time": {"seconds": int(started) - 5},
                        "end_time": {"seconds": int(now) + 1},
                    },
                    "aggregation": {
                        "alignment_period": {"seconds": int(now) + 6 - int(started)},
                        **aggregation,
                    },
                }
            )
        )

    def counts() -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for item in series(
            "run.googleapis.com/request_count",
            {
                "per_series_aligner": "ALIGN_DELTA",
                "cross_series_reducer": "REDUCE_SUM",
                "group_by_fields": ["resource.labels.revision_name", "metric.labels.response_code_class"],
            },
        ):
            per_class = result.setdefault(item.resource.labels["revision_name"], {})
            per_class[item.metric.labels["response_code_class"]] = sum(
                p.value.int64_value for p in item.points
            )
        return result

    by_revision = wait_for(
        "the metrics to be reported",
        lambda: (c := counts()) and sum(sum(v.values()) for v in c.values()) >= 1000 and c,
    )
    p95 = {
        item.resource.labels["revision_name"]: item.points[0].value.double_value
        for item in series(
            "run.googleapis.com/request_latencies",
            {"per_series_aligner": "ALIGN_PERCENTILE_95"},
            ' AND metric.labels.response_code = "200"',
        )
    }
    error_share: dict[str, float] = {}
    for revision, per_class in sorted(by_revision.items()):
        total = sum(per_class.values())
        error_share[revision] = per_class.get("5xx", 0) / total
        _say(
            f"    {revision:<28} {total:>4} requests, 5xx {error_share[revision]:.1%}, "
            f"p95 {p95.get(revision, 0.0):.0f} ms"
        )
    verdict = "roll back" if error_share.get(candidate, 1.0) > 0.05 else "promote"
    _say(f"    verdict: candidate 5xx {error_share.get(candidate, 1.0):.1%} > 5% → {verdict}")
    service.traffic = [run_v2.TrafficTarget(type_=revision_type, revision=stable, percent=100)]
    services.update_service(service=service).result(timeout=60, polling=polling)
    read_back = services.get_service(name=service.name)
    traffic = [(t.revision, t.percent) for t in read_back.traffic_statuses]
    _say(f"    traffic read back: {traffic}")
    if traffic != [(stable, 100)]:
        raise RuntimeError(f"rollback not verified: traffic is {traffic}")
    publisher.publish(
        topic,
        new_envelope(
            "notification",
            run_id,
            {
                "kind": "rollout.rolled_back",
                "severity": "warning",
                "title": f"Canary {candidate} rolled back",
                "text": f"candidate 5xx {error_share.get(candidate, 1.0):.1%}; all traffic on {stable}",
                "context": {"service": "churn-predictor", "revision": candidate, "traffic": f"{stable} 100%"},
            },
            event_id=f"{run_id}:rollback:{candidate}",
        ),
    )
    wait_for(
        "the rollback announcement on chat",
        lambda: any("rolled back" in str(r["body"]) for r in _sink(env, "/hook/chat")),
    )
    _say("    announced on slack, chat and the audit webhook")
