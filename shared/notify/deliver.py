"""Delivering one notification: one idempotent step per accepting channel, on the step runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.config import Channel
from shared.errors import TransientError
from shared.events import Envelope
from shared.events.notification import Notification
from shared.notify.channels import channel_for
from shared.notify.transport import Transport
from shared.steps import Effect, Outcome, Step, StepContext, StepRunner

# What the report calls each step outcome (the words the logs and docs use for notifications).
_WORDS = {
    Outcome.DONE: "delivered",
    Outcome.FAILED: "failed",
    Outcome.DUPLICATE: "duplicate",
    Outcome.BUSY: "retry",
    Outcome.RETRY: "retry",
}


@dataclass(frozen=True)
class DeliveryReport:
    """What happened per channel: delivered, duplicate, filtered, failed (permanent), retry (transient)."""

    outcomes: Mapping[str, str]
    errors: Mapping[str, str]

    def channels(self, outcome: str) -> list[str]:
        return sorted(name for name, value in self.outcomes.items() if value == outcome)


def idempotency_payload(envelope: Envelope) -> dict[str, Any]:
    """What must be identical for two deliveries to count as the same notification (not ``occurred_at``)."""
    return {"type": envelope.type, "run_id": envelope.run_id, "data": dict(envelope.data)}


def step_key(notification: Notification, channel_name: str) -> str:
    return f"notify/{notification.event_id}/{channel_name}"


def step_name(notification: Notification, channel_name: str) -> str:
    """The step's name on the run: whole, so two events never merge into one step."""
    return f"notify:{notification.kind}:{channel_name}:{notification.event_id}"


def deliver_notification(
    notification: Notification, channels: tuple[Channel, ...], runner: StepRunner, transport: Transport
) -> DeliveryReport:
    """Deliver to every channel that accepts the notification, each at most once per event id.

    Each channel is its own step (``notify/EVENT_ID/CHANNEL``), so a redelivery after a partial failure only
    retries the channels that failed, and each delivery is recorded on the run by whichever delivery made it.
    A permanent channel failure (the webhook answers 404) is recorded and not retried; a transient one makes
    the whole event retry (:class:`TransientError`).
    """
    payload = idempotency_payload(notification.envelope)
    outcomes: dict[str, str] = {}
    errors: dict[str, str] = {}
    for config in channels:
        channel = channel_for(config)
        if not channel.accepts(notification):
            outcomes[config.name] = "filtered"
            continue

        def send(context: StepContext, config: Channel = config) -> Effect:
            transport.deliver(config, channel_for(config).render(notification))
            return Effect({"channel": config.name, "attempt": context.attempt})

        result = runner.run(
            Step(
                key=step_key(notification, config.name),
                payload=payload,
                effect=send,
                name=step_name(notification, config.name),
                run_id=notification.run_id,
                causation_id=notification.event_id,
                cause={"notification": notification.event_id, "kind": notification.kind},
            )
        )
        outcomes[config.name] = _WORDS[result.outcome]
        if result.error:
            errors[config.name] = result.error
    report = DeliveryReport(outcomes, errors)
    if report.channels("retry"):
        raise TransientError(
            "notification not delivered yet to "
            + ", ".join(f"{name} ({errors.get(name, '')})" for name in report.channels("retry"))
        )
    return report
