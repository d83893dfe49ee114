"""``on_git_push``: a signed GitHub / GitLab push webhook → one Cloud Build build per touched image.

Answers at once (it never waits on a build): 202 with the run id when builds were started, 200 for a
ping, a duplicate delivery or a push that touches nothing (the reason in the body), 401 for a missing or
forged signature (nothing parsed, nothing started), 400/413 for a body that cannot be a push, 5xx for
"retry" (the steps make a retry start nothing twice). See ``shared.chain.push``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.chain.push import (
    MAX_BODY_BYTES,
    answer,
    parse_push,
    pong,
    push_rules,
    start_builds,
    webhook_secrets,
)
from shared.function import HttpAnswer, HttpRequest, run_http
from shared.ingest.routing import route
from shared.ingest.signatures import authenticate
from shared.runtime import Runtime


def handle(request: HttpRequest, runtime: Runtime) -> HttpAnswer:
    # The signature is checked over the raw bytes before anything in them is looked at.
    delivery = authenticate(request.body, request.headers, webhook_secrets())
    if delivery.is_ping:
        return pong(delivery, request.body), 200
    if not delivery.is_push:
        return {"ignored": "event_not_handled", "reason": f"{delivery.event!r} events start nothing"}, 200
    push = parse_push(delivery, request.body)
    decision = route(push, push_rules(runtime.config))
    fields = {"function": "on_git_push", "delivery": delivery.delivery_id, "repo": push.repository}
    if decision.ignored is not None:
        log.info(
            "push ignored", **fields, ref=push.ref, ignored=decision.ignored.value, reason=decision.reason
        )
        return {**decision.to_json(), "delivery": delivery.delivery_id}, 200
    run_id, planned, results = start_builds(runtime, push, decision, delivery)
    body, status = answer(run_id, decision, planned, results)
    log.info("push handled", **fields, run_id=run_id, commit=push.after, builds=body["builds"])
    return body, status


@functions_framework.http
def on_git_push(request: Any) -> HttpAnswer:
    """Entry point: the webhook URL given to GitHub (secret ``GITHUB_WEBHOOK_SECRET``) or GitLab (secret
    token ``GITLAB_WEBHOOK_TOKEN``)."""
    return run_http("on_git_push", request, handle, max_body_bytes=MAX_BODY_BYTES)
