"""``make demo``: a fresh local stack, the scenario that exists so far, live progress, a clean teardown.

Scenario: notifications published on Pub/Sub travel through a push subscription to ``notify`` on the
function host, which renders them per channel and posts them to the local webhook sink; a duplicate is
delivered once; a malformed message is recorded in the ledger, not lost; the run ledger shows the steps.
Then the sample trainer is built by the Cloud Build emulator (each status seen on ``cloud-builds``), trained
as a Vertex AI CustomJob that writes its real model to the storage emulator, and registered in the Model
Registry, and the result is announced through ``notify``.
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

from emulators.stack import ROOT, Stack, applied_env

Check = Callable[[], Any]


def _say(message: str) -> None:
    print(message, flush=True)


def _wait_for(what: str, check: Check, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


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
        alive = [name for name, running, _ in stack.status() if running]
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
    records = _wait_for("slack + audit deliveries", lambda: len(_sink(env)) >= 2 and _sink(env))
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
    _wait_for("three more deliveries", lambda: len(_sink(env)) >= 5)
    for record in _sink(env)[2:]:
        _say(f"    sink {record['path']:<12} ← {str(record['body'].get('text', ''))[:80]!r}")

    _say("▶ 4. a malformed message → recorded in the ledger, acknowledged, never lost")
    raw = PublisherClient()
    raw.publish(raw.topic_path(project, topic), b"{not json", type="notification").result(timeout=30)
    rejected = _wait_for("the rejected-event record", lambda: ledger.list_rejected(limit=5))
    for record in rejected:
        _say(f"    rejected {record.event_id}: {record.reason}: {'; '.join(record.problems)}")

    _build_train_register(env, project, config.region, run_id, publisher, topic)

    _say(f"▶ 9. the run ledger for {run_id}")
    run = _wait_for("the run record", lambda: (r := ledger.get_run(run_id)) and len(r.steps) >= 3 and r)
    for step in run.steps:
        _say(f"    {step.started_at:%H:%M:%S}  {step.name:<45} {step.status.value}")


def _build_train_register(
    env: dict[str, str], project: str, region: str, run_id: str, publisher: Any, topic: str
) -> None:
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
    _wait_for("the model announcement", lambda: len(_sink(env)) >= 7)
    _say(f"    sink /hook/slack  ← {_sink(env, '/hook/slack')[-1]['body']['text'].splitlines()[0]!r}")
