"""Notifications: which channels want an event, how it is rendered for each, and how it is delivered.

A notification is an internal event of type ``notification`` whose data says what happened (``kind``, e.g.
``build.failed``), how bad it is (``severity``), a ``title`` and ``text``, and the run context (repo, commit,
model, version, metrics, links). Each configured channel filters (kind globs, minimum severity, labels),
renders (a Jinja2 template, sandboxed, or the channel type's default) and delivers over HTTP or SMTP.
"""

from __future__ import annotations

import fnmatch
import json
import os
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from shared.config import SEVERITIES, Channel
from shared.errors import PermanentError, TransientError
from shared.events import Envelope, InvalidEvent
from shared.ledger import ClaimStatus, Ledger, StepStatus, payload_hash

NOTIFICATION_TYPE = "notification"

_jinja = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)

DEFAULT_TEXT_TEMPLATE = (
    "{{ icon }} *{{ title }}*"
    "{% if text %}\n{{ text }}{% endif %}"
    "{% for key, value in facts.items() %}\n• {{ key }}: {{ value }}{% endfor %}"
    "{% for link in links %}\n<{{ link.url }}|{{ link.title }}>{% endfor %}"
    "\nrun {{ run_id }}"
)
_ICONS = {"debug": "🔍", "info": "🔵", "warning": "🟠", "error": "🔴", "critical": "🚨"}
_FACT_KEYS = ("repo", "branch", "commit", "build_id", "model", "version", "service", "revision", "traffic")


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Notification:
    run_id: str
    event_id: str
    kind: str
    severity: str
    title: str
    text: str
    labels: Mapping[str, str]
    context: Mapping[str, Any]
    links: tuple[Link, ...]
    envelope: Envelope = field(repr=False)

    def facts(self) -> dict[str, str]:
        """The well-known context fields present, in a stable order, plus metrics."""
        facts = {key: str(self.context[key]) for key in _FACT_KEYS if self.context.get(key) not in (None, "")}
        metrics = self.context.get("metrics")
        if isinstance(metrics, Mapping):
            for name, value in metrics.items():
                facts[f"metric {name}"] = f"{value:.4g}" if isinstance(value, float) else str(value)
        return facts


def parse_notification(envelope: Envelope) -> Notification:
    """Validate the data of a ``notification`` event; every problem is listed."""
    problems: list[str] = []
    data = envelope.data
    if envelope.type != NOTIFICATION_TYPE:
        problems.append(f"type: expected {NOTIFICATION_TYPE!r}, got {envelope.type!r}")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append("data.kind: required (e.g. 'build.failed')")
    severity = data.get("severity", "info")
    if severity not in SEVERITIES:
        problems.append(f"data.severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    title = data.get("title")
    if not isinstance(title, str) or not title:
        problems.append("data.title: required")
    text = data.get("text", "")
    if not isinstance(text, str):
        problems.append("data.text: must be a string")
    labels = data.get("labels", {})
    if not isinstance(labels, Mapping):
        problems.append("data.labels: must be an object")
        labels = {}
    context = data.get("context", {})
    if not isinstance(context, Mapping):
        problems.append("data.context: must be an object")
        context = {}
    links: list[Link] = []
    raw_links = data.get("links", [])
    if not isinstance(raw_links, list):
        problems.append("data.links: must be a list")
        raw_links = []
    for index, item in enumerate(raw_links):
        if isinstance(item, Mapping) and isinstance(item.get("url"), str):
            links.append(Link(str(item.get("title") or item["url"]), item["url"]))
        else:
            problems.append(f"data.links[{index}]: must be an object with a url")
    if problems:
        raise InvalidEvent("notification", problems)
    return Notification(
        run_id=envelope.run_id,
        event_id=envelope.event_id,
        kind=str(kind),
        severity=str(severity),
        title=str(title),
        text=str(text),
        labels={str(k): str(v) for k, v in labels.items()},
        context=dict(context),
        links=tuple(links),
        envelope=envelope,
    )


def accepts(channel: Channel, notification: Notification) -> bool:
    """Does the channel's filter let this notification through?"""
    rule = channel.filter
    if not any(fnmatch.fnmatchcase(notification.kind, pattern) for pattern in rule.events):
        return False
    if SEVERITIES.index(notification.severity) < SEVERITIES.index(rule.min_severity):
        return False
    return all(notification.labels.get(key) == value for key, value in rule.labels.items())


@dataclass(frozen=True)
class Rendered:
    """What goes over the wire: a JSON body for HTTP channels, or subject + text for email."""

    channel: str
    body: Mapping[str, Any] | None = None
    subject: str = ""
    text: str = ""


def template_variables(notification: Notification) -> dict[str, Any]:
    return {
        "run_id": notification.run_id,
        "event_id": notification.event_id,
        "kind": notification.kind,
        "severity": notification.severity,
        "icon": _ICONS.get(notification.severity, ""),
        "title": notification.title,
        "text": notification.text,
        "labels": dict(notification.labels),
        "context": dict(notification.context),
        "facts": notification.facts(),
        "links": [{"title": link.title, "url": link.url} for link in notification.links],
    }


def render_text(template: str, notification: Notification, channel_name: str) -> str:
    try:
        return _jinja.from_string(template).render(template_variables(notification))
    except TemplateError as error:
        # A template that fails on this event fails on every redelivery: permanent.
        raise PermanentError(
            f"channel {channel_name}: template failed: {error}", [f"channel {channel_name}: {error}"]
        ) from error


def render(channel: Channel, notification: Notification) -> Rendered:
    text = render_text(channel.template or DEFAULT_TEXT_TEMPLATE, notification, channel.name)
    if channel.type == "slack":
        return Rendered(channel.name, body={"text": text, "mrkdwn": True})
    if channel.type == "google_chat":
        return Rendered(channel.name, body={"text": text})
    if channel.type == "webhook":
        return Rendered(
            channel.name,
            body={
                "text": text,
                "notification": {
                    "kind": notification.kind,
                    "severity": notification.severity,
                    "title": notification.title,
                    "text": notification.text,
                    "labels": dict(notification.labels),
                    "context": dict(notification.context),
                    "links": [{"title": link.title, "url": link.url} for link in notification.links],
                },
                "run_id": notification.run_id,
                "event_id": notification.event_id,
            },
        )
    if channel.type == "email":
        subject = f"[{notification.severity.upper()}] {notification.title}"
        return Rendered(channel.name, subject=subject, text=text)
    raise PermanentError(f"channel {channel.name}: unsupported type {channel.type!r}")


class Transport(Protocol):
    """Delivers one rendered message; raises TransientError (retry) or PermanentError (give up)."""

    def deliver(self, channel: Channel, rendered: Rendered) -> None: ...


class HttpTransport:
    """POSTs JSON to the channel's URL (Slack/Chat incoming webhooks, generic webhooks); SMTP for email."""

    def deliver(self, channel: Channel, rendered: Rendered) -> None:
        if channel.type == "email":
            self._send_email(channel, rendered)
            return
        import requests

        assert channel.url is not None  # config validation guarantees it for HTTP channels
        headers = {"Content-Type": "application/json; charset=utf-8", **channel.headers}
        try:
            response = requests.post(
                channel.url,
                data=json.dumps(rendered.body).encode("utf-8"),
                headers=headers,
                timeout=channel.timeout_seconds,
            )
        except requests.RequestException as error:
            raise TransientError(f"channel {channel.name}: {type(error).__name__}: {error}") from error
        status = response.status_code
        if status < 300:
            return
        detail = f"channel {channel.name}: HTTP {status} from the webhook: {response.text[:200]!r}"
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(detail)
        raise PermanentError(detail, [detail])

    def _send_email(self, channel: Channel, rendered: Rendered) -> None:
        settings = channel.smtp
        assert settings is not None  # config validation guarantees it for email channels
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.recipients)
        message.set_content(rendered.text)
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=channel.timeout_seconds) as smtp:
                if settings.starttls:
                    smtp.starttls()
                if settings.username:
                    password = os.environ.get(settings.password_env or "", "")
                    smtp.login(settings.username, password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as error:
            detail = f"channel {channel.name}: SMTP {error.smtp_code} {error.smtp_error!r}"
            if 400 <= error.smtp_code < 500:
                raise TransientError(detail) from error
            raise PermanentError(detail, [detail]) from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientError(f"channel {channel.name}: {type(error).__name__}: {error}") from error


class RecordingTransport:
    """An in-memory transport for tests: records deliveries, can be told to fail a channel."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Rendered]] = []
        self.failures: dict[str, Exception] = {}

    def deliver(self, channel: Channel, rendered: Rendered) -> None:
        failure = self.failures.get(channel.name)
        if failure is not None:
            raise failure
        self.delivered.append((channel.name, rendered))


@dataclass(frozen=True)
class DeliveryReport:
    """What happened per channel: delivered, duplicate, filtered, failed (permanent), retry (transient)."""

    outcomes: Mapping[str, str]
    errors: Mapping[str, str]

    def channels(self, outcome: str) -> list[str]:
        return sorted(name for name, value in self.outcomes.items() if value == outcome)


def idempotency_payload(envelope: Envelope) -> dict[str, Any]:
    """What must be identical for two deliveries to count as the same notification (not ``occurred_at``)."""
    return {"type": envelope.type, "run_id": envelope.run_id, "data": dict(envelope.data)}


def deliver_notification(
    notification: Notification,
    channels: tuple[Channel, ...],
    ledger: Ledger,
    transport: Transport,
    lease_seconds: float,
    ttl_seconds: float,
) -> DeliveryReport:
    """Deliver to every channel that accepts the notification, each at most once per event id.

    Each channel is claimed separately (``notify/EVENT_ID/CHANNEL``), so a redelivery after a partial failure
    only retries the channels that failed. A permanent channel failure (e.g. the webhook answers 404) is
    recorded and not retried; a transient one makes the whole event retry (raise :class:`TransientError`).
    """
    payload = payload_hash(idempotency_payload(notification.envelope))
    outcomes: dict[str, str] = {}
    errors: dict[str, str] = {}
    for channel in channels:
        if not accepts(channel, notification):
            outcomes[channel.name] = "filtered"
            continue
        key = f"notify/{notification.event_id}/{channel.name}"
        claim = ledger.claim(key, payload, lease_seconds, ttl_seconds)
        if claim.status is ClaimStatus.COMPLETED:
            outcomes[channel.name] = "duplicate"
            continue
        if claim.status is ClaimStatus.IN_PROGRESS:
            outcomes[channel.name] = "retry"
            errors[channel.name] = "another delivery of this event holds the lease"
            continue
        assert claim.token is not None
        try:
            transport.deliver(channel, render(channel, notification))
        except PermanentError as error:
            ledger.complete(key, claim.token, {"status": "failed", "error": str(error)})
            outcomes[channel.name] = "failed"
            errors[channel.name] = str(error)
        except Exception as error:
            ledger.release(key, claim.token)
            outcomes[channel.name] = "retry"
            errors[channel.name] = f"{type(error).__name__}: {error}"
        else:
            ledger.complete(key, claim.token, {"status": "delivered"})
            outcomes[channel.name] = "delivered"

    report = DeliveryReport(outcomes, errors)
    # A pure duplicate changes nothing: the first delivery already recorded the step.
    acted = report.channels("delivered") or report.channels("failed")
    if notification.run_id and acted:
        ledger.start_run(notification.run_id, cause={"notification": notification.event_id})
        if not report.channels("retry"):
            ledger.record_step(
                notification.run_id,
                f"notify:{notification.kind}:{notification.event_id[:12]}",
                StepStatus.FAILED if report.channels("failed") else StepStatus.SUCCEEDED,
                {"event_id": notification.event_id, "outcomes": dict(outcomes), "errors": dict(errors)},
            )
    if report.channels("retry"):
        raise TransientError(
            "notification not delivered yet to "
            + ", ".join(f"{name} ({errors[name]})" for name in report.channels("retry"))
        )
    return report
