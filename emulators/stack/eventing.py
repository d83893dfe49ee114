"""Local eventing: what Eventarc and Pub/Sub push subscriptions do in the cloud, provisioned from the config.

For every trigger in the pipeline config: its topic, a push subscription to ``FUNCTIONS_URL/FUNCTION`` +
``/projects/P/topics/T`` (functions-framework reads the CloudEvent source from that path), a retry policy,
and a dead-letter topic with a pull subscription that keeps what lands there (a topic with no subscription
would drop it). Every internal event topic is created too. Provisioning is idempotent.

Measured on the Pub/Sub emulator: it honours dead-letter and retry policies, ignores subscription filters,
and loses dead-lettering when message ordering, push and a dead-letter policy are combined, so local push
subscriptions never enable ordering.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.protobuf import duration_pb2

from shared.config import PipelineConfig, Trigger


@dataclass(frozen=True)
class Provisioned:
    topics: list[str]
    subscriptions: list[str]
    dead_letter_subscriptions: dict[str, str]  # function -> pull subscription holding its dead letters


def dead_letter_hold_subscription(config: PipelineConfig, trigger: Trigger) -> str:
    return f"{config.dead_letter_topic_for(trigger)}--hold"


def push_endpoint(functions_url: str, project: str, trigger: Trigger) -> str:
    return f"{functions_url.rstrip('/')}/{trigger.function}/projects/{project}/topics/{trigger.topic}"


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _ensure_topic(publisher: Any, project: str, topic_id: str) -> str:
    path = str(publisher.topic_path(project, topic_id))
    with contextlib.suppress(google_exceptions.AlreadyExists):
        publisher.create_topic(request={"name": path}, timeout=30)
    return path


def _ensure_subscription(subscriber: Any, request: dict[str, Any]) -> None:
    try:
        subscriber.create_subscription(request=request, timeout=30)
    except google_exceptions.AlreadyExists:
        # Bring an existing subscription in line with the config (push endpoint, policies).
        from google.cloud.pubsub_v1.types import Subscription
        from google.protobuf import field_mask_pb2

        fields = ("push_config", "retry_policy", "dead_letter_policy", "ack_deadline_seconds")
        present = [key for key in fields if key in request]
        if present:
            subscriber.update_subscription(
                request={
                    "subscription": Subscription(**request),
                    "update_mask": field_mask_pb2.FieldMask(paths=present),
                },
                timeout=30,
            )


def provision(
    config: PipelineConfig, project: str, functions_url: str, publisher: Any, subscriber: Any
) -> Provisioned:
    topics: list[str] = []
    subscriptions: list[str] = []
    holds: dict[str, str] = {}
    for kind in config.topics:
        topics.append(_ensure_topic(publisher, project, config.topic_for(kind)))
    for trigger in config.triggers:
        topic_path = _ensure_topic(publisher, project, trigger.topic)
        if topic_path not in topics:
            topics.append(topic_path)
        dead_letter_path = _ensure_topic(publisher, project, config.dead_letter_topic_for(trigger))
        topics.append(dead_letter_path)
        hold = subscriber.subscription_path(project, dead_letter_hold_subscription(config, trigger))
        _ensure_subscription(
            subscriber, {"name": hold, "topic": dead_letter_path, "ack_deadline_seconds": 60}
        )
        holds[trigger.function] = str(hold)
        name = subscriber.subscription_path(project, config.subscription_for(trigger))
        _ensure_subscription(
            subscriber,
            {
                "name": name,
                "topic": topic_path,
                "push_config": {"push_endpoint": push_endpoint(functions_url, project, trigger)},
                "ack_deadline_seconds": trigger.retry.ack_deadline_seconds,
                "retry_policy": {
                    "minimum_backoff": _duration(trigger.retry.minimum_backoff_seconds),
                    "maximum_backoff": _duration(trigger.retry.maximum_backoff_seconds),
                },
                "dead_letter_policy": {
                    "dead_letter_topic": dead_letter_path,
                    "max_delivery_attempts": trigger.retry.max_delivery_attempts,
                },
            },
        )
        subscriptions.append(str(name))
    return Provisioned(topics, subscriptions, holds)


def bucket_routes(config: PipelineConfig, functions_url: str) -> dict[str, list[str]]:
    """Where the storage emulator delivers each bucket's ``object.v1.finalized`` CloudEvents."""
    routes: dict[str, list[str]] = {}
    for trigger in config.buckets:
        routes.setdefault(trigger.bucket, []).append(f"{functions_url.rstrip('/')}/{trigger.function}")
    return routes
