"""The drift stage's pure pieces: the debounce decision against a window document, the stored decision,
and the two alert forms (Monitoring incident 1.2, plain JSON)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.chain.drift import Decision, alert_key, decide, parse_alert, window_document
from shared.events import InvalidInput, drift_alert, pubsub_message
from shared.ingest.runs import drift_run_id
from shared.training.batching import DebouncePolicy
from tests.helpers import push_envelope

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
HOUR = DebouncePolicy(timedelta(hours=1))


def incident(incident_id: str = "0.a", state: str = "open", **extra: Any) -> dict[str, Any]:
    return {"version": "1.2", "incident": {"incident_id": incident_id, "state": state, **extra}}


def window_of(key: str, opened_at: datetime) -> dict[str, Any]:
    alert = drift_alert(incident(key.split("/")[1], policy_user_labels={"model": "churn"}))
    return window_document("churn", key, alert, opened_at, HOUR)


def test_the_first_alert_opens_a_window_named_after_its_start() -> None:
    decision, opened = decide(None, "churn", "drift/0.a/open", T0, HOUR)
    assert decision == Decision("start", drift_run_id("churn", T0), T0, T0 + timedelta(hours=1))
    assert opened is not None and opened.run_id == "drift-churn-20261122t100000z"


def test_an_alert_inside_the_window_is_suppressed_onto_its_run() -> None:
    current = window_of("drift/0.a/open", T0)
    decision, opened = decide(current, "churn", "drift/0.b/open", T0 + timedelta(minutes=59), HOUR)
    assert (decision.action, decision.run_id, opened) == ("suppress", current["run_id"], None)
    # A delayed delivery that predates the window is covered by the retrain already started.
    late, _ = decide(current, "churn", "drift/0.c/open", T0 - timedelta(minutes=5), HOUR)
    assert late.action == "suppress"


def test_an_alert_at_the_window_end_opens_the_next_window() -> None:
    current = window_of("drift/0.a/open", T0)
    decision, opened = decide(current, "churn", "drift/0.b/open", T0 + timedelta(hours=1), HOUR)
    assert decision.action == "start" and opened is not None
    assert decision.run_id == drift_run_id("churn", T0 + timedelta(hours=1)) != current["run_id"]


def test_the_alert_that_opened_the_window_starts_it_again_without_a_write() -> None:
    current = window_of("drift/0.a/open", T0)
    for later in (timedelta(0), timedelta(hours=3)):  # even a redelivery after the window ended
        decision, opened = decide(current, "churn", "drift/0.a/open", T0 + later, HOUR)
        assert (decision.action, decision.run_id, opened) == ("start", current["run_id"], None)


def test_a_malformed_window_document_is_replaced() -> None:
    decision, opened = decide({"run_id": 7}, "churn", "drift/0.b/open", T0, HOUR)
    assert decision.action == "start" and opened is not None


def test_a_decision_round_trips_through_a_step_result() -> None:
    decision = Decision("suppress", "drift-churn-20261122t100000z", T0, T0 + timedelta(hours=1))
    assert Decision.from_json({**decision.to_json(), "incident": "0.a"}) == decision
    assert Decision.from_json({"status": "failed"}) is None
    assert Decision.from_json({"action": "start", "window_start": "soon"}) is None


def test_a_monitoring_incident_is_keyed_by_incident_and_state() -> None:
    opened = drift_alert(incident("0.x", metric={"type": "m", "labels": {"model": "churn"}}))
    closed = drift_alert(incident("0.x", state="CLOSED"))
    assert (alert_key(opened), alert_key(closed)) == ("drift/0.x/open", "drift/0.x/closed")
    assert opened.model == "churn" and not closed.is_open


def test_the_model_may_sit_on_the_resource_user_labels() -> None:
    alert = drift_alert(incident(metadata={"system_labels": {}, "user_labels": {"model": "churn"}}))
    assert alert.model == "churn"


def test_a_plain_alert_is_read_into_the_same_shape() -> None:
    body = {"model": "churn", "metric": "psi", "value": "0.41", "threshold": 0.2}
    message = pubsub_message(push_envelope(body, message_id="77"))
    alert = parse_alert(message)
    assert (alert.model, alert.metric_type, alert.observed_value, alert.threshold_value) == (
        "churn",
        "psi",
        "0.41",
        "0.2",
    )
    assert alert.is_open and alert_key(alert) == "drift/message-77/open"
    assert drift_alert({**body, "id": "a-1", "state": "closed"}).incident_id == "a-1"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "churn", "metric": "psi", "value": 1}, "threshold: required"),
        (
            {"model": "churn", "metric": "psi", "value": "high", "threshold": 1},
            "value: must be a finite number",
        ),
        (
            {"model": "churn", "metric": "psi", "value": float("inf"), "threshold": 1},
            "value: must be a finite",
        ),
        (
            {"model": "churn", "metric": "psi", "value": 1, "threshold": 1, "state": "maybe"},
            "state: expected",
        ),
        ({"model": "", "metric": "psi", "value": 1, "threshold": 1}, "model: required"),
        ({"model": "churn", "value": 1, "threshold": 1}, "metric: required"),
    ],
)
def test_a_bad_plain_alert_lists_its_problems(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        drift_alert(body, default_id="m-1")
    assert any(problem in line for line in caught.value.problems)


def test_a_plain_alert_without_any_id_is_refused() -> None:
    with pytest.raises(InvalidInput, match="id: required"):
        drift_alert({"model": "churn", "metric": "psi", "value": 1, "threshold": 1})
