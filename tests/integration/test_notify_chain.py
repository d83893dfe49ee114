"""``notify`` end to end on real emulators: Pub/Sub push → function host → webhook sink; Firestore ledger."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
import requests

from emulators.common.proc import wait_for
from shared import clients
from shared.config import load_config
from shared.events import new_envelope
from shared.ledger import FirestoreLedger
from shared.publisher import PubSubPublisher
from tests.helpers import push_envelope
from tests.integration.conftest import HERE, LiveStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(live_stack: LiveStack) -> dict[str, Any]:
    clients.reset()
    config = load_config(HERE / "pipeline.yaml", env=live_stack.env)
    return {
        "config": config,
        "topic": config.topic_for("notification"),
        "publisher": PubSubPublisher(live_stack.project),
        "ledger": FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix),
    }


def a_notification(route: str, title: str) -> Any:
    return new_envelope(
        "notification",
        f"run-{uuid.uuid4().hex[:8]}",
        {"kind": "build.succeeded", "severity": "info", "title": title, "labels": {"route": route}},
    )


def deliveries(live_stack: LiveStack, prefix: str, title: str) -> list[dict[str, Any]]:
    return [r for r in live_stack.sink_requests(prefix) if title in json.dumps(r["body"])]


def test_notification_reaches_the_sink_exactly_once_when_delivered_twice(
    live_stack: LiveStack, setup: dict[str, Any]
) -> None:
    title = f"built {uuid.uuid4().hex[:6]}"
    envelope = a_notification("normal", title)
    setup["publisher"].publish(setup["topic"], envelope)
    wait_for("both channels", lambda: len(deliveries(live_stack, "/hook/", title)) == 2)

    # A second publication of the same event, and a redelivery of one message as the push subscription
    # would send it (same messageId), straight to the function's push endpoint.
    setup["publisher"].publish(setup["topic"], envelope)
    data = json.dumps(envelope.to_json())
    endpoint = (
        f"{live_stack.env['FUNCTIONS_URL']}/notify/projects/{live_stack.project}/topics/{setup['topic']}"
    )
    redelivered = push_envelope(
        data,
        envelope.attributes(),
        message_id="redelivered-1",
        publish_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    for _ in range(2):
        assert requests.post(endpoint, json=redelivered, timeout=30).status_code == 200
    time.sleep(2.0)  # time for the second Pub/Sub delivery to arrive, if it were going to be sent

    paths = sorted(r["path"] for r in deliveries(live_stack, "/hook/", title))
    assert paths == ["/hook/audit", "/hook/slack"]
    slack = deliveries(live_stack, "/hook/slack", title)[0]["body"]
    assert title in slack["text"] and envelope.run_id in slack["text"]

    run = wait_for("the run record", lambda: setup["ledger"].get_run(envelope.run_id))
    # One step per channel, recorded once although the event arrived four times.
    assert sorted((step.name.split(":")[2], step.status.value) for step in run.steps) == [
        ("audit", "SUCCEEDED"),
        ("slack", "SUCCEEDED"),
    ]


def test_failing_webhook_is_retried_then_dead_lettered(live_stack: LiveStack, setup: dict[str, Any]) -> None:
    from google.cloud.pubsub_v1 import SubscriberClient

    title = f"doomed {uuid.uuid4().hex[:6]}"
    envelope = a_notification("failing", title)
    setup["publisher"].publish(setup["topic"], envelope)
    attempts = setup["config"].triggers[0].retry.max_delivery_attempts

    hold = live_stack.state.dead_letter_subscriptions["notify"]
    subscriber = SubscriberClient()
    try:

        def dead_letters() -> list[Any]:
            response = subscriber.pull(request={"subscription": hold, "max_messages": 10}, timeout=10)
            mine = [
                m
                for m in response.received_messages
                if m.message.attributes.get("event_id") == envelope.event_id
            ]
            others = [m.ack_id for m in response.received_messages if m not in mine]
            if others:
                subscriber.modify_ack_deadline(
                    request={"subscription": hold, "ack_ids": others, "ack_deadline_seconds": 0}
                )
            return mine

        landed = wait_for("the message in the dead-letter topic", dead_letters, timeout=60)
        subscriber.acknowledge(request={"subscription": hold, "ack_ids": [m.ack_id for m in landed]})
    finally:
        subscriber.close()

    assert json.loads(landed[0].message.data)["event_id"] == envelope.event_id
    tries = deliveries(live_stack, "/status/500/broken", title)
    assert len(tries) == attempts, f"expected {attempts} webhook attempts, saw {len(tries)}"
    assert all(r["answered"] == 500 for r in tries)


def test_malformed_message_is_recorded_never_lost(live_stack: LiveStack, setup: dict[str, Any]) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    marker = uuid.uuid4().hex
    raw = PublisherClient()
    message_id = raw.publish(
        raw.topic_path(live_stack.project, setup["topic"]), f"not json {marker}".encode(), type="notification"
    ).result(timeout=30)

    def recorded() -> Any:
        return [r for r in setup["ledger"].list_rejected(limit=50) if r.event_id == message_id]

    record = wait_for("the rejected-event record", recorded)[0]
    assert record.reason == "invalid"
    assert "not JSON" in " ".join(record.problems)
    # The payload is kept as delivered, so the original bytes can be recovered and republished.
    assert isinstance(record.payload, dict)
    assert base64.b64decode(record.payload["message"]["data"]) == f"not json {marker}".encode()
