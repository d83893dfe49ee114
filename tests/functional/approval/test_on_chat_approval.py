"""``on_chat_approval`` in-process: signed Slack clicks and Google Chat CARD_CLICKED events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.approval import chat
from shared.errors import Unauthorized
from tests.functional.approval.support import (
    RUN,
    SECRET,
    approval_config,
    chat_event,
    register_candidate,
    rollouts,
    slack_request,
)
from tests.functional.chain.training_support import NOW, World, client, world

pytestmark = pytest.mark.functional

CHAT_TOKEN = "local-chat-token-0123456789"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("CHAT_VERIFICATION_TOKEN", CHAT_TOKEN)
    monkeypatch.delenv("CHAT_AUDIENCE", raising=False)
    with world(approval_config(approvers=["slack:U0ALICE", "alice@example.com"])) as current:
        yield current


@pytest.fixture
def function() -> Any:
    return client("on_chat_approval")


def click(function: Any, body: bytes, headers: dict[str, str]) -> Any:
    return function.post("/", data=body, headers=headers)


def nothing_changed(env: World) -> None:
    assert rollouts(env) == []
    assert env.run(RUN).step("approval:decided") is None


def test_a_valid_slack_click_requests_one_rollout_even_when_clicked_twice(env: World, function: Any) -> None:
    version = register_candidate(env)
    first = click(function, *slack_request(version.version_id))
    assert first.status_code == 200
    assert first.get_json() == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": f"churn version {version.version_id} approved; rollout requested on churn-predictor.",
    }
    # A second click is a new request (its own timestamp and signature), not a replay.
    second = click(function, *slack_request(version.version_id, timestamp=int(NOW.timestamp()) - 1))
    assert second.status_code == 200 and "already approved by slack:u0alice" in second.get_json()["text"]
    [event] = rollouts(env)
    assert event["data"]["approved_by"] == "slack:u0alice"
    told = env.runtime.transport.delivered  # type: ignore[attr-defined]
    assert [(name, rendered.body["text"]) for name, rendered in told] == [
        ("slack-response", first.get_json()["text"]),
        ("slack-response", second.get_json()["text"]),
    ]
    result = env.step(RUN, "approval:decided").detail["result"]
    assert (result["decision"], result["channel"]) == ("approve", "slack")


def test_a_forged_slack_signature_changes_nothing(env: World, function: Any) -> None:
    version = register_candidate(env)
    body, headers = slack_request(version.version_id, secret="not-the-secret")
    response = click(function, body, headers)
    assert response.status_code == 401 and "does not match" in response.get_json()["problems"][0]
    nothing_changed(env)
    assert env.ledger.list_rejected()[0].reason == "unauthorized"


def test_a_tampered_body_changes_nothing(env: World, function: Any) -> None:
    version = register_candidate(env)
    body, headers = slack_request(version.version_id, action="reject")
    response = click(function, body.replace(b"reject", b"approve"), headers)
    assert response.status_code == 401
    nothing_changed(env)


def test_a_stale_slack_timestamp_changes_nothing(env: World, function: Any) -> None:
    version = register_candidate(env)
    response = click(function, *slack_request(version.version_id, timestamp=int(NOW.timestamp()) - 301))
    assert response.status_code == 401 and "stale" in response.get_json()["problems"][0]
    nothing_changed(env)


def test_a_replayed_slack_request_is_refused_inside_the_window(env: World, function: Any) -> None:
    version = register_candidate(env, server_image="")
    body, headers = slack_request(version.version_id, action="reject", user="U0BOB")  # off the list
    assert click(function, body, headers).status_code == 200
    nothing_changed(env)
    replay = click(function, body, headers)
    assert replay.status_code == 401 and "replayed" in replay.get_json()["problems"][0]
    nothing_changed(env)


def test_a_slack_approver_off_the_list_is_told_and_changes_nothing(env: World, function: Any) -> None:
    version = register_candidate(env)
    response = click(function, *slack_request(version.version_id, user="U0MALLORY"))
    assert response.status_code == 200
    assert response.get_json()["text"] == "Not done: slack:u0mallory may not decide on model churn"
    nothing_changed(env)


def test_a_superseded_candidate_is_told_back_in_slack(env: World, function: Any) -> None:
    old = register_candidate(env)
    register_candidate(env, "data-churn-b2")
    response = click(function, *slack_request(old.version_id))
    assert "superseded by version 2 (run data-churn-b2)" in response.get_json()["text"]
    nothing_changed(env)


def test_a_slack_rejection_marks_the_candidate(env: World, function: Any) -> None:
    version = register_candidate(env)
    response = click(function, *slack_request(version.version_id, action="reject"))
    assert "rejected; the run is cancelled" in response.get_json()["text"]
    assert "candidate" not in env.ports.registry.list_versions("churn")[0].aliases
    assert rollouts(env) == [] and len(env.notifications("approval.rejected")) == 1


def test_without_the_signing_secret_slack_is_refused_as_config(
    env: World, function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = register_candidate(env)
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    response = click(function, *slack_request(version.version_id))
    assert response.status_code == 500 and response.get_json()["reason"] == "config"
    nothing_changed(env)


def chat_click(function: Any, event: dict[str, Any], token: str | None = CHAT_TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return function.post("/", data=json.dumps(event), headers={**headers, "Content-Type": "application/json"})


def test_a_chat_card_click_with_the_token_approves_once(env: World, function: Any) -> None:
    version = register_candidate(env)
    first = chat_click(function, chat_event(version.version_id))
    assert first.status_code == 200
    assert first.get_json() == {
        "actionResponse": {"type": "NEW_MESSAGE"},
        "text": f"churn version {version.version_id} approved; rollout requested on churn-predictor.",
    }
    assert "already approved" in chat_click(function, chat_event(version.version_id)).get_json()["text"]
    [event] = rollouts(env)
    assert event["data"]["approved_by"] == "alice@example.com"
    assert env.step(RUN, "approval:decided").detail["result"]["channel"] == "google_chat"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_chat_click_without_the_token_changes_nothing(env: World, function: Any, token: str | None) -> None:
    version = register_candidate(env)
    response = chat_click(function, chat_event(version.version_id), token)
    assert response.status_code == 401
    nothing_changed(env)


def test_a_chat_user_off_the_list_is_told(env: World, function: Any) -> None:
    version = register_candidate(env)
    response = chat_click(function, chat_event(version.version_id, email="eve@example.com"))
    assert response.get_json()["text"] == "Not done: eve@example.com may not decide on model churn"
    nothing_changed(env)


def test_other_chat_events_are_acknowledged_and_ignored(env: World, function: Any) -> None:
    register_candidate(env)
    response = chat_click(
        function, {"type": "MESSAGE", "message": {"text": "hi"}, "user": {"name": "users/1"}}
    )
    assert (response.status_code, response.get_json()) == (200, {})
    nothing_changed(env)


def test_production_chat_tokens_are_verified_by_google_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CHAT_AUDIENCE, the token goes to id_token.verify_oauth2_token with that audience, and only
    Google Chat's own identity is accepted."""
    seen: list[tuple[str, str]] = []

    def fake_verify(token: str, request: Any, audience: str) -> dict[str, Any]:
        seen.append((token, audience))
        if token == "expired":
            raise ValueError("Token expired")
        email = "chat@system.gserviceaccount.com" if token == "good" else "someone@example.com"
        return {"email": email, "email_verified": True, "aud": audience}

    from google.oauth2 import id_token

    monkeypatch.setattr(id_token, "verify_oauth2_token", fake_verify)
    environ = {"CHAT_AUDIENCE": "https://example.com/on_chat_approval"}
    assert chat.verify({"Authorization": "Bearer good"}, environ) == "google"
    assert seen == [("good", "https://example.com/on_chat_approval")]
    for token in ("expired", "impostor"):
        with pytest.raises(Unauthorized):
            chat.verify({"Authorization": f"Bearer {token}"}, environ)
    with pytest.raises(Unauthorized) as caught:
        chat.verify({"Authorization": "Bearer good"}, {})
    assert "no verifier configured" in caught.value.problems[0]
