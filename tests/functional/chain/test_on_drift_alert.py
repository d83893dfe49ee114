"""``on_drift_alert`` in-process through functions-framework, fed Cloud Monitoring incident notifications
(schema 1.2) and plain alerts as Pub/Sub pushes, over fakes."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from shared.chain.drift import WINDOWS, close_due_windows
from shared.ingest.runs import drift_run_id
from tests.functional.chain.data_support import (
    PROJECT,
    START,
    TRAINING_TOPIC,
    World,
    chain_config,
    client,
    drift_incident,
    drift_push,
    world,
)

pytestmark = pytest.mark.functional

TOPIC_PATH = f"/projects/{PROJECT}/topics/mlops-drift-alerts"


@pytest.fixture
def app() -> Any:
    return client("on_drift_alert")


def send(w: World, app: Any, body: dict[str, Any], message_id: str, minutes: float = 0) -> Any:
    """Publish ``body`` ``minutes`` after START and deliver it a second later."""
    published = START + timedelta(minutes=minutes)
    w.clock.now = published + timedelta(seconds=1)
    return app.post(TOPIC_PATH, json=drift_push(body, message_id, published))


def requests(w: World) -> list[dict[str, Any]]:
    return w.events(TRAINING_TOPIC)


def test_an_open_incident_sent_twice_requests_one_retrain(app: Any) -> None:
    with world() as w:
        incident = drift_incident("0.inc-1")
        assert send(w, app, incident, "m-1").status_code == 200
        assert send(w, app, incident, "m-1").status_code == 200  # a redelivery
        assert send(w, app, incident, "m-2", minutes=1).status_code == 200  # the channel sent it again
        [request] = requests(w)
        assert request["run_id"] == drift_run_id("churn", START) == "drift-churn-20261122t100000z"
        data = request["data"]
        assert (data["model"], data["cause"]) == ("churn", "drift")
        assert data["detail"]["incident"] == "0.inc-1" and data["detail"]["value"] == "0.41"
        assert data["detail"]["window_start"] == START.isoformat()
        run = w.ledger.get_run(request["run_id"])
        assert run is not None and run.cause["cause"] == "drift" and run.step("drift:alert") is not None
        assert w.notifications("drift.suppressed") == []


@pytest.mark.parametrize("label_on", ["policy", "metric", "resource"])
def test_the_model_label_is_found_on_the_policy_metric_or_resource(app: Any, label_on: str) -> None:
    with world() as w:
        assert send(w, app, drift_incident(label_on=label_on), "m-1").status_code == 200
        [request] = requests(w)
        assert request["data"]["model"] == "churn"


def test_a_second_incident_inside_the_window_is_suppressed_and_recorded_on_that_run(app: Any) -> None:
    with world() as w:
        assert send(w, app, drift_incident("0.inc-1"), "m-1").status_code == 200
        assert send(w, app, drift_incident("0.inc-2"), "m-2", minutes=20).status_code == 200
        plain = {"model": "churn", "metric": "psi", "value": 0.5, "threshold": 0.2}
        assert send(w, app, plain, "m-3", minutes=40).status_code == 200
        [request] = requests(w)
        run = w.ledger.get_run(request["run_id"])
        assert run is not None
        names = sorted(step.name for step in run.steps)
        assert names == ["drift:alert", "drift:suppressed:0.inc-2", "drift:suppressed:message-m-3"]
        suppressed = run.step("drift:suppressed:message-m-3")
        assert suppressed is not None and suppressed.detail["result"]["metric"] == "psi"
        notes = w.notifications("drift.suppressed")
        assert len(notes) == 2 and all(note["run_id"] == request["run_id"] for note in notes)
        # A redelivery of a suppressed alert after the window closed still lands on that run.
        assert send(w, app, drift_incident("0.inc-2"), "m-2", minutes=90).status_code == 200
        assert len(requests(w)) == 1


def test_an_alert_after_the_window_starts_a_new_retrain(app: Any) -> None:
    with world() as w:
        assert send(w, app, drift_incident("0.inc-1"), "m-1").status_code == 200
        assert send(w, app, drift_incident("0.inc-2"), "m-2", minutes=61).status_code == 200
        first, second = requests(w)
        assert first["run_id"] != second["run_id"]
        assert second["run_id"] == drift_run_id("churn", START + timedelta(minutes=61))


def test_a_closed_incident_starts_nothing(app: Any) -> None:
    with world() as w:
        assert send(w, app, drift_incident("0.inc-1", state="closed"), "m-1").status_code == 200
        assert w.publisher.messages == [] and w.ledger.list_rejected() == []
        assert w.ledger.get_doc(WINDOWS, "churn") is None


@pytest.mark.parametrize(
    ("body", "reason", "problem"),
    [
        (drift_incident(model="fraud"), "config", "'fraud' is not in spec.models"),
        (drift_incident(model=None), "invalid", "no `model` label"),
        ({"model": "churn", "metric": "psi"}, "invalid", "value: required"),
    ],
)
def test_an_alert_for_no_known_model_is_recorded_and_acknowledged(
    app: Any, body: dict[str, Any], reason: str, problem: str
) -> None:
    with world() as w:
        assert send(w, app, body, "m-9").status_code == 200
        [rejected] = w.ledger.list_rejected()
        assert rejected.event_id == "m-9" and rejected.reason == reason
        assert any(problem in line for line in rejected.problems)
        assert w.publisher.messages == []


def test_concurrent_incidents_open_one_window() -> None:
    from functions.on_drift_alert import handle
    from shared.events import pubsub_message

    with world() as w:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def deliver(index: int) -> None:
            message = pubsub_message(drift_push(drift_incident(f"0.race-{index}"), f"m-{index}", START))
            barrier.wait()
            try:
                handle(message, w.runtime)
            except BaseException as error:  # a lost race is retried by Pub/Sub; record it for the assert
                errors.append(error)

        threads = [threading.Thread(target=deliver, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        [request] = requests(w)
        run = w.ledger.get_run(request["run_id"])
        assert run is not None
        assert len([step for step in run.steps if step.name.startswith("drift:suppressed:")]) == 3


def test_the_reconciler_closes_a_window_with_its_count_of_suppressed_alerts(app: Any) -> None:
    with world(chain_config(debounce="30m")) as w:
        assert send(w, app, drift_incident("0.inc-1"), "m-1").status_code == 200
        assert send(w, app, drift_incident("0.inc-2"), "m-2", minutes=10).status_code == 200
        assert close_due_windows(w.runtime, START + timedelta(minutes=29)) == []
        [run_id] = close_due_windows(w.runtime, START + timedelta(minutes=30))
        assert close_due_windows(w.runtime, START + timedelta(minutes=31)) == []  # closed once
        run = w.ledger.get_run(run_id)
        assert run is not None
        step = run.step("drift:window")
        assert step is not None and step.detail["result"]["suppressed"] == 1
        window = w.ledger.get_doc(WINDOWS, "churn")
        assert window is not None and window.data["closed"] is True
        # The next alert opens a new window whatever the flag says.
        assert send(w, app, drift_incident("0.inc-3"), "m-3", minutes=45).status_code == 200
        assert len(requests(w)) == 2
