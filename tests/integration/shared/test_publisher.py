"""The Pub/Sub publisher against the emulator: ordering keys (rollout events per service) are accepted."""

from __future__ import annotations

import pytest

from shared import clients
from shared.events import new_envelope
from shared.publisher import PubSubPublisher
from tests.integration.conftest import LiveStack

pytestmark = pytest.mark.integration


def test_publishing_with_an_ordering_key_works_on_the_real_client(live_stack: LiveStack) -> None:
    clients.reset()
    topic = "it-ordered"
    client = clients.publisher()
    path = client.topic_path(live_stack.project, topic)
    client.create_topic(request={"name": path})
    publisher = PubSubPublisher(live_stack.project)
    ids = [
        publisher.publish(
            topic, new_envelope("rollout.event", "r-1", {"n": n}), ordering_key="churn-predictor"
        )
        for n in range(3)
    ]
    assert len(set(ids)) == 3 and all(ids)
