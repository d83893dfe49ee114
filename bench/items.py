"""The measurements, one function per item of issue 11, each returning plain JSON for the report.

Every figure is taken with its baseline in the same run: the bare function on the same host (or started the
same way, for cold starts), and the Firestore emulator's raw create rate measured by the same client.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import load
from bench.counting import Counts, counted_firestore
from bench.cpu import metered
from bench.servers import BARE, PROJECT, cold_start, post_json
from emulators.stack import ROOT

JsonObject = dict[str, Any]
NOTIFY_TOPIC = "bench-notifications"
NOTIFY_PATH = f"/notify/projects/{PROJECT}/topics/{NOTIFY_TOPIC}"
DATA_BUCKET = "bench-data"
#: The dataset's quiet period (bench/pipeline.yaml: 3 s) and a little more: a batch is due after it.
QUIET_SECONDS = 3.1
CSV = "f1,f2,f3,f4,label\n" + "".join(
    f"{i % 7 - 3}.5,0.{i},1.{i},-2.{i},{'yes' if i % 2 else 'no'}\n" for i in range(24)
)


def progress(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    """How much each item sends (``quick`` for the smoke test, ``full`` adds the 100,000-run tier)."""

    cold_repeats: int = 1
    bare_events: int = 1000
    raw_creates: int = 1000
    notify_events: int = 200
    counted_events: int = 20
    burst_objects: int = 1000
    senders: tuple[int, ...] = (1, 10, 100)
    scale_events: tuple[int, ...] = (50, 200, 300)
    scale_objects: tuple[int, ...] = (100, 1000, 500)
    run_tiers: tuple[int, ...] = (10, 1000)
    cold_functions: tuple[str, ...] = ()  # empty: every entry point of main.py
    end_to_end: bool = True  # item 4 (the whole stack, about 40 s)
    chain_events: int = 100  # item 2, per chain function (bench/chain_paths.py): about 25 s for the six

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            1, 60, 60, 20, 3, 20, (1, 4), (5, 20), (5, 20), (10, 50), ("notify",), False, chain_events=5
        )

    @classmethod
    def full(cls) -> Sizes:
        return cls(run_tiers=(10, 1000, 100_000))


class Env:
    """Where the servers of this run are (read from the applied stack variables)."""

    def __init__(self, env: dict[str, str], log_dir: Path, groups: Mapping[str, int] | None = None) -> None:
        self.groups = dict(groups or {})  # component name -> its process group (CPU accounting)
        self.functions = env["FUNCTIONS_URL"].rstrip("/")
        self.sink = env["WEBHOOK_SINK_URL"].rstrip("/")
        self.storage = env["STORAGE_EMULATOR_HOST"].rstrip("/")
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)

    def sink_count(self, prefix: str) -> int:
        response = requests.get(f"{self.sink}/_sink/requests", params={"prefix": prefix}, timeout=30)
        response.raise_for_status()
        return len(response.json())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The functions' own log lines (JSON on stdout) when they run in this process: not the table's place."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


# -- baselines -------------------------------------------------------------------------------------------


def firestore_raw_creates(count: int, concurrency: int) -> JsonObject:
    """The emulator's raw write rate: ``count`` one-document creates by ``concurrency`` threads sharing one
    client, the way the function host's threads share the ledger's client."""
    client, _counter = counted_firestore(PROJECT)
    collection = client.collection(f"bench-raw-{uuid.uuid4().hex[:8]}")
    collection.document("warm").create({"n": -1})
    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(lambda n: collection.document(f"d{n}").create({"n": n, "at": time.time()}), range(count))
        )
    seconds = time.perf_counter() - began
    client.close()
    return {"creates": count, "concurrency": concurrency, "seconds": seconds, "rate": count / seconds}


def bare_via_host(env: Env, count: int, concurrency: int) -> JsonObject:
    sent = load.send_all(env.functions, [load.Request("/bare", b"{}")] * count, concurrency)
    return {"events": count, "concurrency": concurrency, "seconds": sent.seconds, "rate": sent.rate}


# -- item 1: cold start ----------------------------------------------------------------------------------


def _first_event(
    name: str, env: Env, uploads: Callable[[int], list[JsonObject]]
) -> tuple[str, Callable[[str], int]]:
    """The first event each function gets: a real one where the bench can make it, else a minimal delivery
    that still runs the whole start (import, config, ledger client, one ledger write of its rejection)."""
    tag = uuid.uuid4().hex[:10]
    if name == "notify":
        data, attributes = load.notification(f"cold-{tag}", f"cold-{tag}")
        item = load.push(data, attributes, f"cold-{tag}", "projects/p/subscriptions/s")
        return (
            "a notification (2 channels delivered)",
            lambda url: (
                requests.post(
                    url + f"/projects/{PROJECT}/topics/{NOTIFY_TOPIC}",
                    data=item.body,
                    headers=item.headers,
                    timeout=60,
                ).status_code
            ),
        )
    if name == "on_data_object":
        resource = uploads(1)[0]
        item = load.storage_event(resource, "/")
        return (
            "a valid CSV object admitted",
            lambda url: (
                requests.post(url + "/", data=item.body, headers=item.headers, timeout=60).status_code
            ),
        )
    if name == "reconcile":
        return "one tick", lambda url: post_json(url + "/", {}, timeout=60)
    if name in ("on_git_push", "on_chat_approval"):
        return "an unsigned request (401, rejection recorded)", lambda url: post_json(
            url + "/", {"x": tag}, timeout=60
        )
    data, attributes = load.notification(f"cold-{tag}", f"cold-{tag}")
    item = load.push(b'{"not": "this function\'s event"}', {}, f"cold-{tag}", "projects/p/subscriptions/s")
    return (
        "a foreign event (rejection recorded)",
        lambda url: requests.post(url + "/", data=item.body, headers=item.headers, timeout=60).status_code,
    )


def cold_starts(env: Env, sizes: Sizes, uploads: Callable[[int], list[JsonObject]]) -> JsonObject:
    """Each function's cold start, each paired with a bare function's start just before it: on a shared
    machine the load changes from minute to minute, and the pair sees the same load."""
    import main  # the entry points Cloud Functions would be asked for

    def bare_start() -> float:
        return cold_start("bare", BARE, lambda url: post_json(url + "/", {}), env.log_dir)

    bare_start()  # the first start of all also warms the disk cache for every later one
    bare_all: list[float] = []
    functions: JsonObject = {}
    for name in sizes.cold_functions or main.__all__:
        samples, ratios = [], []
        what = ""
        for _ in range(sizes.cold_repeats):
            bare = bare_start()
            what, send = _first_event(name, env, uploads)
            seconds = cold_start(name, ROOT / "main.py", send, env.log_dir)
            bare_all.append(bare)
            samples.append(seconds)
            ratios.append(seconds / bare)
        seconds, ratio = statistics.median(samples), statistics.median(ratios)
        functions[name] = {
            "seconds": seconds,
            "samples": samples,
            "first_event": what,
            "ratio": ratio,
            "bare_samples": bare_all[-len(samples) :],
        }
        progress(
            f"cold start: {name} {seconds * 1000:.0f} ms = {ratio:.2f}x the bare start beside it ({what})"
        )
    return {
        "bare_seconds": statistics.median(bare_all),
        "bare_samples": bare_all,
        "functions": functions,
        "goal_ratio": 1.3,
    }


# -- item 2: hot paths -----------------------------------------------------------------------------------


def counted_notify(events: int, shared_run: bool) -> Counts:
    """Firestore reads/writes/round trips of ``events`` notifications handled in-process by ``main.notify``
    with the production runtime, its ledger's client counted."""
    tag = f"count-{uuid.uuid4().hex[:8]}"
    items = load.notification_pushes("/", events, tag, shared_run, PROJECT)
    return _counted("notify", items)


def _counted(target: str, items: Sequence[load.Request], then: Callable[[], object] | None = None) -> Counts:
    import functions_framework

    from shared import runtime as runtimes
    from shared.ledger import FirestoreLedger

    client, counter = counted_firestore(PROJECT)
    production = runtimes.production_runtime()
    production.ledger = FirestoreLedger(client, prefix=production.config.ledger_prefix)
    app = functions_framework.create_app(target=target, source=str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
    test_client = app.test_client()
    with runtimes.use(production), _quiet():
        before = counter.snapshot()
        for item in items:
            path = NOTIFY_PATH.removeprefix("/notify") if target == "notify" else "/"
            answer = test_client.post(path, data=item.body, headers=item.headers)
            if answer.status_code != 200:
                raise RuntimeError(
                    f"{target} answered {answer.status_code}: {answer.get_data(as_text=True)[:300]}"
                )
        if then is not None:
            then()  # more of the events' cost, counted with them
        counts = counter.snapshot().minus(before)
    client.close()
    return counts


def notify_via_host(env: Env, events: int, concurrency: int, shared_run: bool) -> JsonObject:
    tag = f"host-{uuid.uuid4().hex[:8]}"
    items = load.notification_pushes(NOTIFY_PATH, events, tag, shared_run, PROJECT)
    with metered(env.groups) as meter:
        sent = load.send_all(env.functions, items, concurrency, redeliver=True)
    if not sent.ok:
        raise RuntimeError(f"notify answered {sent.statuses}")
    return {
        "events": events,
        "concurrency": concurrency,
        "shared_run": shared_run,
        "seconds": sent.seconds,
        "rate": sent.rate,
        "redelivered": sent.redelivered,
        "cpu_ms_per_event": meter.per_event_ms(events),
        "busy_cores": meter.busy_cores(),
    }


def _wait(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` every 20 ms; the time at which it first held (perf_counter)."""
    limit = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > limit:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(0.02)
    return time.perf_counter()


def _publish_all(topic: str, payloads: Sequence[tuple[bytes, dict[str, str]]]) -> float:
    from google.cloud.pubsub_v1 import PublisherClient

    publisher = PublisherClient()
    path = publisher.topic_path(PROJECT, topic)
    began = time.perf_counter()
    futures = [publisher.publish(path, data, **attributes) for data, attributes in payloads]
    for future in futures:
        future.result(timeout=60)
    return began


def notify_via_push(env: Env, events: int) -> JsonObject:
    """Published on the topic; the clock stops when the sink holds the second channel's delivery of every
    event (channels are delivered in order)."""
    tag = f"push-{uuid.uuid4().hex[:8]}"
    before = env.sink_count("/hook/audit")
    payloads = [load.notification(f"{tag}-{i}", f"{tag}-run-{i}") for i in range(events)]
    began = _publish_all(NOTIFY_TOPIC, payloads)
    ended = _wait("notify via push", lambda: env.sink_count("/hook/audit") >= before + events, 120)
    return {"events": events, "seconds": ended - began, "rate": events / (ended - began)}


def bare_via_push(env: Env, events: int) -> JsonObject:
    """The same through a push subscription to the bare function (a topic and subscription made here)."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    topic = f"bench-bare-{uuid.uuid4().hex[:6]}"
    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic_path = publisher.topic_path(PROJECT, topic)
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(PROJECT, topic),
            "topic": topic_path,
            "push_config": {"push_endpoint": f"{env.functions}/bare/projects/{PROJECT}/topics/{topic}"},
            "ack_deadline_seconds": 30,
        }
    )
    subscriber.close()

    def seen() -> int:
        return int(requests.get(f"{env.functions}/bare", timeout=10).text)

    before = seen()
    began = _publish_all(topic, [(f"{i}".encode(), {}) for i in range(events)])
    ended = _wait("bare via push", lambda: seen() >= before + events, 120)
    return {"events": events, "seconds": ended - began, "rate": events / (ended - began)}


# -- storage: uploads and the burst ----------------------------------------------------------------------


class Uploader:
    """Writes small valid CSV objects into the data bucket through the JSON API (simple media upload),
    outside every timed window; returns each object's resource, which is the finalized event's body."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.session = requests.Session()
        self.count = 0
        response = self.session.post(
            f"{env.storage}/storage/v1/b", params={"project": PROJECT}, json={"name": DATA_BUCKET}, timeout=30
        )
        if response.status_code not in (200, 409):
            raise RuntimeError(f"cannot create the bucket: {response.status_code} {response.text[:200]}")

    def __call__(self, count: int, prefix: str = "rows/") -> list[JsonObject]:
        def one(index: int) -> JsonObject:
            name = f"{prefix}{uuid.uuid4().hex[:12]}-{index}.csv"
            response = requests.post(
                f"{self.env.storage}/upload/storage/v1/b/{DATA_BUCKET}/o",
                params={"uploadType": "media", "name": name},
                data=CSV.encode(),
                headers={"Content-Type": "text/csv"},
                timeout=60,
            )
            response.raise_for_status()
            resource: JsonObject = response.json()
            return resource

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            resources = list(pool.map(one, range(count)))
        self.count += count
        return resources


#: What ``on_data_object``'s per-event counts include besides the object's own admission.
OBJECT_COUNTS_INCLUDE = "with its share of its batch's close"


def counted_objects(uploads: Uploader, events: int) -> Counts:
    """Per valid object: its admission and its share of its batch's close (the reconciler's
    ``close_due_batches`` once the quiet period has passed: the pending members read, marked batched, the
    batch record and its step), which every object pays sooner or later and a burst pays in its window."""
    from shared.chain.data import close_due_batches
    from shared.runtime import get_runtime

    items = [load.storage_event(resource, "/") for resource in uploads(events)]

    def close() -> None:
        time.sleep(QUIET_SECONDS)
        runtime = get_runtime()  # the counted runtime, inside the window
        close_due_batches(runtime, runtime.clock())

    counts = _counted("on_data_object", items, then=close)
    if _pending_members():
        raise RuntimeError("the counted objects' batch was not closed: the counts would miss its cost")
    return counts


def data_runs() -> set[str]:
    from shared.runtime import get_runtime

    return {
        run.run_id
        for run in get_runtime().ledger.list_runs(limit=200)
        if run.run_id.startswith("data-rows-") and "-q-" not in run.run_id
    }


def close_batches(before: set[str], timeout: float = 60.0) -> set[str]:
    """Close the pending batch as the reconciler's due work does (``close_due_batches``, in this process:
    the host's tick would also walk every run the notify measurements left running); returns the training
    runs created since ``before`` was taken."""
    from shared.chain.data import close_due_batches
    from shared.runtime import get_runtime

    runtime = get_runtime()
    time.sleep(QUIET_SECONDS)
    found: set[str] = set()

    def closed() -> bool:
        with _quiet():
            close_due_batches(runtime, runtime.clock())
        found.update(data_runs() - before)
        return not _pending_members()

    _wait("closing the batch", closed, timeout)
    return found


def _pending_members() -> int:
    from shared.runtime import get_runtime

    docs = get_runtime().ledger.query_docs("members", equals={"dataset": "rows", "batched": False}, limit=5)
    return len(docs)


def burst(env: Env, uploads: Uploader, objects: int, concurrency: int) -> JsonObject:
    resources = uploads(objects)
    items = [load.storage_event(resource, "/on_data_object") for resource in resources]
    before = data_runs()  # a full batch is closed by the burst's last event itself
    with metered(env.groups) as meter:
        sent = load.send_all(env.functions, items, concurrency, redeliver=True)
    if not sent.ok:
        raise RuntimeError(f"on_data_object answered {sent.statuses}")
    runs = close_batches(before)
    return {
        "events": objects,
        "concurrency": concurrency,
        "seconds": sent.seconds,
        "rate": sent.rate,
        "training_runs": len(runs),
        "runs": sorted(runs),
        "redelivered": sent.redelivered,
        "cpu_ms_per_event": meter.per_event_ms(objects),
        "busy_cores": meter.busy_cores(),
    }


# -- item 5: runs in the ledger --------------------------------------------------------------------------


def seed_runs(client: Any, prefix: str, finished: int, running: int) -> float:
    """``finished`` succeeded runs and ``running`` running ones, written by Firestore's BulkWriter (batched
    writes, many in flight); returns the seconds it took."""
    from datetime import UTC, datetime, timedelta

    from shared.ledger.firestore_docs import _run_to_doc
    from shared.ledger.model import Run, RunStatus

    began = time.perf_counter()
    writer = client.bulk_writer()
    collection = client.collection(f"{prefix}runs")
    start = datetime.now(UTC) - timedelta(days=1)
    for index in range(finished + running):
        done = index < finished
        at = start + timedelta(milliseconds=index)
        run = Run(
            f"seed-{index:06d}",
            RunStatus.SUCCEEDED if done else RunStatus.RUNNING,
            {"seeded": True},
            {},
            at,
            at,
            at if done else None,
        )
        writer.create(collection.document(run.run_id), _run_to_doc(run))
    writer.close()
    return time.perf_counter() - began


#: Calls per tier of item 5 (the median is reported).
REPEATS = 5


def runs_scale(tiers: Sequence[int]) -> list[JsonObject]:
    """Per tier: seed the ledger (its own prefix), then time and count the operator's ``runs`` listing
    (20 newest) and one reconcile tick (its walk lists the running runs)."""
    from shared import runtime as runtimes
    from shared.chain.reconcile import tick
    from shared.ledger import FirestoreLedger

    rows = []
    for finished in tiers:
        prefix = f"scale{finished}-{uuid.uuid4().hex[:4]}-"
        client, counter = counted_firestore(PROJECT)
        progress(f"scale: seeding {finished} finished runs + 3 running")
        seeded = seed_runs(client, prefix, finished, 3)
        ledger = FirestoreLedger(client, prefix=prefix)
        base = runtimes.production_runtime()
        runtime = runtimes.Runtime(base.config, ledger, base.publisher, base.transport)
        ledger.list_runs(limit=20)  # warm the connection
        listings, ticks = [], []
        for _ in range(REPEATS):  # the median of a few: one call is tens of milliseconds, noise is too
            before = counter.snapshot()
            began = time.perf_counter()
            listed = ledger.list_runs(limit=20)
            listings.append(time.perf_counter() - began)
            listing_counts = counter.snapshot().minus(before)
            before = counter.snapshot()
            with runtimes.use(runtime), _quiet():
                began = time.perf_counter()
                report = tick(runtime)
                ticks.append(time.perf_counter() - began)
            tick_counts = counter.snapshot().minus(before)
        listing, ticking = statistics.median(listings), statistics.median(ticks)
        rows.append(
            {
                "finished_runs": finished,
                "seed_seconds": seeded,
                "seed_rate": (finished + 3) / seeded,
                "runs_listing_seconds": listing,
                "runs_listing_reads": listing_counts.reads,
                "runs_listing_round_trips": listing_counts.round_trips,
                "runs_listed": len(listed),
                "tick_seconds": ticking,
                "tick_reads": tick_counts.reads,
                "tick_round_trips": tick_counts.round_trips,
                "tick_runs_walked": int(report.to_json().get("runs_walked", 0) or 0),
            }
        )
        progress(
            f"scale: {finished} finished runs → runs listing {listing * 1000:.0f} ms "
            f"({listing_counts.reads} reads), "
            f"tick {ticking * 1000:.0f} ms ({tick_counts.reads} reads)"
        )
        client.close()
    return rows
