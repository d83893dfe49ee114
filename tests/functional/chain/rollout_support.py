"""What the rollout tests share: a config with the churn service, a runtime over fakes with a clock the test
moves, a stable service to roll out onto, and traffic recorded per revision as the served split sends it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from shared.chain import rollout
from shared.chain.contracts import RolloutRequested
from shared.config import PipelineConfig, parse_config
from shared.ledger import InMemoryLedger, Run, Step
from shared.notify import RecordingTransport
from shared.ports import FakePorts, fake_ports
from shared.ports.deployments import RevisionSpec
from shared.ports.registry import ModelUpload
from shared.publisher import InMemoryPublisher
from shared.rollout.machine import Rollout
from shared.runtime import Runtime, use

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "demo-project"
SERVICE = "churn-predictor"
IMAGE = "us-docker.pkg.dev/demo-project/mlops/server@sha256:" + "a" * 64
STABLE = f"{SERVICE}-seed"
START = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def rollout_config(**service: Any) -> PipelineConfig:
    """The shipped service, small: canary 10 → 50 → 100, 5 s steps, 20 requests, 5xx ≤ 5%, p95 ≤ 2x."""
    spec_service = {
        "name": SERVICE,
        "model": "churn",
        "strategy": "canary",
        "canary": {
            "steps": [10, 50, 100],
            "interval": "5s",
            "minRequests": 20,
            "inconclusive": {"wait": "10s", "then": "fail"},
        },
        "analysis": {"max5xxShare": 0.05, "maxP95Ratio": 2.0},
        "smoke": [{"path": "/predict", "method": "POST", "expectJson": ["predictions"]}],
        "postSwitchWindow": "5s",
        **service,
    }
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "topicPrefix": "mlops-",
                "events": {"maxAge": "1h"},
                "triggers": [{"function": "start_rollout", "event": "rollout.requested"}],
                "models": [{"name": "churn", "trainer": {"image": "trainer:seed"}}],
                "services": [spec_service],
            },
        },
        str(ROOT / "functional.yaml"),
        env={},
    )


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Behaviour:
    """How a revision answers: its 5xx share and latency."""

    errors: float = 0.0
    latency_ms: float = 20.0


@dataclass
class World:
    runtime: Runtime
    ledger: InMemoryLedger
    publisher: InMemoryPublisher
    ports: FakePorts
    clock: Clock
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    reports: list[list[str]] = field(default_factory=list)

    def lease(self) -> Rollout:
        current = rollout.read_lease(self.runtime, SERVICE).rollout
        assert current is not None
        return current

    def run(self, run_id: str) -> Run:
        found = self.ledger.get_run(run_id)
        assert found is not None, f"no run {run_id}"
        return found

    def step(self, run_id: str, name: str) -> Step:
        found = self.run(run_id).step(name)
        assert found is not None, f"run {run_id} has no step {name!r}: {list(self.run(run_id).steps)}"
        return found

    def events(self, kind: str = "") -> list[dict[str, Any]]:
        bodies = [json.loads(m.data) for m in self.publisher.messages if m.topic_id == "mlops-rollouts"]
        return [body["data"] for body in bodies if not kind or body["data"]["kind"] == kind]

    def notifications(self, kind: str = "") -> list[dict[str, Any]]:
        bodies = [json.loads(m.data) for m in self.publisher.messages if m.topic_id == "mlops-notifications"]
        return [body["data"] for body in bodies if not kind or body["data"]["kind"] == kind]

    def served(self) -> dict[str, int]:
        service = self.ports.deployments.get_service(SERVICE)
        assert service is not None
        return {status.revision: status.percent for status in service.traffic_statuses if status.percent}

    def asked_total(self) -> int:
        service = self.ports.deployments.get_service(SERVICE)
        return sum(target.percent for target in service.traffic) if service is not None else 100

    def traffic(self, requests: int = 40) -> None:
        """``requests`` requests over the last second, split as the service serves them now."""
        service = self.ports.deployments.get_service(SERVICE)
        if service is None:
            return
        at = self.clock.now - timedelta(milliseconds=500)
        for revision, percent in service.serving():
            count = requests * percent // 100
            how = self.behaviour.get(revision, Behaviour())
            self.ports.metrics.record_many(
                SERVICE,
                revision,
                count,
                latency_ms=how.latency_ms,
                errors=round(count * how.errors),
                at=at,
            )

    def tick(self, seconds: float = 1.0, requests: int = 40) -> list[str]:
        """One reconcile tick ``seconds`` later, with the traffic of that second recorded first."""
        self.clock.advance(seconds)
        self.traffic(requests)
        report = rollout.tick(self.runtime, self.clock.now)
        self.reports.append(report)
        return report

    def until(self, done: Any, ticks: int = 60, requests: int = 40) -> int:
        """Tick until ``done(rollout)``; how many ticks it took."""
        for count in range(1, ticks + 1):
            self.tick(requests=requests)
            if done(self.lease()):
                return count
        raise AssertionError(f"not reached in {ticks} ticks: {self.lease()}")


def candidate_request(version: str = "2", **overrides: Any) -> RolloutRequested:
    fields: dict[str, Any] = {
        "service": SERVICE,
        "model": "churn",
        "version": version,
        "version_resource": f"projects/{PROJECT}/locations/us-central1/models/churn@{version}",
        "artifact_uri": f"gs://demo-artifacts/runs/run-{version}/model/",
        "image": IMAGE,
        "cause": "approval",
        "approved_by": "ada@example.com",
        "nonce": f"nonce-{version}",
    }
    return RolloutRequested(**{**fields, **overrides})


@contextmanager
def world(config: PipelineConfig | None = None, *, stable: bool = True) -> Iterator[World]:
    ports = fake_ports(project=PROJECT)
    ports.objects.add_bucket(f"{PROJECT}-artifacts")  # the artifacts and the shadow mirror's control
    for version in ("1", "2", "3"):
        ports.registry.upload(ModelUpload("churn", "churn", f"gs://demo-artifacts/runs/run-{version}/model/"))
    ports.registry.merge_aliases("churn", "1", add=["champion"])
    if stable:
        ports.deployments.create_service(
            SERVICE,
            RevisionSpec(STABLE, IMAGE, env={"MODEL_URI": "gs://demo-artifacts/runs/run-1/model/"}),
            tag="stable",
        )
        ports.deployments.get_service(SERVICE)  # the seed revision starts
    clock = Clock()
    ledger = InMemoryLedger(clock=clock)
    publisher = InMemoryPublisher()
    runtime = Runtime(
        config or rollout_config(), ledger, publisher, RecordingTransport(), ports=ports, clock=clock
    )
    with use(runtime), _answering_candidates():
        yield World(runtime, ledger, publisher, ports, clock)


class _SmokeAnswer:
    status_code = 200

    def json(self) -> dict[str, Any]:
        return {"predictions": [0]}


@contextmanager
def _answering_candidates() -> Iterator[None]:
    """The fake Cloud Run's tag URLs are not real: a candidate answers the smoke checks (run before any
    strategy's first step) with 200 and predictions — unless the test installed its own answers first."""
    import requests

    if requests.request is not requests.api.request:  # the test's own smoke answers
        yield
        return
    with patch.object(requests, "request", lambda method, url, **_: _SmokeAnswer()):
        yield


def traffic_sums(world: World) -> bool:
    return world.asked_total() == 100


def percents(values: Mapping[str, int]) -> dict[str, int]:
    return {name: percent for name, percent in values.items() if percent}
