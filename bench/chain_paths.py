"""Item 2 for the chain's six Pub/Sub functions: events/s and Firestore operations per event.

Each function handles its events in this process, through functions-framework's own app
(``create_app(target=NAME, source=main.py)``) driven by 8 threads (the concurrency of notify's host figure),
with the production runtime's plumbing: the ledger on the Firestore emulator (its client counted, see
``bench/counting.py``) and the Pub/Sub emulator's publisher. The Google services (Cloud Build, Vertex AI
training and Model Registry, Cloud Run, Monitoring, Cloud Storage) are the in-memory fakes of
``shared.ports.fake_ports``: their latency is Google's, not the pipeline's, and the Cloud Run emulator would
start a real process per revision. So these figures are the pipeline's own cost per event, not a Vertex AI
upload's or a Cloud Run deploy's.

Every function gets N events of its main, successful path, each on a run of its own, and exactly the state
those events read, seeded before the clock starts: the runs and steps the chain would have written (through
another ledger object on its own client, so the measured ledger, like a fresh instance, knows none of the
runs), and the Google side in the fakes. After the window the effect is checked — every answer ``done``, the
next events on their topics (a pull subscription per topic, made before the window), the steps on every run,
the jobs, versions and revisions in the fakes — so a run that did nothing fails instead of reading as fast.
Only ``on_drift_alert`` also has every event on one run (an alert storm): see :data:`NO_ONE_RUN_VARIANT`.

The configuration is ``bench/pipeline.yaml`` widened here (:func:`chain_config`): its own topic prefix (the
next events land on topics no push subscription drains, so no other function runs during the window), a
ledger prefix of its own per measurement, and N extra models with one Cloud Run service each. A drift alert,
an approval and a rollout are per model or per service — a second alert for a model inside its window is
suppressed, an older candidate is superseded by a newer one, a service runs one rollout at a time — so N
independent events of those three need N models.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench import load
from bench.chain_cases import (
    BUILDERS,
    FUNCTIONS,
    NO_ONE_RUN_VARIANT,
    PATH,
    Case,
    Stage,
    chain_config,
    on_drift_alert,
)
from bench.counting import counted_firestore
from bench.items import _quiet
from bench.servers import PROJECT
from emulators.stack import ROOT
from shared.config import PipelineConfig
from shared.ledger import FirestoreLedger

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # what pubsub_endpoint answers: done, rejected or expired
    redelivered: int


# -- the window ----------------------------------------------------------------------------------------------


def answer_all(app: Any, requests: Sequence[load.Request], concurrency: int) -> tuple[float, list[Answer]]:
    """POST every request to the app's WSGI interface from ``concurrency`` threads (a test client each); a
    5xx is sent again after a pause, as the push subscription would (``bench.load``'s redelivery); the
    clock runs from the first request to the last answer."""
    local = threading.local()

    def one(item: load.Request) -> Answer:
        if not hasattr(local, "client"):
            local.client = app.test_client()
        for attempt in range(1, load.MAX_DELIVERIES + 1):
            answer = local.client.post(item.path, data=item.body, headers=item.headers)
            if answer.status_code < 500 or attempt == load.MAX_DELIVERIES:
                return Answer(answer.status_code, answer.get_data(as_text=True), attempt - 1)
            time.sleep(load.REDELIVERY_PAUSE_SECONDS)
        raise AssertionError("unreachable")  # pragma: no cover

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        began = time.perf_counter()
        answers = list(pool.map(one, requests))  # a sender's exception is raised here, never a fast run
        return time.perf_counter() - began, answers


def ensure_topics(config: PipelineConfig) -> None:
    """Every internal event topic of ``config``, as the stack's eventing makes them (no subscription)."""
    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import PublisherClient

    publisher = PublisherClient()
    for kind in config.topics:
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(request={"name": publisher.topic_path(PROJECT, config.topic_for(kind))})


@contextlib.contextmanager
def next_events(config: PipelineConfig, expect: Counter[str]) -> Iterator[Callable[[], Counter[str]]]:
    """Pull subscriptions, made before the window, on the topics of the expected next events (and the
    notifications); the callable reads them after it: distinct events (by event id) per label."""
    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import SubscriberClient

    subscriber = SubscriberClient()
    wanted: Counter[str] = Counter()
    for label, count in expect.items():
        wanted[label.split(":", 1)[0]] += count
    wanted["notification"] += 0
    paths = {}
    for kind in wanted:
        topic = config.topic_for(kind)
        path = subscriber.subscription_path(PROJECT, f"{topic}--check-{uuid.uuid4().hex[:6]}")
        subscriber.create_subscription(
            request={"name": path, "topic": f"projects/{PROJECT}/topics/{topic}", "ack_deadline_seconds": 60}
        )
        paths[kind] = path

    def read() -> Counter[str]:
        seen: dict[str, str] = {}
        for kind, path in paths.items():
            limit = time.monotonic() + 20.0
            found = 0
            while found < wanted[kind] and time.monotonic() < limit:
                try:
                    response = subscriber.pull(
                        request={"subscription": path, "max_messages": 1000}, timeout=5
                    )
                except exceptions.DeadlineExceeded:
                    continue
                received = list(response.received_messages)
                if received:
                    ack_ids = [item.ack_id for item in received]
                    subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
                for item in received:
                    message = item.message
                    event_id = message.attributes.get("event_id") or message.message_id
                    if event_id not in seen:
                        seen[event_id] = _label(kind, message.data)
                        found += 1
        return Counter(seen.values())

    try:
        yield read
    finally:
        for path in paths.values():
            with contextlib.suppress(Exception):
                subscriber.delete_subscription(request={"subscription": path})
        subscriber.close()


def _label(kind: str, data: bytes) -> str:
    if kind != "notification":
        return kind
    try:
        body = json.loads(data)
        return f"notification:{body['data']['kind']}"
    except (ValueError, KeyError, TypeError):
        return "notification:(unreadable)"


def run_case(name: str, stage: Stage, case: Case, concurrency: int) -> JsonObject:
    """Handle the case's events through ``name``'s app with the production plumbing, counted; check them."""
    import functions_framework

    from shared import clients
    from shared import runtime as runtimes
    from shared.notify import HttpTransport
    from shared.publisher import PubSubPublisher

    client, counter = counted_firestore(PROJECT)
    ledger = FirestoreLedger(client, prefix=stage.config.ledger_prefix)
    publisher = PubSubPublisher(stage.config.project)
    runtime = runtimes.Runtime(stage.config, ledger, publisher, HttpTransport(), ports=stage.ports)
    app = functions_framework.create_app(target=name, source=str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
    ledger.get_doc("pointers", "warm-up")  # the channel is made on the first call, not in the window
    clients.publisher()
    events = len(case.requests)
    with next_events(stage.config, case.expect) as read, runtimes.use(runtime), _quiet():
        before, cpu = counter.snapshot(), time.process_time()
        seconds, answers = answer_all(app, case.requests, concurrency)
        cpu, counts = time.process_time() - cpu, counter.snapshot().minus(before)
        seen = read()
    client.close()
    failed = [answer for answer in answers if answer.status not in (200, 204) or answer.text != "done"]
    if failed:
        statuses = Counter(f"{answer.status} {answer.text[:40]}" for answer in answers)
        raise RuntimeError(f"{name}: answers {dict(statuses)}; the first failed: {failed[0].text[:300]}")
    if seen != case.expect:
        raise RuntimeError(f"{name}: expected next events {dict(case.expect)}, the topics held {dict(seen)}")
    effect = case.check()
    published = ", ".join(f"{count} {label}" for label, count in sorted(seen.items()))
    window = {
        "events": events,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": events / seconds if seconds > 0 else 0.0,
        "redelivered": sum(answer.redelivered for answer in answers),
        # This process's CPU (every thread: the app, the clients' gRPC, the fakes) per event.
        "cpu_ms_per_event": cpu * 1000 / max(events, 1),
    }
    return {"per_event": counts.per(events), "window": window, "effect": f"{effect}; published {published}"}


def measure(events: int, concurrency: int, progress: Callable[[str], None]) -> JsonObject:
    """Every chain function's figures, keyed by function (``results["hot_path"]`` entries)."""
    # A ledger namespace of its own: no window, pointer or lease of an earlier measurement is seen.
    config = chain_config(events, f"chain-{uuid.uuid4().hex[:6]}-")
    ensure_topics(config)
    seed_client, _ = counted_firestore(PROJECT)
    seeder = FirestoreLedger(seed_client, prefix=config.ledger_prefix)
    out: JsonObject = {}
    for name in FUNCTIONS:
        stage = Stage(config, seeder)
        with _quiet():
            case = BUILDERS[name](stage, events)
        figure = run_case(name, stage, case, concurrency)
        entry: JsonObject = {
            "path": PATH,
            "per_event": figure["per_event"],
            "in_process": figure["window"],
            "effect": figure["effect"],
        }
        line = f"{name}: {figure['window']['rate']:.0f}/s, {_per(figure['per_event'])} per event"
        if name in NO_ONE_RUN_VARIANT:
            entry["one_run"] = f"not measured: {NO_ONE_RUN_VARIANT[name]}"
        else:
            stage = Stage(config, seeder)
            with _quiet():
                case = on_drift_alert(stage, events, one_run=True)
            shared = run_case(name, stage, case, concurrency)
            entry.update(
                per_event_shared_run=shared["per_event"],
                in_process_shared_run=shared["window"],
                effect_shared_run=shared["effect"],
            )
            line += f"; one run {shared['window']['rate']:.0f}/s, {_per(shared['per_event'])} per event"
        out[name] = entry
        progress(f"item 2: {line}")
    seed_client.close()
    return out


def _per(per: Mapping[str, float]) -> str:
    return f"{per['reads']:g} reads / {per['writes']:g} writes / {per['round_trips']:g} round trips"
