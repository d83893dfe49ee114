"""Demo part 1: notifications through ``notify`` — delivery per channel, a duplicate, a malformed message."""

from __future__ import annotations

import json
import time
from typing import Any

from emulators.common.proc import wait_for
from emulators.demo.common import say, sink


def notifications(env: dict[str, str], project: str, config: Any, ledger: Any, run_id: str) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    from shared.events import new_envelope
    from shared.publisher import PubSubPublisher

    topic = config.topic_for("notification")
    publisher = PubSubPublisher(project)
    say(f"▶ 1. build.succeeded (info) → topic {topic}")
    built = new_envelope(
        "notification",
        run_id,
        {
            "kind": "build.succeeded",
            "severity": "info",
            "title": "Trainer image built",
            "text": "gcr.io/demo-project/trainer:abc1234 is ready",
            "context": {"repo": "acme/churn-model", "commit": "abc1234", "build_id": "b-0001"},
            "links": [{"title": "build log", "url": "http://127.0.0.1/log/b-0001"}],
        },
    )
    publisher.publish(topic, built)
    records = wait_for("slack + audit deliveries", lambda: len(sink(env)) >= 2 and sink(env))
    for record in records:
        say(f"    sink {record['path']:<12} ← {json.dumps(record['body'], ensure_ascii=False)[:90]}…")
    say("    (platform-chat filtered it out: it takes build.* only from warning up)")

    say("▶ 2. the same event published again (a duplicate) → delivered once")
    publisher.publish(topic, built)
    time.sleep(2.0)
    say(f"    sink still holds {len(sink(env))} deliveries")

    say("▶ 3. a malformed message → recorded in the ledger, acknowledged, never lost")
    raw = PublisherClient()
    raw.publish(raw.topic_path(project, topic), b"{not json", type="notification").result(timeout=30)
    rejected = wait_for("the rejected-event record", lambda: ledger.list_rejected(limit=5))
    for record in rejected:
        say(f"    rejected {record.event_id}: {record.reason}: {'; '.join(record.problems)}")
