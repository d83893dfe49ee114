"""``on_build_status``: Cloud Build's ``cloud-builds`` messages → the chain's next step for our builds.

A trainer image built → ``training.requested`` with the image digest; a server image built → recorded on
the run; a failed, timed-out, cancelled or expired build → a ``build.failed`` notification and the run
FAILED. Builds that are not ours and non-terminal statuses are acknowledged and ignored. The decision and
the step are in ``shared.chain.builds`` (shared with the reconciler, so a lost message changes nothing).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.chain.builds import BuildFacts, settle
from shared.events import PubSubMessage, build_message
from shared.function import pubsub_endpoint
from shared.runtime import Runtime
from shared.steps import raise_for_retries


def handle(message: PubSubMessage, runtime: Runtime) -> None:
    facts = BuildFacts.from_message(build_message(message))
    judgement, result = settle(runtime, facts, causation_id=message.message_id)
    fields = {"function": "on_build_status", "build_id": facts.build_id, "status": facts.status.value}
    if result is None:
        log.info("build status ignored", **fields, reason=judgement.reason)
        return
    raise_for_retries([result], f"build {facts.build_id} ({facts.status.value})")
    log.info(
        "build status handled",
        **fields,
        run_id=judgement.run_id,
        image=judgement.image,
        verdict=judgement.verdict.value,
        outcome=result.outcome.value,
        published=list(result.published),
    )


@functions_framework.http
def on_build_status(request: Any) -> tuple[str, int]:
    """Entry point: a push subscription on ``cloud-builds`` (raw push or an Eventarc ``messagePublished``
    CloudEvent); an HTTP function so our adapter reads every delivery (see ``shared.function``)."""
    return pubsub_endpoint("on_build_status", request, handle)
