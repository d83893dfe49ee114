"""Typed, lenient, read-only views of every event the project handles, one module per source.

Each view wraps the payload exactly as the real service sends it: unknown fields are ignored, int64 fields
are accepted as strings or numbers, and every problem found is reported at once in one
:class:`~shared.errors.InvalidInput` (``InvalidEvent`` is the same class): a permanent error, so the event
is recorded and acknowledged, not retried. Whatever a payload holds, parsing raises nothing else; sizes are
bounded explicitly (:mod:`shared.events.limits`).

Views never copy or modify the payload; ``raw`` gives it back unchanged.

========================  =====================================================================
module                    views
========================  =====================================================================
``git``                   ``GitPush``, ``Commit`` (what GitHub and GitLab pushes share)
``github``, ``gitlab``    ``github_push``, ``github_ping``, ``gitlab_push``
``storage``               ``storage_object`` (``object.v1.finalized`` data)
``pubsub``                ``pubsub_message`` (push body or ``messagePublished`` data)
``cloudbuild``            ``build_message`` (the ``cloud-builds`` topic)
``monitoring``            ``drift_alert`` (a Monitoring incident)
``approval``              ``approval_decision``
``envelope``              ``Envelope``, ``new_envelope``, ``envelope`` (our internal events)
``notification``          ``Notification``, ``parse_notification`` (the ``notification`` event)
``cloudevent``            ``CloudEventInfo``, ``event_from_http`` (an HTTP delivery → CloudEvent)
``common``, ``timestamps`` ``parse_json``, ``parse_timestamp``, id and label readers
``limits``                every size limit, with the documented limit it comes from
========================  =====================================================================
"""

from __future__ import annotations

from shared.errors import InvalidInput
from shared.events.approval import ApprovalDecision, approval_decision
from shared.events.cloudbuild import BUILD_TERMINAL, BuildMessage, BuiltImage, build_message
from shared.events.cloudevent import CloudEventInfo, body_digest, event_from_http
from shared.events.common import JSON, InvalidEvent, check_json_value, parse_json
from shared.events.envelope import SCHEMA_VERSION, Envelope, envelope, new_envelope
from shared.events.git import Commit, GitPush
from shared.events.github import GitHubPing, github_ping, github_push
from shared.events.gitlab import gitlab_push
from shared.events.monitoring import DriftAlert, drift_alert
from shared.events.notification import NOTIFICATION_TYPE, Link, Notification, parse_notification
from shared.events.pubsub import PUBSUB_PUBLISHED, PubSubMessage, pubsub_message
from shared.events.storage import STORAGE_FINALIZED, StorageObject, storage_object
from shared.events.timestamps import parse_timestamp

__all__ = [
    "BUILD_TERMINAL",
    "JSON",
    "NOTIFICATION_TYPE",
    "PUBSUB_PUBLISHED",
    "SCHEMA_VERSION",
    "STORAGE_FINALIZED",
    "ApprovalDecision",
    "BuildMessage",
    "BuiltImage",
    "CloudEventInfo",
    "Commit",
    "DriftAlert",
    "Envelope",
    "GitHubPing",
    "GitPush",
    "InvalidEvent",
    "InvalidInput",
    "Link",
    "Notification",
    "PubSubMessage",
    "StorageObject",
    "approval_decision",
    "body_digest",
    "build_message",
    "check_json_value",
    "drift_alert",
    "envelope",
    "event_from_http",
    "github_ping",
    "github_push",
    "gitlab_push",
    "new_envelope",
    "parse_json",
    "parse_notification",
    "parse_timestamp",
    "pubsub_message",
    "storage_object",
]
