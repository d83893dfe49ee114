"""``on_drift_alert``: a drift alert from Pub/Sub → a retrain, debounced per model.

The alert is a Cloud Monitoring incident notification (a Pub/Sub notification channel, schema 1.2) or a
plain ``{model, metric, value, threshold}`` JSON. An open incident requests training at most once per model
per window (later alerts are suppressed and recorded on that run); a closed one starts nothing; an alert for
no known model is recorded as rejected and acknowledged. Logic: :mod:`shared.chain.drift`.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.chain import drift
from shared.events import PubSubMessage
from shared.function import pubsub_endpoint
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    alert = drift.parse_alert(message)
    # The publish time, not the clock: every redelivery of the message is decided at the same instant.
    received_at = message.publish_time or runtime.clock()
    drift.handle_alert(runtime, alert, received_at=received_at, causation_id=message.message_id)


@functions_framework.http
def on_drift_alert(request: Any) -> tuple[str, int]:
    """Entry point: a raw Pub/Sub push or a ``messagePublished`` CloudEvent (Eventarc, binary or structured).

    An HTTP function so that our adapter, not the framework's conversion, reads the body (see
    ``shared.function``): every delivery ends handled, recorded as rejected, or retried.
    """
    return pubsub_endpoint("on_drift_alert", request, handle)
