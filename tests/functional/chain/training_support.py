"""What the training functions' tests share: a chain config, a runtime over fakes, event deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework

from shared.config import PipelineConfig, parse_config
from shared.events import new_envelope
from shared.ledger import InMemoryLedger, Run, Step
from shared.notify import RecordingTransport
from shared.ports import FakePorts, fake_ports
from shared.publisher import InMemoryPublisher, PublishedMessage
from shared.runtime import Runtime, use
from tests.helpers import push_envelope

ROOT = Path(__file__).resolve().parents[3]
MAIN = str(ROOT / "main.py")
NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
PUBLISHED = "2026-11-22T10:00:00Z"
PROJECT = "demo-project"
ARTIFACTS = "demo-artifacts"
DATA = "demo-data"
DEFAULT_IMAGE = "us-docker.pkg.dev/demo-project/mlops/trainer:seed"
SERVING_IMAGE = "us-docker.pkg.dev/demo-project/mlops/server:seed"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def chain_config(**model: Any) -> PipelineConfig:
    """The shipped churn setup, small: one trainer image, one dataset, one model (``model`` overrides)."""
    spec_model = {
        "name": "churn",
        "trainer": {
            "image": DEFAULT_IMAGE,
            "machineType": "n1-highmem-8",
            "serviceAccount": "trainer@demo-project.iam.gserviceaccount.com",
        },
        "servingImage": SERVING_IMAGE,
        "gates": [{"metric": "accuracy", "direction": "higher", "min": 0.8}],
        "approval": "manual",
        **model,
    }
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "topicPrefix": "mlops-",
                "events": {"maxAge": "1h"},
                "triggers": [
                    {"function": "start_training", "event": "training.requested"},
                    {"function": "on_training_state", "event": "training.state"},
                ],
                "artifacts": {"bucket": ARTIFACTS},
                "push": {
                    "images": [
                        {"name": "trainer", "role": "trainer", "paths": ["trainer/**"]},
                        {"name": "server", "role": "server", "paths": ["server/**"]},
                    ]
                },
                "datasets": [
                    {
                        "name": "churn",
                        "bucket": DATA,
                        "prefix": "churn/",
                        "model": "churn",
                        "schema": "schemas/churn.yaml",
                    }
                ],
                "models": [spec_model],
            },
        },
        str(ROOT / "functional.yaml"),
        env={},
    )


@dataclass
class World:
    """The runtime under test and handles on its fakes."""

    runtime: Runtime
    ledger: InMemoryLedger
    publisher: InMemoryPublisher
    ports: FakePorts

    def messages(self, topic: str) -> list[PublishedMessage]:
        return [message for message in self.publisher.messages if message.topic_id == topic]

    def notifications(self, kind: str = "") -> list[dict[str, Any]]:
        """Published notification envelopes (optionally of one ``kind``)."""
        found = [message.json() for message in self.messages("mlops-notifications")]
        return [body for body in found if not kind or body["data"]["kind"] == kind]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [message.json() for message in self.messages(topic)]

    def run(self, run_id: str) -> Run:
        run = self.ledger.get_run(run_id)
        assert run is not None, f"no run {run_id}"
        return run

    def step(self, run_id: str, name: str) -> Step:
        """The step ``name`` as recorded on the run."""
        step = self.run(run_id).step(name)
        assert step is not None, f"run {run_id} has no step {name!r}"
        return step


@contextmanager
def world(config: PipelineConfig | None = None) -> Iterator[World]:
    ports = fake_ports(project=PROJECT)
    ports.objects.add_bucket(ARTIFACTS)
    ports.objects.add_bucket(DATA)
    ledger = InMemoryLedger()
    publisher = InMemoryPublisher()
    runtime = Runtime(
        config or chain_config(),
        ledger,
        publisher,
        RecordingTransport(),
        ports=ports,
        clock=lambda: NOW,
    )
    with use(runtime):
        yield World(runtime, ledger, publisher, ports)


def client(function: str) -> Any:
    return functions_framework.create_app(function, MAIN, "http").test_client()


def deliver(
    test_client: Any,
    topic: str,
    event_type: str,
    run_id: str,
    data: Mapping[str, Any],
    event_id: str = "evt-1",
    message_id: str = "1001",
) -> Any:
    """POST one Pub/Sub push of an internal event, as the push subscription sends it."""
    envelope = new_envelope(event_type, run_id, data, event_id=event_id)
    body = push_envelope(
        json.dumps(envelope.to_json()), envelope.attributes(), message_id=message_id, publish_time=PUBLISHED
    )
    return test_client.post(f"/projects/{PROJECT}/topics/{topic}", json=body)
