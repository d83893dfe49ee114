"""``on_training_state``: ``training.state`` → gates → candidate model version → approval
(``shared.chain.evaluation``).

SUCCEEDED: the trainer's metrics against the model's gates and the champion's metrics read back from the
Model Registry; pass → a new version aliased ``candidate`` and an approval request (or an automatic approval
where the model's policy says so); fail → ``training.gate_failed`` and the run fails. FAILED / CANCELLED →
``training.failed`` with the job's error and the run fails.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.chain import evaluation
from shared.chain.contracts import parse_training_state
from shared.events import PubSubMessage, envelope
from shared.function import pubsub_endpoint
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    event = envelope(message)
    state = parse_training_state(event)
    outcome = evaluation.on_training_state(runtime, event.run_id, state, causation_id=event.event_id)
    log.info(
        "training state handled",
        function="on_training_state",
        run_id=event.run_id,
        event_id=event.event_id,
        model=state.model,
        job=state.job,
        state=state.state,
        outcome=outcome,
    )


@functions_framework.http
def on_training_state(request: Any) -> tuple[str, int]:
    """Entry point: a Pub/Sub push or an Eventarc ``messagePublished`` CloudEvent of ``training.state``
    (an HTTP function so that our adapter reads every delivery shape; see ``shared.function``)."""
    return pubsub_endpoint("on_training_state", request, handle)
