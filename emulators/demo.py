"""``make demo``: a fresh local stack, the scenario that exists so far, live progress, a clean teardown.

Scenario: notifications published on Pub/Sub travel through a push subscription to ``notify`` on the
function host, which renders them per channel and posts them to the local webhook sink; a duplicate is
delivered once; a malformed message is recorded in the ledger, not lost; the run ledger shows the steps.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from emulators.stack import ROOT, Stack, applied_env

Check = Callable[[], Any]


def _say(message: str) -> None:
    print(message, flush=True)


def _wait_for(what: str, check: Check, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def _sink(env: dict[str, str], prefix: str = "/hook/") -> list[dict[str, Any]]:
    response = requests.get(f"{env['WEBHOOK_SINK_URL']}/_sink/requests", params={"prefix": prefix}, timeout=5)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records


def run_demo(config_path: Path | None = None) -> int:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlops-demo-") as run_dir:
        stack = Stack(Path(run_dir), config_path=config_path or ROOT / "pipeline.yaml")
        _say("▶ starting the local stack")
        state = stack.up(progress=_say)
        try:
            with applied_env(state.env):
                _scenario(state.env, state.project)
        finally:
            _say("▶ tearing the stack down")
            stack.down(progress=_say)
        alive = [name for name, running, _ in stack.status() if running]
        if alive:
            _say(f"✗ still running: {', '.join(alive)}")
            return 1
    _say(f"✔ demo finished in {time.monotonic() - began:.1f}s; no process left running")
    return 0


def _scenario(env: dict[str, str], project: str) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    from shared import clients
    from shared.config import load_config
    from shared.events import new_envelope
    from shared.ledger import FirestoreLedger
    from shared.publisher import PubSubPublisher

    clients.reset()
    config = load_config(env["PIPELINE_CONFIG"], env={**os.environ, **env})
    topic = config.topic_for("notification")
    publisher = PubSubPublisher(project)
    ledger = FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix)
    run_id = f"demo-{int(time.time())}"

    _say(f"▶ 1. build.succeeded (info) → topic {topic}")
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
    records = _wait_for("slack + audit deliveries", lambda: len(_sink(env)) >= 2 and _sink(env))
    for record in records:
        _say(f"    sink {record['path']:<12} ← {json.dumps(record['body'], ensure_ascii=False)[:90]}…")
    _say("    (platform-chat filtered it out: it takes build.* only from warning up)")

    _say("▶ 2. the same event published again (a duplicate) → delivered once")
    publisher.publish(topic, built)
    time.sleep(2.0)
    _say(f"    sink still holds {len(_sink(env))} deliveries")

    _say("▶ 3. training.failed (error) → every channel")
    failed = new_envelope(
        "notification",
        run_id,
        {
            "kind": "training.failed",
            "severity": "error",
            "title": "Training job failed",
            "text": "CustomJob churn-train-abc1234 ended JOB_STATE_FAILED",
            "context": {"model": "churn", "version": "7", "metrics": {"auc": 0.61}},
        },
    )
    publisher.publish(topic, failed)
    _wait_for("three more deliveries", lambda: len(_sink(env)) >= 5)
    for record in _sink(env)[2:]:
        _say(f"    sink {record['path']:<12} ← {str(record['body'].get('text', ''))[:80]!r}")

    _say("▶ 4. a malformed message → recorded in the ledger, acknowledged, never lost")
    raw = PublisherClient()
    raw.publish(raw.topic_path(project, topic), b"{not json", type="notification").result(timeout=30)
    rejected = _wait_for("the rejected-event record", lambda: ledger.list_rejected(limit=5))
    for record in rejected:
        _say(f"    rejected {record.event_id}: {record.reason}: {'; '.join(record.problems)}")

    _say(f"▶ 5. the run ledger for {run_id}")
    run = _wait_for("the run record", lambda: (r := ledger.get_run(run_id)) and len(r.steps) >= 2 and r)
    for step in run.steps:
        _say(f"    {step.started_at:%H:%M:%S}  {step.name:<45} {step.status.value}")
