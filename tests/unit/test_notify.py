"""Notification rendering, filtering and at-most-once delivery per channel, with fakes."""

from __future__ import annotations

import pytest

from shared.config import parse_config
from shared.deadline import Deadline
from shared.errors import PermanentError, TransientError
from shared.events import new_envelope
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport, accepts, deliver_notification, parse_notification, render
from shared.publisher import InMemoryPublisher
from shared.steps import StepRunner

pytestmark = pytest.mark.unit


def make_config(channels: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {"project": "p", "notifications": {"channels": channels}},
        },
        "test.yaml",
        env={},
    )


def notification(kind: str = "build.failed", severity: str = "error", **extra: object):  # type: ignore[no-untyped-def]
    data = {
        "kind": kind,
        "severity": severity,
        "title": "Build of trainer failed",
        "text": "step 2 exited 1",
        "labels": {"model": "churn"},
        "context": {"repo": "acme/ml", "commit": "abc1234", "metrics": {"auc": 0.91234}},
        "links": [{"title": "logs", "url": "https://console.example/logs"}],
        **extra,
    }
    return parse_notification(new_envelope("notification", "run-42", data, event_id="evt-1"))


CHANNELS = [
    {"name": "slack", "type": "slack", "url": "https://hooks.slack.example/1"},
    {
        "name": "chat",
        "type": "google_chat",
        "url": "https://chat.example/1",
        "minSeverity": "warning",
        "events": ["rollout.*"],
    },
    {
        "name": "audit",
        "type": "webhook",
        "url": "https://audit.example/in",
        "labels": {"model": "churn"},
        "template": "{{ kind }} for {{ context.repo }}@{{ context.commit }}",
    },
]


def test_default_slack_rendering_has_title_facts_links_and_run() -> None:
    config = make_config(CHANNELS)
    rendered = render(config.channels[0], notification())
    assert rendered.body is not None
    text = rendered.body["text"]
    assert "*Build of trainer failed*" in text
    assert "• repo: acme/ml" in text and "• metric auc: 0.9123" in text
    assert "<https://console.example/logs|logs>" in text
    assert text.endswith("run run-42")
    assert text.splitlines() == [
        "🔴 *Build of trainer failed*",
        "step 2 exited 1",
        "• repo: acme/ml",
        "• commit: abc1234",
        "• metric auc: 0.9123",
        "<https://console.example/logs|logs>",
        "run run-42",
    ]


def test_custom_template_and_webhook_payload() -> None:
    config = make_config(CHANNELS)
    rendered = render(config.channels[2], notification())
    assert rendered.body is not None
    assert rendered.body["text"] == "build.failed for acme/ml@abc1234"
    assert rendered.body["notification"]["labels"] == {"model": "churn"}
    assert rendered.body["run_id"] == "run-42"


def test_template_referring_to_missing_field_is_a_permanent_error() -> None:
    config = make_config(
        [{"name": "w", "type": "webhook", "url": "https://x", "template": "{{ context.nope }}"}]
    )
    with pytest.raises(PermanentError, match="channel w: template failed"):
        render(config.channels[0], notification())


def test_filters() -> None:
    slack, chat, audit = make_config(CHANNELS).channels
    assert accepts(slack, notification())
    assert not accepts(chat, notification())  # kind does not match rollout.*
    assert accepts(chat, notification(kind="rollout.rolled_back", severity="warning"))
    assert not accepts(chat, notification(kind="rollout.promoted", severity="info"))  # below warning
    assert not accepts(audit, notification(labels={"model": "other"}))


def test_invalid_notification_lists_problems() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_notification(new_envelope("notification", "r", {"severity": "loud", "links": [{"x": 1}]}))
    assert caught.value.problems == [
        "data.kind: required (e.g. 'build.failed')",
        "data.severity: 'loud' is not one of debug, info, warning, error, critical",
        "data.title: required",
        "data.links[0]: must be an object with a url",
    ]


def deliver(config, ledger, transport, note=None):  # type: ignore[no-untyped-def]
    runner = StepRunner(ledger, InMemoryPublisher(), config, Deadline(30))
    return deliver_notification(note or notification(), config.channels, runner, transport)


def test_delivers_once_per_channel_even_when_delivered_twice() -> None:
    config, ledger, transport = make_config(CHANNELS), InMemoryLedger(), RecordingTransport()
    first = deliver(config, ledger, transport)
    second = deliver(config, ledger, transport)
    assert first.channels("delivered") == ["audit", "slack"]
    assert first.channels("filtered") == ["chat"]
    assert second.channels("duplicate") == ["audit", "slack"]
    assert [name for name, _ in transport.delivered] == ["slack", "audit"]
    run = ledger.get_run("run-42")
    assert run is not None and run.steps[0].status.value == "SUCCEEDED"


def test_transient_failure_retries_only_the_failed_channel() -> None:
    config, ledger, transport = make_config(CHANNELS), InMemoryLedger(), RecordingTransport()
    transport.failures["audit"] = TransientError("HTTP 503")
    with pytest.raises(TransientError, match="audit"):
        deliver(config, ledger, transport)
    assert [name for name, _ in transport.delivered] == ["slack"]
    del transport.failures["audit"]
    report = deliver(config, ledger, transport)
    assert report.channels("delivered") == ["audit"] and report.channels("duplicate") == ["slack"]
    assert [name for name, _ in transport.delivered] == ["slack", "audit"]


def test_permanent_channel_failure_is_recorded_not_retried() -> None:
    config, ledger, transport = make_config(CHANNELS), InMemoryLedger(), RecordingTransport()
    transport.failures["slack"] = PermanentError("HTTP 404 from the webhook")
    report = deliver(config, ledger, transport)
    assert report.channels("failed") == ["slack"]
    assert "404" in report.errors["slack"]
    assert deliver(config, ledger, transport).channels("duplicate") == ["audit", "slack"]
    run = ledger.get_run("run-42")
    assert run is not None and run.steps[0].status.value == "FAILED"


def test_same_event_id_with_different_content_is_refused() -> None:
    config, ledger, transport = make_config(CHANNELS), InMemoryLedger(), RecordingTransport()
    deliver(config, ledger, transport)
    with pytest.raises(Exception, match="different payload") as caught:
        deliver(config, ledger, transport, notification(title="something else"))
    assert getattr(caught.value, "retryable", True) is False
