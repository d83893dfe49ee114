"""Event data cannot become markup in Slack or Chat text, and only http(s) links are ever rendered."""

from __future__ import annotations

import pytest

from shared.config import parse_config
from shared.events import new_envelope
from shared.notify import parse_notification, render

pytestmark = pytest.mark.unit

HOSTILE_TITLE = "<!channel> <https://evil.example|click> & <users/all>"


def channels():  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "p",
                "notifications": {
                    "channels": [
                        {"name": "slack", "type": "slack", "url": "https://hooks.example/s"},
                        {"name": "chat", "type": "google_chat", "url": "https://chat.example/c"},
                        {"name": "hook", "type": "webhook", "url": "https://hook.example/h"},
                        {
                            "name": "mail",
                            "type": "email",
                            "smtp": {"host": "localhost", "port": 25, "from": "a@b.c", "to": ["d@e.f"]},
                        },
                        {
                            "name": "custom",
                            "type": "slack",
                            "url": "https://hooks.example/c",
                            "template": "<{{ context.repo }}|repo> {{ title }}",
                        },
                    ]
                },
            },
        },
        "t.yaml",
        env={},
    ).channels


def note(**data: object):  # type: ignore[no-untyped-def]
    body = {"kind": "build.failed", "title": HOSTILE_TITLE, **data}
    return parse_notification(new_envelope("notification", "r-1", body, event_id="e-1"))


@pytest.mark.parametrize("index", [0, 1])
def test_slack_and_chat_escape_mentions_and_links_in_event_data(index: int) -> None:
    rendered = render(channels()[index], note(text="ping <!here>", context={"repo": "<@U123>"}))
    assert rendered.body is not None
    text = rendered.body["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<users/all>" not in text
    assert "<https://evil.example|click>" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; &lt;users/all&gt;" in text
    assert "ping &lt;!here&gt;" in text


def test_template_markup_stays_but_values_in_it_are_escaped() -> None:
    rendered = render(channels()[4], note(context={"repo": "x> <!channel"}))
    assert rendered.body is not None
    assert rendered.body["text"].startswith("<x&gt; &lt;!channel|repo> ")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "//no-scheme",
    ],
)
def test_only_http_links_are_rendered(url: str) -> None:
    notification = note(
        links=[{"title": "bad", "url": url}, {"title": "good", "url": "https://ok.example/a"}]
    )
    slack, chat, hook, mail = (render(channel, notification) for channel in channels()[:4])
    for rendered in (slack, chat):
        assert rendered.body is not None
        assert url not in rendered.body["text"] and "<https://ok.example/a|good>" in rendered.body["text"]
    assert hook.body is not None
    assert hook.body["notification"]["links"] == [{"title": "good", "url": "https://ok.example/a"}]
    assert url not in mail.text and "good: https://ok.example/a" in mail.text


def test_a_link_url_cannot_close_the_markup_early() -> None:
    notification = note(links=[{"title": "logs", "url": "https://ok.example/a|<!channel>"}])
    rendered = render(channels()[0], notification)
    assert rendered.body is not None
    assert "<https://ok.example/a%7C%3C!channel%3E|logs>" in rendered.body["text"]


def test_email_subject_is_one_line_and_text_is_not_escaped() -> None:
    rendered = render(channels()[3], note(title="line one\r\nBcc: victim@example.com"))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject == "[INFO] line one Bcc: victim@example.com"
    assert "line one" in rendered.text
