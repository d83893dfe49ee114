"""Item 2 for the chain's six Pub/Sub functions: events/s and Firestore operations per event.

Each function handles its events in this process, through functions-framework's own app
(``create_app(target=NAME, source=main.py)``), three ways (:data:`WAYS`, :func:`run_case`): the app driven
by 8 threads (the concurrency of notify's host figure), the app behind werkzeug's threaded HTTP server POSTed
by 8 senders, and that server fed by a push subscription of the Pub/Sub emulator. Each way has its own seeded
state, with the production runtime's plumbing: the ledger on the Firestore emulator (its client counted, see
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
ledger prefix of its own per way, and N extra models with one Cloud Run service each. A drift alert,
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


class _Answers:
    """WSGI middleware: every answer the app gives (status and body), so a delivery nobody sees the answer
    of (the push subscription's) is still checked."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seen: list[Answer] = []
        self.in_flight = 0
        self.most_in_flight = 0  # the most deliveries handled at once (what the sender keeps outstanding)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        status: list[int] = []

        def start(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(line.split(" ", 1)[0]))
            return start_response(line, headers, exc_info)

        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            body = b"".join(self.app(environ, start))
        finally:
            with self.lock:
                self.in_flight -= 1
        with self.lock:
            self.seen.append(Answer(status[0] if status else 0, body.decode(errors="replace"), 0))
        return [body]

    def done(self) -> int:
        with self.lock:
            return sum(1 for answer in self.seen if answer.status < 500)


def served(
    app: Any, requests: Sequence[load.Request], concurrency: int, *, push: bool
) -> tuple[float, list[Answer], int]:
    """The app behind werkzeug's threaded HTTP server (the function host's server) on a free loopback port,
    in this process; the requests POSTed to it by senders, or published for a push subscription to deliver.
    The clock runs from the first send (publish) to the last final answer; a 5xx (a retry) counts as a
    redelivery. Also returns the most deliveries that were in flight at once."""
    from werkzeug.serving import make_server

    from emulators.common.proc import free_port

    answers = _Answers(app)
    port = free_port()
    server = make_server("127.0.0.1", port, answers, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        if push:
            seconds = _pushed(base, requests, answers)
        else:
            sent = load.send_all(base, requests, concurrency, redeliver=True)
            seconds = sent.seconds
    finally:
        server.shutdown()
        thread.join(10)
    final = [answer for answer in answers.seen if answer.status < 500]
    retried = len(answers.seen) - len(final)
    finals = [Answer(a.status, a.text, retried if i == 0 else 0) for i, a in enumerate(final)]
    return seconds, finals, answers.most_in_flight


def _pushed(base: str, requests: Sequence[load.Request], answers: _Answers, timeout: float = 120.0) -> float:
    """Publish each request's message on a topic made here whose push subscription delivers to ``base`` +
    the request's path (the topic the function reads from it); seconds until every one is answered."""
    import base64

    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher, subscriber = PublisherClient(), SubscriberClient()
    topics: dict[str, str] = {}
    subscriptions: list[str] = []
    for path in sorted({item.path for item in requests}):
        name = f"bench-chain-push-{uuid.uuid4().hex[:8]}"
        topic = publisher.topic_path(PROJECT, name)
        publisher.create_topic(name=topic)
        subscription = subscriber.subscription_path(PROJECT, name)
        subscriber.create_subscription(
            request={
                "name": subscription,
                "topic": topic,
                "push_config": {"push_endpoint": base + path},
                "ack_deadline_seconds": 30,
            }
        )
        topics[path], subscriptions = topic, [*subscriptions, subscription]
    messages = []
    for item in requests:
        message = json.loads(item.body)["message"]
        attributes = message.get("attributes") or {}
        messages.append((topics[item.path], base64.b64decode(message["data"]), attributes))
    try:
        began = time.perf_counter()
        futures = [publisher.publish(topic, data, **attributes) for topic, data, attributes in messages]
        for future in futures:
            future.result(timeout=60)
        limit = began + timeout
        while answers.done() < len(requests):
            if time.perf_counter() > limit:
                raise RuntimeError(f"push: {answers.done()} of {len(requests)} answered in {timeout:.0f}s")
            time.sleep(0.005)
        return time.perf_counter() - began
    finally:
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                subscriber.delete_subscription(request={"subscription": subscription})
        subscriber.close()


def run_case(name: str, stage: Stage, case: Case, concurrency: int, way: str = "in_process") -> JsonObject:
    """Handle the case's events through ``name``'s app with the production plumbing, counted; check them.

    ``way``: ``in_process`` (the app's WSGI interface from ``concurrency`` threads), ``host`` (the app
    behind a threaded HTTP server, POSTed by ``concurrency`` senders) or ``push`` (the events published on a
    topic of the Pub/Sub emulator whose push subscription delivers them to that server)."""
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
        in_flight = concurrency
        if way == "in_process":
            seconds, answers = answer_all(app, case.requests, concurrency)
        else:
            seconds, answers, in_flight = served(app, case.requests, concurrency, push=way == "push")
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
        "most_in_flight": in_flight,  # deliveries handled at once, at most (push: what the emulator sent)
        # This process's CPU (every thread: the app, the clients' gRPC, the fakes) per event.
        "cpu_ms_per_event": cpu * 1000 / max(events, 1),
    }
    return {"per_event": counts.per(events), "window": window, "effect": f"{effect}; published {published}"}


#: The ways each chain function is measured (see :func:`run_case`).
WAYS = ("in_process", "host", "push")


def measure(
    events: int, concurrency: int, progress: Callable[[str], None], ways: Sequence[str] = WAYS
) -> JsonObject:
    """Every chain function's figures, keyed by function (``results["hot_path"]`` entries)."""
    # A ledger namespace of its own per way: no window, pointer or lease of another measurement is seen.
    configs = {way: chain_config(events, f"chain-{uuid.uuid4().hex[:6]}-") for way in ways}
    ensure_topics(configs[ways[0]])  # one topic prefix for all
    seed_client, _ = counted_firestore(PROJECT)
    seeders = {way: FirestoreLedger(seed_client, prefix=cfg.ledger_prefix) for way, cfg in configs.items()}
    out: JsonObject = {}
    for name in FUNCTIONS:
        entry: JsonObject = {"path": PATH}
        rates = []
        for way in ways:
            stage = Stage(configs[way], seeders[way])
            with _quiet():
                case = BUILDERS[name](stage, events)
            figure = run_case(name, stage, case, concurrency, way)
            entry[way] = figure["window"]
            rates.append(f"{way.replace('_', '-')} {figure['window']['rate']:.0f}/s")
            if way == ways[0]:
                entry.update(per_event=figure["per_event"], effect=figure["effect"])
        line = f"{name}: {', '.join(rates)}; {_per(entry['per_event'])} per event"
        if name in NO_ONE_RUN_VARIANT:
            entry["one_run"] = f"not measured: {NO_ONE_RUN_VARIANT[name]}"
        else:
            stage = Stage(configs[ways[0]], seeders[ways[0]])
            with _quiet():
                case = on_drift_alert(stage, events, one_run=True)
            shared = run_case(name, stage, case, concurrency, ways[0])
            entry.update(
                per_event_shared_run=shared["per_event"],
                **{f"{ways[0]}_shared_run": shared["window"]},
                effect_shared_run=shared["effect"],
            )
            line += f"; one run {shared['window']['rate']:.0f}/s, {_per(shared['per_event'])} per event"
        out[name] = entry
        progress(f"item 2: {line}")
    seed_client.close()
    return out


def _per(per: Mapping[str, float]) -> str:
    return f"{per['reads']:g} reads / {per['writes']:g} writes / {per['round_trips']:g} round trips"
