"""Local eventing for Cloud Storage: a new object becomes a binary-mode ``object.v1.finalized`` CloudEvent
delivered through functions-framework to the function the config names for the bucket."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from shared.events import storage_object
from tests.integration.conftest import LiveStack

pytestmark = pytest.mark.integration


def test_new_object_reaches_the_bucket_function(live_stack: LiveStack) -> None:
    client = storage.Client(project=live_stack.project, credentials=AnonymousCredentials())
    bucket = client.bucket("landing")
    if not bucket.exists():
        bucket = client.create_bucket("landing")
    name = f"incoming/{uuid.uuid4().hex}.csv"
    blob = bucket.blob(name)
    blob.upload_from_string("a,b\n1,2\n", content_type="text/csv")

    def received() -> list[dict[str, Any]]:
        return [
            r
            for r in live_stack.sink_requests("/events/record_event")
            if r["body"]["subject"] == f"objects/{name}"
        ]

    deadline = time.monotonic() + 20
    while not received() and time.monotonic() < deadline:
        time.sleep(0.2)
    records = received()
    assert len(records) == 1, "the finalized event should reach record_event exactly once"
    event = records[0]["body"]
    assert event["type"] == "google.cloud.storage.object.v1.finalized"
    assert event["source"] == "//storage.googleapis.com/projects/_/buckets/landing"
    assert event["bucket"] == "landing"
    view = storage_object(event["data"])  # the body is a real object resource, as our views expect
    assert view.key == f"landing/{name}#{blob.generation}"
    assert view.size == 8 and view.content_type == "text/csv"


def test_object_in_an_unrouted_bucket_reaches_no_function(live_stack: LiveStack) -> None:
    client = storage.Client(project=live_stack.project, credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"elsewhere-{uuid.uuid4().hex[:8]}")
    bucket.blob("x.txt").upload_from_string("x")
    time.sleep(1.0)
    assert not [r for r in live_stack.sink_requests("/events/") if r["body"].get("bucket") == bucket.name]
