"""``on_chat_approval`` (HTTP): an Approve / Reject click in Slack or Google Chat → the same decision as
``on_approval`` (``shared.approval.decide``), answered to the person who clicked.

* Slack (``X-Slack-Signature`` present): ``shared.approval.slack`` verifies the signature over the raw bytes
  (300 s window, slack_sdk) and refuses a replay before the form body is read.
* Google Chat (otherwise): ``shared.approval.chat`` verifies the bearer token, then reads ``CARD_CLICKED``.

Forged, stale, replayed or unauthenticated → 401 (recorded as rejected, nothing changed). A verified click
is answered 200 with what happened, or why nothing did (approver off the list, unknown, superseded or
already decided candidate): Slack shows ``text`` to the person only, Chat posts a new message.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared import log
from shared.approval import chat, slack
from shared.approval.decide import Channel, DecisionRefused, decide
from shared.events import approval_decision
from shared.function import HttpAnswer, HttpRequest, run_http
from shared.notify.escaping import escape_markup
from shared.runtime import Runtime

MAX_BODY_BYTES = 512 * 1024


def _decision(parameters: Any, decision: str, approver: str, nonce: str, channel: Channel, now: str) -> Any:
    return approval_decision(
        {
            **dict(parameters),
            "decision": decision,
            "approver": approver,
            "reason": f"{decision} button in {channel.value.replace('_', ' ')}",
            "nonce": nonce,
            "decided_at": now,
        }
    )


def _apply(runtime: Runtime, decision: Any, channel: Channel, identities: tuple[str, ...]) -> str:
    try:
        return decide(runtime, decision, channel, identities, causation_id=decision.nonce).message
    except DecisionRefused as refused:
        log.warning(
            "approval refused",
            function="on_chat_approval",
            run_id=decision.run_id,
            channel=channel.value,
            approver=decision.approver,
            refusal=refused.refusal.value,
            reason=str(refused),
        )
        return f"Not done: {refused}"


def handle(request: HttpRequest, runtime: Runtime) -> HttpAnswer:
    now = runtime.clock()
    stamp = now.isoformat().replace("+00:00", "Z")
    if slack.is_slack(request.headers):
        timestamp, signature = slack.verify(request.headers, request.body, now)
        nonce = slack.remember(runtime, timestamp, signature)
        click = slack.parse_click(request.body, nonce)
        if click is None:
            return {}, 200  # another kind of interaction: acknowledged, nothing to do
        approver = click.identities[-1]  # the readable name when Slack sent one
        decision = _decision(click.parameters, click.decision, approver, click.nonce, Channel.SLACK, stamp)
        text = escape_markup(_apply(runtime, decision, Channel.SLACK, click.identities))
        slack.tell(runtime, click, text)
        return slack.answer(text), 200
    chat.verify(request.headers)
    found = chat.parse_click(request.body)
    if found is None:
        return {}, 200
    decision = _decision(
        found.parameters, found.decision, found.identities[0], found.nonce, Channel.GOOGLE_CHAT, stamp
    )
    return chat.answer(escape_markup(_apply(runtime, decision, Channel.GOOGLE_CHAT, found.identities))), 200


@functions_framework.http
def on_chat_approval(request: Any) -> HttpAnswer:
    """Entry point: Slack's interactivity request URL and the Google Chat app's HTTP endpoint."""
    return run_http("on_chat_approval", request, handle, max_body_bytes=MAX_BODY_BYTES)
