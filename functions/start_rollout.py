"""``start_rollout``: ``rollout.requested`` → the service's lease and the candidate revision at 0%
(``shared.chain.rollout``).

A redelivery is a duplicate (the run is in the service's history); a newer candidate supersedes the
active rollout. The rollout then advances on reconcile ticks, never by waiting here.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.chain import rollout
from shared.chain.contracts import parse_rollout_requested
from shared.events import PubSubMessage, envelope
from shared.function import pubsub_endpoint
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    event = envelope(message)
    request = parse_rollout_requested(event)
    outcome = rollout.start(runtime, event.run_id, request)
    log.info(
        "rollout request handled",
        function="start_rollout",
        run_id=event.run_id,
        event_id=event.event_id,
        service=request.service,
        model=request.model,
        version=request.version,
        cause=request.cause,
        outcome=outcome,
    )


@functions_framework.http
def start_rollout(request: Any) -> tuple[str, int]:
    """Entry point: a Pub/Sub push or an Eventarc ``messagePublished`` CloudEvent of ``rollout.requested``
    (an HTTP function so that our adapter reads every delivery shape; see ``shared.function``)."""
    return pubsub_endpoint("start_rollout", request, handle)
