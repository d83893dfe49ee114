"""The chain on the whole local stack, with every delivery made twice.

The function host runs every request to a function a second time, concurrently
(``EMULATORS_DUPLICATE_DELIVERIES=1``): each Pub/Sub push, each storage event, each reconcile tick and each
webhook is handled twice, and the webhook is also sent three times. Whatever the duplicates, a push builds
each touched image once per commit, and every run has one Vertex job and one model version.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.common.proc import wait_for
from emulators.demo.chain import _drift_incident, _make_csv, make_repository, push_payload
from emulators.stack import ROOT, Stack, applied_env

pytestmark = pytest.mark.integration

PROJECT = "chain-it"
SECRET = "chain-integration-secret"
REGISTERED = "registry:version"


class Chain:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        from shared import clients
        from shared.config import load_config
        from shared.ledger import FirestoreLedger
        from shared.ports import production_ports

        clients.reset()
        self.env = env
        self.workdir = workdir
        self.config = load_config(env["PIPELINE_CONFIG"], env={**os.environ, **env})
        self.ledger = FirestoreLedger(clients.firestore(), prefix=self.config.ledger_prefix)
        self.ports = production_ports(self.config)

    def run_with(self, prefix: str, step: str, timeout: float = 180) -> Any:
        """The first run whose id starts with ``prefix`` once it has recorded ``step`` (or ended)."""

        def find() -> Any:
            for run in self.ledger.list_runs(limit=100):
                if run.run_id.startswith(prefix) and (run.step(step) or run.status.value != "RUNNING"):
                    return run
            return None

        return wait_for(f"a {prefix}… run with {step}", find, timeout)

    def runs(self, prefix: str) -> list[Any]:
        return [run for run in self.ledger.list_runs(limit=100) if run.run_id.startswith(prefix)]

    def one_job_and_version(self, run_id: str) -> None:
        time.sleep(3)  # a late duplicate would have acted by now
        jobs = self.ports.training.find_by_label("run-id", run_id)
        assert len(jobs) == 1, [job.name for job in jobs]
        versions = self.ports.registry.find_versions("churn", {"run-id": run_id})
        assert len(versions) == 1, [version.resource_name for version in versions]
        assert "candidate" in versions[0].aliases or versions[0].aliases == ()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    saved = {key: os.environ.get(key) for key in ("EMULATORS_DUPLICATE_DELIVERIES", "GITHUB_WEBHOOK_SECRET")}
    os.environ["EMULATORS_DUPLICATE_DELIVERIES"] = "1"
    os.environ["GITHUB_WEBHOOK_SECRET"] = SECRET
    stack = Stack(tmp_path_factory.mktemp("chain-stack"), project=PROJECT, config_path=ROOT / "pipeline.yaml")
    try:
        state = stack.up(progress=lambda line: print(line, flush=True))
        try:
            with applied_env(state.env):
                yield Chain(state.env, tmp_path_factory.mktemp("chain-work"))
        finally:
            stack.down(progress=lambda line: print(line, flush=True))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _steps(run: Any) -> list[tuple[str, str, Any]]:
    return [
        (step.name, step.status.value, step.detail)
        for step in run.steps
        if not step.name.startswith("notify")
    ]


def _post_push(chain: Chain, body: bytes, delivery: str, signature: str | None = None) -> requests.Response:
    from shared.ingest.signatures import github_signature

    return requests.post(
        f"{chain.env['FUNCTIONS_URL']}/on_git_push",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature or github_signature(body, SECRET),
        },
        timeout=30,
    )


def test_a_data_burst_with_an_invalid_file_trains_once_and_quarantines_the_file(chain: Chain) -> None:
    dataset = chain.config.chain.datasets[0]
    names = [f"{dataset.prefix}it-{index:02d}.csv" for index in range(8)]
    for index, name in enumerate(names):
        chain.ports.objects.write(dataset.bucket, name, _make_csv(rows=40, seed=300 + index))
    bad = _make_csv(rows=40, seed=400).replace(",yes\n", ",maybe\n", 2)
    chain.ports.objects.write(dataset.bucket, f"{dataset.prefix}it-bad.csv", bad)

    run = chain.run_with(f"data-{dataset.name}-{dataset.name}-", REGISTERED)
    assert run.step(REGISTERED) is not None, _steps(run)
    assert run.step("data:batch") is not None
    submitted = run.step("training:submitted")
    assert submitted is not None
    listed = json.dumps(submitted.detail)  # the job trains on exactly the burst's valid objects
    assert all(name in listed for name in names) and "it-bad.csv" not in listed, listed[:2000]
    assert len([r for r in chain.runs("data-") if "-q-" not in r.run_id]) == 1
    report = wait_for(
        "the quarantine report",
        lambda: chain.ports.objects.stat(
            dataset.bucket, f"quarantine/{dataset.prefix}it-bad.csv.report.json"
        ),
    )
    assert report is not None
    assert (
        chain.ports.objects.stat(dataset.bucket, f"{dataset.prefix}it-bad.csv") is None
    )  # moved, not copied
    chain.one_job_and_version(run.run_id)


def test_a_push_sent_three_times_builds_each_image_once_and_registers_one_version(chain: Chain) -> None:
    # A push trains on the dataset's current objects: the burst of the test above.
    repo, before, after, changed = make_repository(chain.workdir)
    body = json.dumps(push_payload(repo, before, after, changed)).encode()
    delivery = str(uuid.uuid4())
    answers = [_post_push(chain, body, d) for d in (delivery, delivery, str(uuid.uuid4()))]
    assert all(answer.status_code in (200, 202) for answer in answers)
    run_id = answers[0].json()["run_id"]
    assert _post_push(chain, body, "forged", "sha256=" + "0" * 64).status_code == 401

    run = chain.run_with(run_id, REGISTERED)
    assert run.status.value == "RUNNING" and run.step(REGISTERED) is not None, _steps(run)
    for image in ("trainer", "server"):
        builds = chain.ports.builds.find_by_tags(["mlops", f"run-{run_id}", f"image-{image}"])
        assert len(builds) == 1, (image, [build.id for build in builds])
    chain.one_job_and_version(run_id)


def test_a_drift_incident_published_twice_retrains_once(chain: Chain) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    publisher = PublisherClient()
    topic = publisher.topic_path(PROJECT, chain.config.topic_for("drift.alert"))
    incident = json.dumps(_drift_incident(f"0.it-{uuid.uuid4().hex[:8]}")).encode()
    for _ in range(2):
        publisher.publish(topic, incident).result(timeout=30)

    run = chain.run_with("drift-churn-", REGISTERED)
    assert run.step(REGISTERED) is not None, _steps(run)
    assert len(chain.runs("drift-")) == 1
    chain.one_job_and_version(run.run_id)
