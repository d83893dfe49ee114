"""The approval request carries Approve / Reject buttons, and Slack and Google Chat render them so that a
click brings back exactly what ``on_chat_approval`` reads."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from shared.approval import chat, slack
from shared.approval.actions import approval_actions, parse_button_value
from shared.config import Channel, ChannelFilter
from shared.events import new_envelope
from shared.events.notification import parse_notification
from shared.notify.channels import render
from tests.functional.chain.test_on_training_state import finished, send, wrote_metrics
from tests.functional.chain.training_support import client, world

pytestmark = pytest.mark.functional

SLACK = Channel("team", "slack", "https://hooks.slack.com/x", ChannelFilter())
CHAT = Channel("room", "google_chat", "https://chat.googleapis.com/x", ChannelFilter())
PARAMETERS = {"run_id": "push-acme-churn-0123456789ab", "model": "churn", "version": "3"}


def requested(**extra: Any) -> Any:
    data = {
        "kind": "approval.requested",
        "title": "Approve churn version 3? <!channel>",
        "text": "gates passed",
        "actions": approval_actions("push-acme-churn-0123456789ab", "churn", "3"),
        **extra,
    }
    return parse_notification(new_envelope("notification", PARAMETERS["run_id"], data, event_id="evt-1"))


def test_on_training_states_approval_request_carries_the_buttons() -> None:
    with world() as env:
        wrote_metrics(env, accuracy=0.9)
        assert send(client("on_training_state"), finished()).status_code == 200
        [body] = env.notifications("approval.requested")
        [version] = env.ports.registry.list_versions("churn")
        actions = body["data"]["actions"]
        assert [action["name"] for action in actions] == ["approve", "reject"]
        assert all(
            action["parameters"]
            == {"run_id": body["run_id"], "model": "churn", "version": version.version_id}
            for action in actions
        )


def test_slack_renders_buttons_whose_value_is_what_the_click_handler_reads() -> None:
    rendered = render(SLACK, requested(links=[{"title": "run", "url": "https://example.com/r"}]))
    assert rendered.body is not None
    section, actions = rendered.body["blocks"]
    assert "&lt;!channel&gt;" in section["text"]["text"] and "<!channel>" not in rendered.body["text"]
    approve, reject, link = actions["elements"]
    assert (approve["action_id"], approve["style"], reject["action_id"], reject["style"]) == (
        "approve",
        "primary",
        "reject",
        "danger",
    )
    assert parse_button_value(approve["value"], "value") == PARAMETERS
    assert link["url"] == "https://example.com/r" and "value" not in link
    payload = {"type": "block_actions", "user": {"id": "U1"}, "actions": [reject]}
    clicked = slack.parse_click(urlencode({"payload": json.dumps(payload)}).encode(), "abc")
    assert clicked is not None and (clicked.decision, dict(clicked.parameters)) == ("reject", PARAMETERS)


def test_chat_renders_card_buttons_whose_parameters_come_back_in_card_clicked() -> None:
    rendered = render(CHAT, requested(links=[{"title": "bad", "url": "javascript:alert(1)"}]))
    assert rendered.body is not None
    [card] = rendered.body["cardsV2"]
    buttons = card["card"]["sections"][0]["widgets"][0]["buttonList"]["buttons"]
    assert [button["text"] for button in buttons] == ["Approve", "Reject"]  # the unsafe link is left out
    action = buttons[0]["onClick"]["action"]
    event = {
        "type": "CARD_CLICKED",
        "user": {"name": "users/1", "email": "a@example.com"},
        "action": {"actionMethodName": action["function"], "parameters": action["parameters"]},
    }
    clicked = chat.parse_click(json.dumps(event).encode())
    assert clicked is not None and (clicked.decision, dict(clicked.parameters)) == ("approve", PARAMETERS)


def test_a_notification_without_actions_renders_as_before() -> None:
    rendered = render(SLACK, requested(actions=[]))
    assert rendered.body is not None and "blocks" not in rendered.body
    chat_body = render(CHAT, requested(actions=[])).body
    assert chat_body is not None and "cardsV2" not in chat_body
