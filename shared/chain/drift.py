"""Drift alerts: an open incident requests a retrain, at most one per model per debounce window.

``on_drift_alert`` (one Pub/Sub message) → :func:`parse_alert`, then :func:`handle_alert`:

* a Cloud Monitoring incident (schema 1.2, the model from a ``model`` label on the policy, metric or
  resource) or a plain alert ``{model, metric, value, threshold}`` (:func:`shared.events.drift_alert`);
* a **closed** incident starts nothing;
* no model, or a model the config does not know → a permanent error: recorded as rejected (reason
  ``invalid`` or ``config``) and acknowledged;
* an **open** alert is decided against the model's window document ``windows/<model>``
  (:func:`shared.training.batching.debounce`): inside the window it is **suppressed** — one step per
  suppressed alert on the window's run, with a ``drift.suppressed`` notification; otherwise it **starts** a
  retrain: the new window is written with a compare-and-set (create-only when there is none, else on the
  version read), so of two alerts racing to open a window exactly one wins and the other, after re-reading,
  is suppressed. The run is ``drift-<model>-<window start>``; its step emits ``training.requested``.

The reconciler calls :func:`close_due_windows`: a window past its end is marked closed and its run gets a
``drift:window`` step with the number of alerts it suppressed (a new window may open at any time anyway:
the decision reads the window's end, not this flag).

Redeliveries land where the first delivery did: the alert's step (``drift/<incident>/<state>``) keeps the
decision in its result, and a window remembers the alert that opened it, so an alert whose first delivery
opened the window and crashed before its step starts the same run again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared import deadline as deadlines
from shared import log
from shared.chain.contracts import TRAINING_REQUESTED, Cause, TrainingRequested
from shared.chain.notices import notice
from shared.errors import ConfigError, InvalidInput, TransientError
from shared.events import DriftAlert, PubSubMessage, drift_alert, parse_timestamp
from shared.ingest.runs import drift_run_id
from shared.ledger import DocConflictError, RecordState
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, raise_for_retries
from shared.training.batching import DebouncePolicy, DriftWindow, debounce

WINDOWS = "windows"
#: Compare-and-set rounds before the decision is left to a redelivery (each lost round means another alert
#: just opened a window, so the next read decides "suppress").
MAX_DECISION_ROUNDS = 5
LEDGER_SECONDS = 10.0
#: Open windows looked at per reconcile tick (one per model at most).
MAX_WINDOWS = 200
SUPPRESSED_STEP = "drift:suppressed:"

Action = Literal["start", "suppress"]


@dataclass(frozen=True)
class Decision:
    """What one open alert does: start the run of a new window, or be suppressed onto the current one."""

    action: Action
    run_id: str
    opened_at: datetime
    closes_at: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "action": self.action,
            "run_id": self.run_id,
            "window_start": self.opened_at.isoformat(),
            "window_closes_at": self.closes_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision | None:
        """The decision a completed step stored; None when it holds none (an older or a failed step)."""
        action = data.get("action")
        if action not in ("start", "suppress"):
            return None
        opened = parse_timestamp(data.get("window_start"))
        closes = parse_timestamp(data.get("window_closes_at"))
        if opened is None or closes is None:
            return None
        return cls("start" if action == "start" else "suppress", str(data.get("run_id", "")), opened, closes)


def alert_key(alert: DriftAlert) -> str:
    """The alert's step key: one per incident and state, so a re-sent notification is the same alert."""
    return f"drift/{alert.incident_id}/{alert.state.lower()}"


def parse_alert(message: PubSubMessage) -> DriftAlert:
    """The drift alert a message carries; a plain alert without an id is known by the message id."""
    return drift_alert(message.json(), default_id=f"message-{message.message_id}")


def window_document(
    model: str, key: str, alert: DriftAlert, opened_at: datetime, policy: DebouncePolicy
) -> dict[str, Any]:
    return {
        "model": model,
        "run_id": drift_run_id(model, opened_at),
        "opened_at": opened_at.isoformat(),
        "closes_at": (opened_at + policy.window).isoformat(),
        "alert": key,
        "incident": alert.incident_id,
        "closed": False,
    }


def decide(
    current: Mapping[str, Any] | None,
    model: str,
    key: str,
    received_at: datetime,
    policy: DebouncePolicy,
) -> tuple[Decision, DriftWindow | None]:
    """The decision for alert ``key`` given the model's window document (pure); the window to write, if a
    new one opens."""
    window = _window(current, model)
    if window is not None and current is not None and current.get("alert") == key:
        # This alert opened the window (an earlier delivery that crashed before its step): start it again.
        return Decision("start", window.run_id, window.opened_at, window.closes_at(policy)), None
    verdict = debounce(model, key, received_at, window, policy)
    if verdict.action == "suppress":
        opened = verdict.window.opened_at
        return Decision("suppress", verdict.run_id, opened, verdict.window.closes_at(policy)), None
    opened = received_at
    fresh = DriftWindow(model, drift_run_id(model, opened), opened)
    return Decision("start", fresh.run_id, opened, fresh.closes_at(policy)), fresh


def _window(current: Mapping[str, Any] | None, model: str) -> DriftWindow | None:
    if current is None:
        return None
    opened = parse_timestamp(current.get("opened_at"))
    run_id = current.get("run_id")
    if opened is None or not isinstance(run_id, str) or not run_id:
        log.error("drift window document is malformed, replaced", model=model)
        return None
    return DriftWindow(model, run_id, opened)


def handle_alert(
    runtime: Runtime, alert: DriftAlert, *, received_at: datetime, causation_id: str = ""
) -> str:
    """Start, suppress or ignore one alert; returns ``start``, ``suppress`` or ``closed``."""
    if not alert.is_open:
        log.info("closed drift incident, nothing to do", incident=alert.incident_id, model=alert.model)
        return "closed"
    model = alert.model
    if not model:
        raise InvalidInput("drift alert", ["model: no `model` label on the alert policy, metric or resource"])
    spec = runtime.config.chain.model(model)
    if spec is None:
        known = ", ".join(m.name for m in runtime.config.chain.models) or "none"
        raise ConfigError(
            f"drift alert for unknown model {model!r}", [f"model: {model!r} is not in spec.models ({known})"]
        )
    key = alert_key(alert)
    decision = _previous(runtime, key) or _decide(runtime, alert, model, key, received_at, spec.drift)
    step = _step(alert, model, key, decision, causation_id)
    result = runtime.steps().run(step)
    raise_for_retries([result], f"drift alert {alert.incident_id}")
    log.info(
        "drift alert handled",
        run_id=decision.run_id,
        model=model,
        incident=alert.incident_id,
        action=decision.action,
        outcome=result.outcome.value,
    )
    return decision.action


def _previous(runtime: Runtime, key: str) -> Decision | None:
    """The decision a completed step for this alert took (a redelivery must not decide again)."""
    record = runtime.ledger.get(key, timeout=deadlines.current().timeout(LEDGER_SECONDS))
    if record is None or record.state is not RecordState.COMPLETED or not record.result:
        return None
    stored = record.result.get("result")
    return Decision.from_json(stored) if isinstance(stored, Mapping) else None


def _decide(
    runtime: Runtime, alert: DriftAlert, model: str, key: str, received_at: datetime, policy: DebouncePolicy
) -> Decision:
    ledger = runtime.ledger
    for _ in range(MAX_DECISION_ROUNDS):
        timeout = deadlines.current().timeout(LEDGER_SECONDS)
        current = ledger.get_doc(WINDOWS, model, timeout=timeout)
        decision, opened = decide(current.data if current else None, model, key, received_at, policy)
        if opened is None:
            return decision
        document = window_document(model, key, alert, opened.opened_at, policy)
        try:
            if current is None:
                ledger.put_doc(WINDOWS, model, document, create_only=True, timeout=timeout)
            else:
                ledger.put_doc(WINDOWS, model, document, expect_version=current.version, timeout=timeout)
        except DocConflictError:
            continue  # another alert opened a window first: read it and decide again
        return decision
    raise TransientError(f"the drift window of model {model!r} kept changing; the alert will be redelivered")


def _step(alert: DriftAlert, model: str, key: str, decision: Decision, causation_id: str) -> Step:
    facts = {
        "incident": alert.incident_id,
        "policy": alert.policy_name,
        "metric": alert.metric_type,
        "value": alert.observed_value,
        "threshold": alert.threshold_value,
    }
    result = {**decision.to_json(), **facts}
    cause = {"cause": Cause.DRIFT.value, "model": model, "incident": alert.incident_id}
    payload = {"model": model, "incident": alert.incident_id, "state": alert.state.lower()}
    emit: Emit
    if decision.action == "start":
        request = TrainingRequested(model=model, cause=Cause.DRIFT, detail={**facts, **decision.to_json()})
        emit, name = Emit(TRAINING_REQUESTED, request.to_json()), "drift:alert"
    else:
        started = decision.opened_at.astimezone(UTC)
        metric = alert.metric_type or "metric"
        emit = notice(
            "drift.suppressed",
            f"Drift alert for {model} suppressed: a retrain started at {started:%Y-%m-%d %H:%M:%S}Z",
            text=(
                f"{metric} = {alert.observed_value} (threshold {alert.threshold_value}); one drift retrain"
                f" per window, this one closes {decision.closes_at.astimezone(UTC).isoformat()}"
            ),
            model=model,
            context={"run_id": decision.run_id, **facts},
        )
        name = SUPPRESSED_STEP + alert.incident_id
    return Step(
        key=key,
        payload=payload,
        effect=lambda _context: Effect(result, [emit]),
        name=name,
        run_id=decision.run_id,
        causation_id=causation_id,
        cause=cause,
    )


def close_due_windows(runtime: Runtime, now: datetime) -> list[str]:
    """Close every window past its end at ``now``: its run records how many alerts it suppressed.

    Returns the run ids of the windows closed (now or by an overlapping tick). One step per window
    (``drift-window/<run_id>``), so overlapping ticks record it once.
    """
    closed: list[str] = []
    documents = runtime.ledger.query_docs(
        WINDOWS,
        equals={"closed": False},
        limit=MAX_WINDOWS,
        timeout=deadlines.current().timeout(LEDGER_SECONDS),
    )
    for document in documents:
        model = document.doc_id
        closes_at = parse_timestamp(document.data.get("closes_at"))
        run_id = document.data.get("run_id")
        if closes_at is None or not isinstance(run_id, str) or not run_id or now < closes_at:
            continue
        step = Step(
            key=f"drift-window/{run_id}",
            payload={"model": model, "run_id": run_id},
            effect=functools.partial(_close_window, runtime, model, run_id),
            name="drift:window",
            run_id=run_id,
            cause={"cause": Cause.DRIFT.value, "model": model},
        )
        result = runtime.steps().run(step)
        if result.outcome in (Outcome.DONE, Outcome.DUPLICATE):
            closed.append(run_id)
    return closed


def _close_window(runtime: Runtime, model: str, run_id: str, context: StepContext) -> Effect:
    ledger = runtime.ledger

    def timeout() -> float:
        return context.deadline.timeout(LEDGER_SECONDS)

    run = ledger.get_run(run_id, timeout=timeout())
    suppressed = sorted(
        step.name.removeprefix(SUPPRESSED_STEP)
        for step in (run.steps if run else ())
        if step.name.startswith(SUPPRESSED_STEP)
    )
    current = ledger.get_doc(WINDOWS, model, timeout=timeout())
    if current is not None and current.data.get("run_id") == run_id and not current.data.get("closed"):
        # On the version read: a window opened meanwhile by a new alert is not marked closed by mistake.
        ledger.put_doc(
            WINDOWS,
            model,
            {**current.data, "closed": True},
            expect_version=current.version,
            timeout=timeout(),
        )
    return Effect({"model": model, "suppressed": len(suppressed), "incidents": suppressed[:50]})
