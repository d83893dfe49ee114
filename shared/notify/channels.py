"""One class per channel type behind one interface, as cloud-build-notifiers has one notifier per sink.

A :class:`NotificationChannel` is built from its ``spec.notifications.channels[]`` entry and knows three
things: whether it wants a notification (:meth:`accepts`: kind globs, minimum severity, labels), how to render
it for its sink (:meth:`render`, escaping event data the way that sink needs) and which wire it goes over
(``Rendered`` is handed to a :class:`~shared.notify.transport.Transport`). Adding a channel type is one
subclass here plus its name in ``shared.config.CHANNEL_TYPES``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from shared.approval.actions import button_value
from shared.config import SEVERITIES, Channel
from shared.errors import ConfigError, PermanentError
from shared.events.notification import Notification
from shared.notify.escaping import escape_markup, no_escape, safe_url

DEFAULT_TEXT_TEMPLATE = (
    "{{ icon }} *{{ title }}*"
    "{% if text %}\n{{ text }}{% endif %}"
    "{% for key, value in facts.items() %}\n• {{ key }}: {{ value }}{% endfor %}"
    "{% for link in links %}\n<{{ link.url }}|{{ link.title }}>{% endfor %}"
    "\nrun {{ run_id }}"
)
PLAIN_TEXT_TEMPLATE = (
    "{{ title }}"
    "{% if text %}\n\n{{ text }}{% endif %}"
    "{% if facts %}\n{% endif %}"
    "{% for key, value in facts.items() %}\n{{ key }}: {{ value }}{% endfor %}"
    "{% if links %}\n{% endif %}"
    "{% for link in links %}\n{{ link.title }}: {{ link.url }}{% endfor %}"
    "\n\nrun {{ run_id }} · event {{ event_id }}"
)
ICONS = {"debug": "🔍", "info": "🔵", "warning": "🟠", "error": "🔴", "critical": "🚨"}


@dataclass(frozen=True)
class Rendered:
    """What goes over the wire: a JSON body for HTTP channels, or subject + text for email."""

    channel: str
    body: Mapping[str, Any] | None = None
    subject: str = ""
    text: str = ""


def safe_links(notification: Notification) -> list[dict[str, str]]:
    """The notification's links whose URL is http(s), made safe for link markup; others are left out."""
    links = []
    for link in notification.links:
        url = safe_url(link.url)
        if url is not None:
            links.append({"title": link.title, "url": url})
    return links


def template_variables(notification: Notification) -> dict[str, Any]:
    return {
        "run_id": notification.run_id,
        "event_id": notification.event_id,
        "kind": notification.kind,
        "severity": notification.severity,
        "icon": ICONS.get(notification.severity, ""),
        "title": notification.title,
        "text": notification.text,
        "labels": dict(notification.labels),
        "context": dict(notification.context),
        "facts": notification.facts(),
        "links": safe_links(notification),
    }


def _environment(finalize: Callable[[Any], Any]) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, finalize=finalize)


#: Slack's limits: a section's text, a button's label.
SLACK_SECTION_CHARS = 3000
SLACK_BUTTON_CHARS = 75


def slack_buttons(notification: Notification) -> list[dict[str, Any]]:
    """Block-kit buttons: each action (``action_id`` = its name, ``value`` = its parameters as JSON, the
    shape ``shared.approval.actions`` reads back), then each http(s) link as a URL button."""
    buttons: list[dict[str, Any]] = []
    for action in notification.actions:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action.name,
            "text": {"type": "plain_text", "text": action.title[:SLACK_BUTTON_CHARS]},
            "value": button_value(action.parameters),
        }
        if action.style:
            button["style"] = action.style
        buttons.append(button)
    for index, link in enumerate(safe_links(notification)):
        buttons.append(
            {
                "type": "button",
                "action_id": f"link-{index}",
                "text": {"type": "plain_text", "text": link["title"][:SLACK_BUTTON_CHARS]},
                "url": link["url"],
            }
        )
    return buttons


def chat_buttons(notification: Notification) -> list[dict[str, Any]]:
    """Google Chat cardsV2 buttons: each action calls back with its function name and parameters, each
    http(s) link opens it."""
    buttons: list[dict[str, Any]] = [
        {
            "text": action.title,
            "onClick": {
                "action": {
                    "function": action.name,
                    "parameters": [{"key": key, "value": value} for key, value in action.parameters.items()],
                }
            },
        }
        for action in notification.actions
    ]
    buttons.extend(
        {"text": link["title"], "onClick": {"openLink": {"url": link["url"]}}}
        for link in safe_links(notification)
    )
    return buttons


class NotificationChannel:
    """The interface every channel type implements (and the shared filter and template plumbing)."""

    type_name: ClassVar[str] = ""
    default_template: ClassVar[str] = DEFAULT_TEXT_TEMPLATE
    escapes_markup: ClassVar[bool] = False  # Slack / Chat text: event data must not become markup

    def __init__(self, config: Channel) -> None:
        self.config = config
        self.name = config.name
        self._environment = _environment(escape_markup if self.escapes_markup else no_escape)
        try:
            self._template = self._environment.from_string(config.template or self.default_template)
        except TemplateError as error:
            raise ConfigError(f"channel {config.name}: template does not compile: {error}") from error

    def accepts(self, notification: Notification) -> bool:
        """Does the channel's filter let this notification through?"""
        rule = self.config.filter
        if not any(fnmatch.fnmatchcase(notification.kind, pattern) for pattern in rule.events):
            return False
        if SEVERITIES.index(notification.severity) < SEVERITIES.index(rule.min_severity):
            return False
        return all(notification.labels.get(key) == value for key, value in rule.labels.items())

    def text(self, notification: Notification) -> str:
        try:
            return self._template.render(template_variables(notification))
        except TemplateError as error:
            # A template that fails on this event fails on every redelivery: permanent.
            raise PermanentError(
                f"channel {self.name}: template failed: {error}", [f"channel {self.name}: {error}"]
            ) from error

    def render(self, notification: Notification) -> Rendered:
        raise NotImplementedError


class SlackChannel(NotificationChannel):
    """Slack incoming webhook: mrkdwn text, event data escaped so it cannot mention or link."""

    type_name = "slack"
    escapes_markup = True

    def render(self, notification: Notification) -> Rendered:
        text = self.text(notification)
        body: dict[str, Any] = {"text": text, "mrkdwn": True}
        if notification.actions:
            # Block kit: the same escaped text as a section, then one button per action and per safe link.
            # Button labels are plain_text (never markup); a button's value is not shown to anyone.
            body["blocks"] = [
                {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_SECTION_CHARS]}},
                {"type": "actions", "block_id": "approval", "elements": slack_buttons(notification)},
            ]
        return Rendered(self.name, body=body)


class GoogleChatChannel(NotificationChannel):
    """Google Chat incoming webhook: the same ``<url|label>`` markup and the same escape as Slack."""

    type_name = "google_chat"
    escapes_markup = True

    def render(self, notification: Notification) -> Rendered:
        body: dict[str, Any] = {"text": self.text(notification)}
        if notification.actions:
            # A cardsV2 card below the text: one button per action (its function and parameters come back
            # in the CARD_CLICKED event) and one per safe link (openLink).
            body["cardsV2"] = [
                {
                    "cardId": "actions",
                    "card": {
                        "sections": [{"widgets": [{"buttonList": {"buttons": chat_buttons(notification)}}]}]
                    },
                }
            ]
        return Rendered(self.name, body=body)


class WebhookChannel(NotificationChannel):
    """A generic JSON webhook: the rendered text plus the structured notification (links http(s) only)."""

    type_name = "webhook"

    def render(self, notification: Notification) -> Rendered:
        return Rendered(
            self.name,
            body={
                "text": self.text(notification),
                "notification": {
                    "kind": notification.kind,
                    "severity": notification.severity,
                    "title": notification.title,
                    "text": notification.text,
                    "labels": dict(notification.labels),
                    "context": dict(notification.context),
                    "links": safe_links(notification),
                },
                "run_id": notification.run_id,
                "event_id": notification.event_id,
            },
        )


class EmailChannel(NotificationChannel):
    """Plain-text email over SMTP: nothing is markup, so nothing is escaped; the subject is one line."""

    type_name = "email"
    default_template = PLAIN_TEXT_TEMPLATE

    def render(self, notification: Notification) -> Rendered:
        title = " ".join(notification.title.split())  # no header injection through a multi-line title
        subject = f"[{notification.severity.upper()}] {title}"[:250]
        return Rendered(self.name, subject=subject, text=self.text(notification))


CHANNEL_CLASSES: dict[str, type[NotificationChannel]] = {
    cls.type_name: cls for cls in (SlackChannel, GoogleChatChannel, WebhookChannel, EmailChannel)
}

_cache: dict[int, tuple[Channel, NotificationChannel]] = {}


def channel_for(config: Channel) -> NotificationChannel:
    """The channel object for a configured channel (compiled once per configuration object)."""
    cached = _cache.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    cls = CHANNEL_CLASSES.get(config.type)
    if cls is None:
        raise ConfigError(f"channel {config.name}: unsupported type {config.type!r}")
    channel = cls(config)
    _cache[id(config)] = (config, channel)
    return channel


def accepts(config: Channel, notification: Notification) -> bool:
    return channel_for(config).accepts(notification)


def render(config: Channel, notification: Notification) -> Rendered:
    return channel_for(config).render(notification)
