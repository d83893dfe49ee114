"""Notifications: which channels want an event, how each renders it, and how it is delivered.

A notification is an internal event of type ``notification`` (the view is
:mod:`shared.events.notification`): what happened (``kind``, e.g. ``build.failed``), how bad it is
(``severity``), a ``title`` and ``text``, and the run context. Each configured channel is one
:class:`~shared.notify.channels.NotificationChannel` (filter, render with per-channel escaping); the
:class:`~shared.notify.transport.Transport` carries the result; :func:`deliver_notification` runs one
idempotent step per channel on the :class:`~shared.steps.StepRunner`.
"""

from shared.events.notification import NOTIFICATION_TYPE, Link, Notification, parse_notification
from shared.notify.channels import (
    CHANNEL_CLASSES,
    DEFAULT_TEXT_TEMPLATE,
    EmailChannel,
    GoogleChatChannel,
    NotificationChannel,
    Rendered,
    SlackChannel,
    WebhookChannel,
    accepts,
    channel_for,
    render,
    template_variables,
)
from shared.notify.deliver import DeliveryReport, deliver_notification, idempotency_payload
from shared.notify.transport import HttpTransport, RecordingTransport, Transport

__all__ = [
    "CHANNEL_CLASSES",
    "DEFAULT_TEXT_TEMPLATE",
    "NOTIFICATION_TYPE",
    "DeliveryReport",
    "EmailChannel",
    "GoogleChatChannel",
    "HttpTransport",
    "Link",
    "Notification",
    "NotificationChannel",
    "RecordingTransport",
    "Rendered",
    "SlackChannel",
    "Transport",
    "WebhookChannel",
    "accepts",
    "channel_for",
    "deliver_notification",
    "idempotency_payload",
    "parse_notification",
    "render",
    "template_variables",
]
