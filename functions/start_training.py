"""``start_training``: ``training.requested`` → one Vertex AI CustomJob per run (``shared.chain.training``).

Redelivery, or a crash after the create call, never yields a second job: the step looks the job up by its
``run-id`` label before submitting. The job's end is learned by the reconciler (``poll_run``).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.chain import training
from shared.chain.contracts import parse_training_requested
from shared.events import PubSubMessage, envelope
from shared.function import pubsub_endpoint
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    event = envelope(message)
    request = parse_training_requested(event)
    result = training.start(runtime, event.run_id, request, causation_id=event.event_id)
    log.info(
        "training request handled",
        function="start_training",
        run_id=event.run_id,
        event_id=event.event_id,
        model=request.model,
        cause=request.cause.value,
        outcome=result.outcome.value,
        job=result.result.get("job", ""),
        image=result.result.get("image", ""),
        error=result.error,
    )


@functions_framework.http
def start_training(request: Any) -> tuple[str, int]:
    """Entry point: a Pub/Sub push or an Eventarc ``messagePublished`` CloudEvent of ``training.requested``
    (an HTTP function so that our adapter reads every delivery shape; see ``shared.function``)."""
    return pubsub_endpoint("start_training", request, handle)
