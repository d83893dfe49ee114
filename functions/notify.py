"""``notify``: notification events from Pub/Sub → Slack, Google Chat, generic webhooks, email."""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.events import PubSubMessage, envelope
from shared.function import run_pubsub
from shared.notify import deliver_notification, parse_notification
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    notification = parse_notification(envelope(message))
    config = runtime.config
    report = deliver_notification(
        notification,
        config.channels,
        runtime.ledger,
        runtime.transport,
        lease_seconds=config.lease_seconds,
        ttl_seconds=config.idempotency_ttl_seconds,
    )
    log.info(
        "notification handled",
        function="notify",
        run_id=notification.run_id,
        event_id=notification.event_id,
        kind=notification.kind,
        outcomes=dict(report.outcomes),
        errors=dict(report.errors),
    )


@functions_framework.cloud_event
def notify(cloud_event: Any) -> None:
    """Entry point: a ``messagePublished`` CloudEvent (Eventarc) or a raw Pub/Sub push, converted."""
    run_pubsub("notify", cloud_event, handle)
