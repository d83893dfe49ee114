"""``notify``: notification events from Pub/Sub → Slack, Google Chat, generic webhooks, email."""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.events import PubSubMessage, envelope
from shared.function import pubsub_endpoint
from shared.notify import deliver_notification, parse_notification
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    notification = parse_notification(envelope(message))
    report = deliver_notification(notification, runtime.config.channels, runtime.steps(), runtime.transport)
    log.info(
        "notification handled",
        function="notify",
        run_id=notification.run_id,
        event_id=notification.event_id,
        kind=notification.kind,
        outcomes=dict(report.outcomes),
        errors=dict(report.errors),
    )


@functions_framework.http
def notify(request: Any) -> tuple[str, int]:
    """Entry point: a raw Pub/Sub push or a ``messagePublished`` CloudEvent (Eventarc, binary or structured).

    An HTTP function so that our adapter, not the framework's conversion, reads the body (see
    ``shared.function``): every delivery ends recorded or retried, never as the framework's 400.
    """
    return pubsub_endpoint("notify", request, handle)
