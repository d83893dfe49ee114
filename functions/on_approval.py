"""``on_approval``: an approval decision on the approvals topic → ``rollout.requested`` or a rejection
(``shared.approval.decide``).

The message is the bare approval decision contract (``shared.events.approval``, docs/events.md) as people,
the operator's ``approve`` / ``reject`` and ``on_training_state``'s automatic approval publish it. A
refused decision (approver off the list, unknown, superseded or already decided candidate) is recorded as
rejected with its reason and acknowledged; a redelivery of an applied one is a duplicate.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.approval.decide import channel_of, decide
from shared.events import PubSubMessage, approval_decision
from shared.function import pubsub_endpoint
from shared.runtime import Runtime


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    decision = approval_decision(message.json())
    decided = decide(runtime, decision, channel_of(decision), causation_id=message.message_id)
    log.info(
        "approval decision handled",
        function="on_approval",
        run_id=decision.run_id,
        message_id=message.message_id,
        outcome=decided.message,
    )


@functions_framework.http
def on_approval(request: Any) -> tuple[str, int]:
    """Entry point: a Pub/Sub push (or Eventarc ``messagePublished`` CloudEvent) from the approvals topic."""
    return pubsub_endpoint("on_approval", request, handle)
