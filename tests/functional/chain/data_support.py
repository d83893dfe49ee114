"""What the data and drift functions' tests share: a chain config, a runtime over fakes with a clock that
moves, sample data files and storage events shaped as the storage emulator and Eventarc send them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework

from shared.config import PipelineConfig, parse_config
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import FakePorts, fake_ports
from shared.ports.objects import ObjectInfo
from shared.publisher import InMemoryPublisher, PublishedMessage
from shared.runtime import Runtime, use

ROOT = Path(__file__).resolve().parents[3]
MAIN = str(ROOT / "main.py")
START = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
PROJECT = "demo-project"
DATA = "demo-project-data"
TRAINING_TOPIC = "mlops-training-requests"
NOTIFICATION_TOPIC = "mlops-notifications"
FINALIZED = "google.cloud.storage.object.v1.finalized"


def chain_config(
    *, max_count: int = 50, quiet: str = "5s", max_wait: str = "60s", debounce: str = "1h", bucket: str = DATA
) -> PipelineConfig:
    """The shipped churn setup: dataset ``churn`` (bucket ``demo-project-data``, prefix ``churn/``, the
    shipped schema), model ``churn``, the drift trigger."""
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "topicPrefix": "mlops-",
                "events": {"maxAge": "24h"},
                "triggers": [{"function": "on_drift_alert", "event": "drift.alert"}],
                "buckets": [{"name": bucket, "function": "on_data_object"}],
                "datasets": [
                    {
                        "name": "churn",
                        "bucket": bucket,
                        "prefix": "churn/",
                        "model": "churn",
                        "schema": "schemas/churn.yaml",
                        "batching": {"quiet": quiet, "maxWait": max_wait, "maxCount": max_count},
                    }
                ],
                "models": [
                    {
                        "name": "churn",
                        "trainer": {"image": "us-docker.pkg.dev/demo-project/mlops/trainer:seed"},
                        "gates": [{"metric": "accuracy", "direction": "higher", "min": 0.8}],
                        "drift": {"debounce": debounce},
                    }
                ],
            },
        },
        str(ROOT / "functional.yaml"),
        env={},
    )


class Clock:
    """A clock the test moves: what ``runtime.clock()`` returns."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class World:
    runtime: Runtime
    ledger: InMemoryLedger
    publisher: InMemoryPublisher
    ports: FakePorts
    clock: Clock

    def messages(self, topic: str) -> list[PublishedMessage]:
        return [message for message in self.publisher.messages if message.topic_id == topic]

    def events(self, topic: str) -> list[dict[str, Any]]:
        """Distinct events published on ``topic`` (a re-publication of one event id counts once)."""
        distinct: dict[str, dict[str, Any]] = {}
        for message in self.messages(topic):
            body = message.json()
            distinct.setdefault(body["event_id"], body)
        return list(distinct.values())

    def notifications(self, kind: str) -> list[dict[str, Any]]:
        return [body for body in self.events(NOTIFICATION_TOPIC) if body["data"]["kind"] == kind]


@contextmanager
def world(config: PipelineConfig | None = None) -> Iterator[World]:
    ports = fake_ports(project=PROJECT)
    ports.objects.add_bucket(DATA)
    ports.objects.add_bucket("another-bucket")
    ledger = InMemoryLedger()
    publisher = InMemoryPublisher()
    clock = Clock()
    runtime = Runtime(
        config or chain_config(), ledger, publisher, RecordingTransport(), ports=ports, clock=clock
    )
    with use(runtime):
        yield World(runtime, ledger, publisher, ports, clock)


def client(function: str) -> Any:
    return functions_framework.create_app(function, MAIN, "http").test_client()


def valid_csv(rows: int = 25, seed: int = 0) -> str:
    """A file the churn schema accepts: f1..f4 within ±10, ``label`` yes/no, ``rows`` rows."""
    lines = ["f1,f2,f3,f4,label"]
    for index in range(rows):
        values = [((index * 7 + seed * 3 + column * 5) % 19 - 9) / 2 for column in range(4)]
        label = "yes" if (index + seed) % 2 else "no"
        lines.append(",".join(f"{value:.2f}" for value in values) + f",{label}")
    return "\n".join(lines) + "\n"


def invalid_csv() -> str:
    """Three failed checks: a ``label`` of ``maybe`` (allowed), a value 99 (max), 3 rows (rows.min)."""
    return "f1,f2,f3,f4,label\n0.5,1.0,-2.0,3.0,yes\n1.0,99,0.0,0.0,no\n-1.5,0.0,2.5,1.0,maybe\n"


def resource(info: ObjectInfo, **overrides: Any) -> dict[str, Any]:
    """The JSON API object resource the ``finalized`` event carries (int64 fields as strings, as the API)."""
    body: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{info.bucket}/{info.name}/{info.generation}",
        "bucket": info.bucket,
        "name": info.name,
        "generation": str(info.generation),
        "metageneration": "1",
        "contentType": info.content_type,
        "size": str(info.size),
        "md5Hash": info.md5_hash,
        "crc32c": "AAAAAA==",
        "storageClass": "STANDARD",
        "timeCreated": "2026-11-22T10:00:00.000Z",
        "updated": "2026-11-22T10:00:00.000Z",
    }
    body.update(overrides)
    return body


def binary_headers(body: dict[str, Any]) -> dict[str, str]:
    """The storage emulator's (and Eventarc's) binary-mode CloudEvent headers for one object resource."""
    digest = hashlib.sha256(f"{body['bucket']}/{body['name']}/{body['generation']}".encode()).hexdigest()
    return {
        "ce-specversion": "1.0",
        "ce-id": f"evt-{digest[:24]}",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{body['bucket']}",
        "ce-type": FINALIZED,
        "ce-subject": f"objects/{body['name']}",
        "ce-time": body["updated"],
        "ce-bucket": body["bucket"],
        "Content-Type": "application/json",
    }


def deliver_object(test_client: Any, body: dict[str, Any]) -> Any:
    """POST the ``finalized`` event of ``body`` in binary mode, as the storage emulator does."""
    return test_client.post("/", data=json.dumps(body), headers=binary_headers(body))


def upload(world_: World, name: str, text: str, bucket: str = DATA) -> dict[str, Any]:
    """Write an object into the fake bucket and return its event resource."""
    info = world_.ports.objects.write(bucket, name, text, content_type="text/csv")
    return resource(info)


def drift_incident(
    incident_id: str = "0.incident-1",
    state: str = "open",
    *,
    model: str | None = "churn",
    label_on: str = "policy",
) -> dict[str, Any]:
    """A Cloud Monitoring incident notification (schema 1.2), the model label where ``label_on`` says."""
    labels = {"model": model} if model else {}
    return {
        "version": "1.2",
        "incident": {
            "incident_id": incident_id,
            "scoping_project_id": PROJECT,
            "scoping_project_number": 12345,
            "url": f"https://console.cloud.google.com/monitoring/alerting/incidents/{incident_id}",
            "started_at": 1795255200,
            "ended_at": None if state == "open" else 1795258800,
            "state": state,
            "summary": "Prediction drift for churn is above the threshold.",
            "observed_value": "0.41",
            "threshold_value": "0.2",
            "resource": {"type": "global", "labels": labels if label_on == "resource" else {}},
            "resource_type_display_name": "Global",
            "metric": {
                "type": "custom.googleapis.com/model/feature_drift",
                "displayName": "Feature drift",
                "labels": labels if label_on == "metric" else {},
            },
            "metadata": {"system_labels": {}, "user_labels": {}},
            "policy_name": "churn drift",
            "policy_user_labels": labels if label_on == "policy" else {},
            "condition_name": "drift above 0.2",
            "documentation": {"content": "Retrain churn.", "mime_type": "text/markdown"},
        },
    }


def drift_push(body: dict[str, Any], message_id: str, publish_time: datetime) -> dict[str, Any]:
    """A Pub/Sub push of a Monitoring notification channel's message (its data is the JSON body)."""
    stamp = publish_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "attributes": {},
            "messageId": message_id,
            "publishTime": stamp,
        },
        "subscription": f"projects/{PROJECT}/subscriptions/mlops-drift-alerts--on_drift_alert",
    }
