"""The run history keeps every notification step: concurrent copies of a message, look-alike event ids."""

from __future__ import annotations

import threading

import pytest

from shared.config import PipelineConfig, parse_config
from shared.deadline import Deadline
from shared.errors import TransientError
from shared.events import new_envelope
from shared.ledger import InMemoryLedger, StepStatus
from shared.notify import Notification, RecordingTransport, deliver_notification, parse_notification
from shared.publisher import InMemoryPublisher
from shared.steps import StepRunner
from tests.contract.ledger import run_concurrently

pytestmark = pytest.mark.unit


def config() -> PipelineConfig:
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "p",
                "notifications": {
                    "channels": [
                        {"name": "slack", "type": "slack", "url": "https://hooks.example/s"},
                        {"name": "audit", "type": "webhook", "url": "https://audit.example/in"},
                    ]
                },
            },
        },
        "t.yaml",
        env={},
    )


def note(event_id: str) -> Notification:
    data = {"kind": "training.requested", "title": "Nightly retrain"}
    return parse_notification(new_envelope("notification", "run-7", data, event_id=event_id))


class SlowTransport(RecordingTransport):
    """Deliveries take a moment, so concurrent copies really overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def deliver(self, channel, rendered):  # type: ignore[no-untyped-def]
        threading.Event().wait(0.01)
        with self.lock:
            super().deliver(channel, rendered)


def test_twenty_concurrent_copies_record_every_channel_step_once() -> None:
    cfg, ledger, transport = config(), InMemoryLedger(), SlowTransport()

    def one_copy(_index: int) -> str:
        runner = StepRunner(ledger, InMemoryPublisher(), cfg, Deadline(30))
        try:
            deliver_notification(note("nightly-retrain-2026-11-01"), cfg.channels, runner, transport)
        except TransientError:
            return "retry"  # Pub/Sub would redeliver this copy
        return "done"

    outcomes = run_concurrently(20, one_copy)
    assert set(outcomes) <= {"done", "retry"}
    assert one_copy(20) == "done"  # the redelivery of a copy that had to retry finds every channel done
    assert sorted(name for name, _ in transport.delivered) == ["audit", "slack"]
    run = ledger.get_run("run-7")
    assert run is not None
    assert sorted((step.name, step.status) for step in run.steps) == [
        ("notify:training.requested:audit:nightly-retrain-2026-11-01", StepStatus.SUCCEEDED),
        ("notify:training.requested:slack:nightly-retrain-2026-11-01", StepStatus.SUCCEEDED),
    ]


def test_events_with_a_common_prefix_keep_their_own_steps() -> None:
    cfg, ledger, transport = config(), InMemoryLedger(), RecordingTransport()
    runner = StepRunner(ledger, InMemoryPublisher(), cfg, Deadline(30))
    for event_id in ("nightly-retrain-2026-11-01", "nightly-retrain-2026-11-02"):
        deliver_notification(note(event_id), cfg.channels, runner, transport)
    run = ledger.get_run("run-7")
    assert run is not None and len(run.steps) == 4
    assert {step.name.rsplit(":", 1)[1] for step in run.steps} == {
        "nightly-retrain-2026-11-01",
        "nightly-retrain-2026-11-02",
    }
