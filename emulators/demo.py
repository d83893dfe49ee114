"""``make demo``: a fresh local stack, the scenario that exists so far, live progress, a clean teardown.

Scenario: notifications published on Pub/Sub travel through a push subscription to ``notify`` on the
function host, which renders them per channel and posts them to the local webhook sink; a duplicate is
delivered once; a malformed message is recorded in the ledger, not lost; the run ledger shows the steps.
Then the sample trainer is built by the Cloud Build emulator (each status seen on ``cloud-builds``), trained
as a Vertex AI CustomJob that writes its real model to the storage emulator, and registered in the Model
Registry, and the result is announced through ``notify``. Finally the server image serves that model on the
Cloud Run emulator, a misbehaving candidate revision takes 10% of real traffic, Cloud Monitoring shows its
errors and latency per revision, the canary verdict says why it fails, and traffic is rolled back and verified
by reading it back. Build, training, registry, traffic and metrics go through the typed ports
(``shared.ports``) and the verdict is ``shared.rollout.analysis``: the demo makes no such Google call itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from emulators.common.proc import group_alive, wait_for
from emulators.stack import ROOT, Stack, applied_env

if TYPE_CHECKING:
    from shared.ports import Ports

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
    from shared.ports import production_ports
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

    ports = production_ports(config)
    model_uri = _build_train_register(env, project, config.region, run_id, publisher, topic, ports)
    _canary(env, project, config.region, run_id, model_uri, publisher, topic, ports)

    _say(f"▶ 11. the run ledger for {run_id}")
    run = wait_for("the run record", lambda: (r := ledger.get_run(run_id)) and len(r.steps) >= 4 and r)
    for step in run.steps:
        _say(f"    {step.started_at:%H:%M:%S}  {step.name:<45} {step.status.value}")


def _build_train_register(
    env: dict[str, str], project: str, region: str, run_id: str, publisher: Any, topic: str, ports: Ports
) -> str:
    """Steps 5-8; returns the gs:// folder of the trained model."""
    import importlib.util

    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    from emulators.cloudbuild.sources import pack_source
    from shared import clients
    from shared.events import new_envelope
    from shared.ports.builds import BuildRequest, BuildStatus, BuildStep, StorageSource
    from shared.ports.registry import ModelUpload
    from shared.ports.training import JobState, MachineSpec, TrainingJobSpec

    storage = clients.storage()
    bucket_name = f"{project}-demo"
    if not storage.bucket(bucket_name).exists():
        storage.create_bucket(bucket_name)

    _say("▶ 5. the sample trainer's source and training data go to Cloud Storage")
    source = ports.objects.write(
        bucket_name, "source/trainer.tgz", pack_source(ROOT / "examples" / "trainer")
    )
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    ports.objects.write(bucket_name, "data/train.csv", make_data.make_csv(rows=400), content_type="text/csv")
    _say(f"    {source.uri} ({source.size} bytes), gs://{bucket_name}/data/train.csv")

    _say("▶ 6. Cloud Build emulator builds the trainer image; statuses as seen on the cloud-builds topic")
    topics, subscriber = PublisherClient(), SubscriberClient()
    builds_topic = topics.topic_path(project, "cloud-builds")
    with contextlib.suppress(exceptions.AlreadyExists):
        topics.create_topic(request={"name": builds_topic})
    watch = subscriber.subscription_path(project, f"demo-watch-{run_id}")
    subscriber.create_subscription(request={"name": watch, "topic": builds_topic})
    image = f"{region}-docker.pkg.dev/{project}/mlops/trainer:{run_id}"
    build_id = ports.builds.start(
        BuildRequest(
            steps=(BuildStep("gcr.io/cloud-builders/docker", ("build", "-t", image, ".")),),
            images=(image,),
            tags=(f"run-{run_id}", "trainer"),
            source=StorageSource(bucket_name, "source/trainer.tgz", source.generation),
        )
    )
    build = wait_for(
        "the trainer build", lambda: (b := ports.builds.get(build_id)).status.terminal and b, 120
    )
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
    _say(f"    image {image}@{(build.digest_of(image) or '?')[:19]}…")
    if build.status is not BuildStatus.SUCCESS:
        raise RuntimeError(f"the trainer build ended {build.status}: {build.status_detail}")

    _say("▶ 7. Vertex AI emulator runs the image as a CustomJob (the trainer really trains)")
    output = f"gs://{bucket_name}/runs/{run_id}"
    job = ports.training.submit(
        TrainingJobSpec(
            display_name=f"train-{run_id}",
            image_uri=image,
            args=("--data", f"gs://{bucket_name}/data/train.csv"),
            labels={"run_id": run_id},
            machine=MachineSpec("n1-standard-4"),
            base_output_dir=output,
        )
    )
    states = [job.state.value]
    deadline = time.monotonic() + 180
    while not job.state.terminal and time.monotonic() < deadline:
        time.sleep(0.3)
        job = ports.training.get(job.name)
        if job.state.value != states[-1]:
            states.append(job.state.value)
    _say(f"    {job.id}: {' → '.join(states)}")
    if job.state is not JobState.SUCCEEDED:
        raise RuntimeError(f"training ended {job.state}: {job.error_message}")
    metrics = json.loads(ports.objects.read_text(bucket_name, f"runs/{run_id}/model/metrics.json"))
    model_file = ports.objects.stat(bucket_name, f"runs/{run_id}/model/model.joblib")
    _say(
        f"    {output}/model/model.joblib ({model_file.size if model_file else '?'} bytes); "
        f"metrics {json.dumps(metrics)[:80]}"
    )

    _say("▶ 8. Model Registry: upload the model; a second upload becomes version 2")
    upload = ModelUpload(
        model_id="churn",
        display_name="churn",
        artifact_uri=f"{output}/model/",
        labels={"run_id": run_id},
        metadata={"metrics": metrics},
    )
    first = ports.registry.upload(upload)
    second = ports.registry.upload(replace(upload, labels={}))
    _say(f"    {first.model} versions {first.version_id} and {second.version_id}")
    publisher.publish(
        topic,
        new_envelope(
            "notification",
            run_id,
            {
                "kind": "training.succeeded",
                "severity": "info",
                "title": "New model version registered",
                "context": {"model": "churn", "version": second.version_id, "metrics": metrics},
            },
            event_id=f"{run_id}:model:{second.version_id}",
        ),
    )
    wait_for("the model announcement", lambda: len(_sink(env)) >= 7)
    _say(f"    sink /hook/slack  ← {_sink(env, '/hook/slack')[-1]['body']['text'].splitlines()[0]!r}")
    return f"{output}/model/"


def _canary(
    env: dict[str, str],
    project: str,
    region: str,
    run_id: str,
    model_uri: str,
    publisher: Any,
    topic: str,
    ports: Ports,
) -> None:
    """Steps 9-10: the trained model served on Cloud Run, a bad candidate at 10%, metrics, verdict, rollback.

    The verdict is ``shared.rollout.analysis`` over the Metrics port's numbers; the rollout function that
    acts on it comes with a later issue.
    """
    import yaml

    from emulators.cloudbuild.sources import pack_source
    from emulators.loadgen import run_load
    from shared.events import new_envelope
    from shared.ports.builds import BuildRequest, BuildStatus, StorageSource
    from shared.ports.deployments import RevisionSpec, TrafficTarget, revision_name
    from shared.rollout.analysis import Thresholds, Verdict, analyse

    service_name = "churn-predictor"
    _say("▶ 9. the server image is built, then serves the trained model on the Cloud Run emulator")
    bucket_name = f"{project}-demo"
    source = ports.objects.write(bucket_name, "source/server.tgz", pack_source(ROOT / "examples" / "server"))
    image = f"{region}-docker.pkg.dev/{project}/mlops/server:{run_id}"
    build_config = yaml.safe_load((ROOT / "examples" / "server" / "cloudbuild.yaml").read_text())
    build_id = ports.builds.start(
        BuildRequest.from_config(
            build_config,
            source=StorageSource(bucket_name, "source/server.tgz", source.generation),
            substitutions={"_IMAGE": image},
            tags=[f"run-{run_id}", "server"],
        )
    )
    build = wait_for("the server build", lambda: (b := ports.builds.get(build_id)).status.terminal and b, 120)
    _say(f"    build {build.id}: {build.status}, image {image}")
    if build.status is not BuildStatus.SUCCESS:
        raise RuntimeError(f"the server build ended {build.status}: {build.status_detail}")

    deployments = ports.deployments

    def revision(version: str, **variables: str) -> RevisionSpec:
        return RevisionSpec(
            name=revision_name(service_name, f"{run_id}-v{version}"),
            image=image,
            env={"MODEL_URI": model_uri, "MODEL_VERSION": version, **variables},
            labels={"run-id": run_id, "model-version": version},
        )

    def settled(what: str, done: Callable[[Any], bool]) -> Any:
        return wait_for(
            what, lambda: (s := deployments.get_service(service_name)) and s.ready and done(s) and s, 60
        )

    stable_spec = revision("1")
    stable = stable_spec.name
    deployments.create_service(service_name, stable_spec)
    service = settled("the service to serve", lambda s: s.serving() == [(stable, 100)])
    _say(f"    {service.uri} → {stable} (100%)")

    # The candidate: same image, a misbehaving configuration (30% errors, +80 ms), at 0% behind a tag first.
    candidate_spec = revision("2", ERROR_RATE="0.3", ERROR_MODE="deterministic", EXTRA_LATENCY_MS="80")
    candidate = candidate_spec.name
    deployments.deploy_revision(service_name, candidate_spec, tag="candidate")
    settled("the candidate to start", lambda s: (r := s.revision(candidate)) is not None and r.ready)
    deployments.set_traffic(
        service_name, [TrafficTarget(stable, 90), TrafficTarget(candidate, 10, "candidate")]
    )
    service = settled("the 90/10 split", lambda s: s.percent_of(candidate) == 10)
    split = ", ".join(
        f"{t.revision} {t.percent}%{' #' + t.tag if t.tag else ''}" for t in service.traffic_statuses
    )
    _say(f"    canary: {split}")

    started = datetime.now(UTC) - timedelta(seconds=1)
    body = {"instances": [[0.1, -0.4, 0.3, 1.2], [-1.0, 0.8, 0.0, 0.5]]}
    load = run_load(f"{service.uri}/predict", 1000, concurrency=4, max_seconds=60, json_body=body)
    _say(f"    1000 requests in {load.seconds:.1f}s: {load.summary()['byStatus']}")

    _say("▶ 10. Cloud Monitoring per revision (list_time_series), verdict, rollback verified by reading back")
    found = wait_for(
        "the metrics to be reported",
        lambda: (
            (
                m := ports.metrics.revision_metrics(
                    service_name, started, datetime.now(UTC) + timedelta(seconds=1)
                )
            )
            and m.requests >= 1000
            and m
        ),
    )
    for name, numbers in sorted(found.revisions.items()):
        share, p95 = numbers.share("5xx") or 0.0, numbers.latency.p95_ms
        _say(
            f"    {name:<28} {numbers.requests:>4} requests, 5xx {share:.1%}, "
            f"p95 {f'{p95:.0f} ms' if p95 is not None else 'n/a'}"
        )
    thresholds = Thresholds(min_requests=20, max_5xx_share=0.05, max_p95_ratio=2.0)
    analysis = analyse(found.for_revision(candidate), found.for_revision(stable), thresholds)
    decision = "promote" if analysis.verdict is Verdict.HEALTHY else "roll back"  # missing data is no pass
    _say(f"    verdict: {analysis.verdict} → {decision}")
    for reason in analysis.reasons:
        _say(f"      · {reason}")
    deployments.set_traffic(service_name, [TrafficTarget(stable, 100)])
    expected = [(stable, 100)]
    try:
        read_back = wait_for(
            "the rollback to be served",
            lambda: (
                (t := [(s.revision, s.percent) for s in deployments.get_traffic(service_name)]) == expected
                and t
            ),
        )
    except Exception as error:
        raise RuntimeError(f"rollback not verified: {error}") from error
    _say(f"    traffic read back: {read_back}")
    errors = analysis.check("5xx_share")
    observed = f"{errors.observed:.1%}" if errors is not None and errors.observed is not None else "n/a"
    publisher.publish(
        topic,
        new_envelope(
            "notification",
            run_id,
            {
                "kind": "rollout.rolled_back",
                "severity": "warning",
                "title": f"Canary {candidate} rolled back",
                "text": f"candidate 5xx {observed}; all traffic on {stable}",
                "context": {"service": service_name, "revision": candidate, "traffic": f"{stable} 100%"},
            },
            event_id=f"{run_id}:rollback:{candidate}",
        ),
    )
    wait_for(
        "the rollback announcement on chat",
        lambda: any("rolled back" in str(r["body"]) for r in _sink(env, "/hook/chat")),
    )
    _say("    announced on slack, chat and the audit webhook")
