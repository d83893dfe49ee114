"""``python -m bench [--quick | --full] [--out FILE] [--charts DIR]``: run every measurement once, print the
table on stdout, write ``bench/results.json`` and the charts. Progress goes to stderr."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chain_paths, e2e, items, report
from bench.items import Env, Sizes, Uploader, progress
from bench.servers import bench_stack

HERE = Path(__file__).resolve().parent
HOT_CONCURRENCY = 8


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def measure(sizes: Sizes, log_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine()}
    began = time.perf_counter()
    with bench_stack(progress) as state:
        env = Env(state.env, log_dir, {name: part.pid for name, part in state.components.items()})
        uploads = Uploader(env)
        progress("baselines: the Firestore emulator's raw create rate, the bare function on the host")
        raw = items.firestore_raw_creates(sizes.raw_creates, HOT_CONCURRENCY)
        bare = items.bare_via_host(env, sizes.bare_events, HOT_CONCURRENCY)
        bare_push = items.bare_via_push(env, sizes.notify_events)
        results["baselines"] = {"firestore_creates": raw, "bare_host": bare, "bare_push": bare_push}
        progress(
            f"baselines: Firestore {raw['rate']:.0f} creates/s, bare {bare['rate']:.0f}/s on the host, "
            f"{bare_push['rate']:.0f}/s through a push subscription"
        )

        progress("item 1: cold starts (a fresh process per function until its first event is answered)")
        results["cold_start"] = items.cold_starts(env, sizes, uploads)

        progress("item 2: hot paths — Firestore operations per event (in-process, counted)")
        distinct = items.counted_notify(sizes.counted_events, shared_run=False)
        shared = items.counted_notify(sizes.counted_events, shared_run=True)
        objects = items.counted_objects(uploads, sizes.counted_events)  # their batch closed: none pending
        progress("item 2: notify through the host and through the push subscription")
        host = items.notify_via_host(env, sizes.notify_events, HOT_CONCURRENCY, shared_run=False)
        host_shared = items.notify_via_host(env, sizes.notify_events, HOT_CONCURRENCY, shared_run=True)
        push = items.notify_via_push(env, sizes.notify_events)
        progress(
            f"notify: {distinct.per(sizes.counted_events)} per event, "
            f"{shared.per(sizes.counted_events)} on one run; "
            f"on_data_object: {objects.per(sizes.counted_events)}"
        )
        progress(
            f"notify: host {host['rate']:.0f}/s, host one run {host_shared['rate']:.0f}/s, "
            f"push {push['rate']:.0f}/s"
        )
        results["hot_path"] = {
            "notify": {
                "per_event": distinct.per(sizes.counted_events),
                "per_event_shared_run": shared.per(sizes.counted_events),
                "host": host,
                "host_shared_run": host_shared,
                "push": push,
            },
            "on_data_object": {
                "per_event": objects.per(sizes.counted_events),
                "per_event_includes": items.OBJECT_COUNTS_INCLUDE,
            },
        }
        progress(
            f"item 2: the chain functions, {sizes.chain_events} events each per way (in-process, behind "
            f"an HTTP server, via a push subscription; {HOT_CONCURRENCY} threads or senders) over the "
            "emulators' ledger and Pub/Sub and fake Google services"
        )
        results["hot_path"].update(chain_paths.measure(sizes.chain_events, HOT_CONCURRENCY, progress))

        progress("item 3: burst — object-finalized events for one dataset through the host")
        main_senders = 10 if 10 in sizes.senders else sizes.senders[-1]
        bursts = {}
        for senders, count in zip(sizes.senders, sizes.scale_objects, strict=True):
            bursts[senders] = items.burst(
                env, uploads, count if senders != main_senders else sizes.burst_objects, senders
            )
            progress(
                f"burst: {bursts[senders]['events']} objects, {senders} senders → "
                f"{bursts[senders]['rate']:.0f}/s, {bursts[senders]['training_runs']} training run(s)"
            )
        results["burst"] = bursts[main_senders]
        results["hot_path"]["on_data_object"]["host"] = bursts[main_senders]

        progress("item 5: scale — senders 1/10/100 on notify; runs in the ledger")
        notify_scale = {}
        for senders, count in zip(sizes.senders, sizes.scale_events, strict=True):
            notify_scale[senders] = items.notify_via_host(env, count, senders, shared_run=False)
            progress(f"scale: notify with {senders} senders → {notify_scale[senders]['rate']:.0f}/s")
        results["scale"] = {
            "notify_senders": notify_scale,
            "burst_senders": bursts,
            "runs": items.runs_scale(sizes.run_tiers),
        }
    if sizes.end_to_end:
        progress("item 4: end to end on the whole stack (its simulated work at zero)")
        results["end_to_end"] = e2e.end_to_end(progress)
    else:
        results["end_to_end"] = {"measured": False, "why": "skipped by --quick (the whole stack takes ~40 s)"}
    results["bench_seconds"] = time.perf_counter() - began
    return report.with_ratios(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick", action="store_true", help="tiny sizes (the smoke test): seconds, not minutes"
    )
    group.add_argument("--full", action="store_true", help="add the 100,000-run tier (FULL=1)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--charts", type=Path, default=HERE.parent / "docs" / "performance")
    parser.add_argument(
        "--before",
        type=Path,
        default=HERE / "results-before.json",
        help="results of a run before the improvements, charted beside this run's (skipped if absent)",
    )
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full() if args.full else Sizes()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        results = measure(sizes, Path(logs))
    before = json.loads(args.before.read_text()) if args.before and args.before.is_file() else None
    report.write(results, args.out, args.charts, before)
    print(report.table(results))
    progress(f"done in {results['bench_seconds']:.0f}s; {args.out} and the charts in {args.charts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
