"""The report: ratios against the baselines, the table on stdout, ``results.json``, and (``bench/charts.py``)
one SVG chart per item."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

BURST_GOAL = 200.0
COLD_GOAL = 1.3
CEILING_GOAL = 0.5


@dataclass(frozen=True)
class Row:
    item: str
    figure: str
    value: str
    baseline: str
    ratio: float | None
    goal: str
    met: bool | None


#: Item 4's goal: a signed push to its candidate taking traffic.
E2E_PUSH_GOAL = 2.0
#: Item 4's stage that the serving image's own start dominates (a new revision's process imports scikit-learn
#: and loads the model before its startup probe answers), with the smoke checks on its tag URL; the rest of
#: push → canary is the pipeline's own part.
REVISION_START_STAGE = "ready, smoke passed"
#: Item 4's two pushes: the key prefix of each one's figures in ``results["end_to_end"]`` and its label.
E2E_PUSHES = (("", "first push (cold functions)"), ("warm_", "second push (warm functions)"))


def ceiling(raw_rate: float, writes_per_event: float) -> float:
    """The ledger's ceiling for a function: the emulator's raw write rate over the writes one event needs."""
    return raw_rate / writes_per_event if writes_per_event > 0 else float("inf")


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else 0.0


#: How an item-2 figure was taken, and its label: through the function host (POSTed by senders), through
#: the push subscription, or in the bench's own process through functions-framework's app (the chain
#: functions, bench/chain_paths.py: 8 threads, the Google services as fakes); ``*_shared_run``: every
#: event on one run.
WAYS = {
    "host": "host",
    "host_shared_run": "host, one run",
    "push": "push subscription",
    "in_process": "in-process",
    "in_process_shared_run": "in-process, one run",
}


def ceiling_of(hot: JsonObject, way: str) -> float:
    """The ceiling a way's rate is held against: the one-run figures' own when their writes differ."""
    if way.endswith("_shared_run") and "ceiling_shared_run" in hot:
        return float(hot["ceiling_shared_run"])
    return float(hot["ceiling"])


def with_ratios(results: JsonObject) -> JsonObject:
    """Add each ceiling and ratio to ``results`` (in place) and return it."""
    raw = results["baselines"]["firestore_creates"]["rate"]
    bare = results["baselines"]["bare_host"]["rate"]
    bare_push = results["baselines"]["bare_push"]["rate"]
    for hot in results.get("hot_path", {}).values():
        hot["ceiling"] = ceiling(raw, hot["per_event"]["writes"])
        if "per_event_shared_run" in hot:  # the writes an event needs when its run is shared
            hot["ceiling_shared_run"] = ceiling(raw, hot["per_event_shared_run"]["writes"])
        for way in WAYS:
            if way in hot:
                hot[way]["vs_bare"] = ratio(hot[way]["rate"], bare_push if way == "push" else bare)
                hot[way]["vs_ceiling"] = ratio(hot[way]["rate"], ceiling_of(hot, way))
    if "burst" in results:
        results["burst"]["vs_goal"] = ratio(results["burst"]["rate"], BURST_GOAL)
    e2e = results.get("end_to_end") or {}
    if e2e.get("measured"):
        for prefix, _label in E2E_PUSHES:
            own = pipeline_seconds(e2e, prefix)
            if own is not None:
                e2e[f"{prefix}push_to_canary_pipeline_seconds"] = own
    runs = results.get("scale", {}).get("runs") or []
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        # The listing assembles each listed run (one steps query per run): its cost follows the runs it
        # lists (at most the limit), so it is compared per listed run; the tick as a whole.
        results["scale"]["runs_growth"] = {
            "finished_runs": [first["finished_runs"], last["finished_runs"]],
            "listing": ratio(_per_listed(last), _per_listed(first)),
            "tick": ratio(last["tick_seconds"], first["tick_seconds"]),
        }
    return results


def revision_start(e2e: JsonObject, prefix: str = "") -> float | None:
    """The seconds of the stage a push's candidate revision spends starting (None if not recorded)."""
    stages = e2e.get(f"{prefix}stages") or []
    stage = next((stage for stage in stages if stage["name"] == REVISION_START_STAGE), None)
    return None if stage is None else float(stage["seconds"])


def pipeline_seconds(e2e: JsonObject, prefix: str = "") -> float | None:
    """A push's push → canary without the candidate revision's start: what the pipeline itself takes.

    ``prefix`` picks the push: "" the first (cold function instances), "warm_" the second. None when that
    push was not measured or its stages lack the revision's start."""
    total = e2e.get(f"{prefix}push_to_canary_seconds")
    start = revision_start(e2e, prefix)
    if total is None or start is None:
        return None
    return max(float(total) - start, 0.0)


def _per_listed(tier: JsonObject) -> float:
    return float(tier["runs_listing_seconds"]) / max(1, int(tier.get("runs_listed") or 1))


#: How the CPU rows name the stack's processes (bench/cpu.py measures each process group).
CPU_NAMES = {"functions": "host", "firestore": "Firestore", "storage": "storage", "pubsub": "Pub/Sub"}


def _cpu_rows(item: str, label: str, figure: JsonObject) -> list[Row]:
    """Where the cores went, per event: CPU milliseconds by process (bench/cpu.py), when measured."""
    spent = figure.get("cpu_ms_per_event")
    if not spent:
        return []
    parts = [
        f"{CPU_NAMES.get(name, name)} {ms:.1f}"
        for name, ms in sorted(spent.items(), key=lambda item: -item[1])
        if name != "total" and ms >= 0.05
    ]
    return [
        Row(
            item,
            f"{label}: CPU ms per event",
            " + ".join(parts),
            f"{spent.get('total', 0.0):.1f} ms; {figure.get('busy_cores', 0.0):.2f} cores busy",
            None,
            "",
            None,
        )
    ]


def rows(results: JsonObject) -> list[Row]:
    out: list[Row] = []
    cold = results.get("cold_start")
    if cold:
        bare = cold["bare_seconds"]
        for name, figure in cold["functions"].items():
            beside = statistics.median(figure.get("bare_samples") or [bare])  # the ratio is the pair's
            out.append(
                Row(
                    "1 cold start",
                    name,
                    f"{figure['seconds'] * 1000:.0f} ms",
                    f"bare {beside * 1000:.0f} ms",
                    figure["ratio"],
                    f"≤ {COLD_GOAL}x",
                    figure["ratio"] <= COLD_GOAL,
                )
            )
    base = results["baselines"]
    out.append(
        Row(
            "baseline",
            "Firestore emulator creates",
            f"{base['firestore_creates']['rate']:.0f}/s",
            "",
            None,
            "",
            None,
        )
    )
    out.append(
        Row("baseline", "bare function, host", f"{base['bare_host']['rate']:.0f}/s", "", None, "", None)
    )
    out.append(
        Row(
            "baseline",
            "bare function, push subscription",
            f"{base['bare_push']['rate']:.0f}/s",
            "",
            None,
            "",
            None,
        )
    )
    for name, hot in results.get("hot_path", {}).items():
        if "in_process" in hot:
            out += _in_process_rows(name, hot)
            continue
        per = hot["per_event"]
        includes = f" ({hot['per_event_includes']})" if "per_event_includes" in hot else ""
        out.append(
            Row(
                "2 hot path",
                f"{name}: Firestore per event{includes}",
                f"{per['reads']:g} reads, {per['writes']:g} writes",
                f"{per['round_trips']:g} round trips",
                None,
                "",
                None,
            )
        )
        if "per_event_shared_run" in hot:
            shared = hot["per_event_shared_run"]
            out.append(
                Row(
                    "2 hot path",
                    f"{name}: per event, one run",
                    f"{shared['reads']:g} reads, {shared['writes']:g} writes",
                    f"{shared['round_trips']:g} round trips",
                    None,
                    "",
                    None,
                )
            )
        for way, label in WAYS.items():
            if way not in hot:
                continue
            figure = hot[way]
            bare_label = "bare (push)" if way == "push" else "bare"
            out.append(
                Row(
                    "2 hot path",
                    f"{name} {label} vs bare",
                    f"{figure['rate']:.0f}/s",
                    bare_label,
                    figure["vs_bare"],
                    "",
                    None,
                )
            )
            out.append(
                Row(
                    "2 hot path",
                    f"{name} {label} vs ledger ceiling",
                    f"{figure['rate']:.0f}/s",
                    f"ceiling {ceiling_of(hot, way):.0f}/s",
                    figure["vs_ceiling"],
                    f"≥ {CEILING_GOAL}x",
                    figure["vs_ceiling"] >= CEILING_GOAL,
                )
            )
            out += _cpu_rows("2 hot path", f"{name} {label}", figure)
    burst = results.get("burst")
    if burst:
        out.append(
            Row(
                "3 burst",
                f"{burst['events']} objects, {burst['concurrency']} senders",
                f"{burst['rate']:.0f}/s, {burst['training_runs']} run",
                f"goal {BURST_GOAL:.0f}/s",
                burst["vs_goal"],
                "≥ 1x and 1 run",
                burst["vs_goal"] >= 1 and burst["training_runs"] == 1,
            )
        )
        out += _cpu_rows("3 burst", f"{burst['events']} objects", burst)
    e2e = results.get("end_to_end") or {}
    if not e2e.get("measured"):
        out.append(
            Row("4 end to end", "push → canary, rollback", "not measured", "", None, "≤ 2 s, 1 tick", None)
        )
    else:
        for prefix, label in E2E_PUSHES:
            out += _push_rows(e2e, prefix, label)
        out.append(
            Row(
                "4 end to end",
                "failing analysis → traffic on stable",
                f"{e2e['rollback_seconds']:.2f} s, {e2e['rollback_ticks']} ticks",
                f"tick every {e2e['tick_seconds']:g} s",
                None,
                "≤ 1 tick",
                e2e["rollback_ticks"] <= 1,
            )
        )
    scale = results.get("scale") or {}
    for senders, figure in (scale.get("notify_senders") or {}).items():
        out.append(
            Row("5 scale", f"notify, {senders} senders", f"{figure['rate']:.0f}/s", "", None, "", None)
        )
    for senders, figure in (scale.get("burst_senders") or {}).items():
        out.append(
            Row(
                "5 scale",
                f"burst, {senders} senders",
                f"{figure['rate']:.0f}/s, {figure['training_runs']} run",
                "",
                None,
                "",
                None,
            )
        )
    for tier in scale.get("runs") or []:
        out.append(
            Row(
                "5 scale",
                f"{tier['finished_runs']} finished runs",
                f"runs {tier['runs_listing_seconds'] * 1000:.0f} ms"
                f" / tick {tier['tick_seconds'] * 1000:.0f} ms",
                f"{tier['runs_listing_reads']} / {tier['tick_reads']} reads",
                None,
                "flat",
                None,
            )
        )
    growth = scale.get("runs_growth")
    if growth:
        worst = max(growth["listing"], growth["tick"])
        out.append(
            Row(
                "5 scale",
                f"growth {growth['finished_runs'][0]} → {growth['finished_runs'][1]} runs",
                f"listing per run {growth['listing']:.2f}x, tick {growth['tick']:.2f}x",
                "",
                worst,
                "≤ 2x (flat)",
                worst <= 2.0,
            )
        )
    return out


def _push_rows(e2e: JsonObject, prefix: str, label: str) -> list[Row]:
    """One push's rows: push → canary, and its pipeline's own part (none for a push not measured)."""
    total = e2e.get(f"{prefix}push_to_canary_seconds")
    if total is None:
        return []
    goal = f"goal {E2E_PUSH_GOAL:.0f} s"
    out = [
        Row(
            "4 end to end",
            f"signed push → canary, {label}",
            f"{total:.1f} s, {e2e[f'{prefix}push_to_canary_ticks']} ticks",
            goal,
            total / E2E_PUSH_GOAL,
            "≤ 1x",
            total <= E2E_PUSH_GOAL,
        )
    ]
    own, start = pipeline_seconds(e2e, prefix), revision_start(e2e, prefix)
    if own is not None and start is not None:
        out.append(
            Row(
                "4 end to end",
                f"{label.split(' (')[0]}, pipeline's own part (revision start excluded)",
                f"{own:.1f} s ({total:.1f} s less {start:.1f} s {REVISION_START_STAGE})",
                goal,
                own / E2E_PUSH_GOAL,
                "≤ 1x",
                own <= E2E_PUSH_GOAL,
            )
        )
    return out


def _in_process_rows(name: str, hot: JsonObject) -> list[Row]:
    """A chain function measured in-process (bench/chain_paths.py): one row per variant with its Firestore
    operations per event, its rate and its ledger ceiling."""
    out = []
    for way, per_key in (("in_process", "per_event"), ("in_process_shared_run", "per_event_shared_run")):
        if way not in hot:
            continue
        per, figure, limit = hot[per_key], hot[way], ceiling_of(hot, way)
        out.append(
            Row(
                "2 hot path",
                f"{name} {WAYS[way]} vs ledger ceiling",
                f"{figure['rate']:.0f}/s; per event {per['reads']:g} reads, {per['writes']:g} writes, "
                f"{per['round_trips']:g} round trips",
                f"ceiling {limit:.0f}/s",
                figure["vs_ceiling"],
                f"≥ {CEILING_GOAL}x",
                figure["vs_ceiling"] >= CEILING_GOAL,
            )
        )
    for way in ("host", "push"):  # the same app behind an HTTP server, and delivered by a push subscription
        if way not in hot:
            continue
        figure, limit = hot[way], ceiling_of(hot, way)
        bare = "bare (push)" if way == "push" else "bare"
        out.append(
            Row(
                "2 hot path",
                f"{name} {WAYS[way]} vs ledger ceiling",
                f"{figure['rate']:.0f}/s ({figure['vs_bare']:.2f}x {bare})",
                f"ceiling {limit:.0f}/s",
                figure["vs_ceiling"],
                f"≥ {CEILING_GOAL}x",
                figure["vs_ceiling"] >= CEILING_GOAL,
            )
        )
    return out


def table(results: JsonObject) -> str:
    header = ("item", "figure", "value", "baseline", "ratio", "goal", "met")
    body = [
        (
            row.item,
            row.figure,
            row.value,
            row.baseline,
            "" if row.ratio is None else f"{row.ratio:.2f}x",
            row.goal,
            "" if row.met is None else ("yes" if row.met else "NO"),
        )
        for row in rows(results)
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    machine = results.get("machine", {})
    lines = [
        f"make bench — {machine.get('date', '')}, {machine.get('cores', '?')} cores, "
        f"Python {machine.get('python', '?')}",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body]
    return "\n".join(lines)


def write(results: JsonObject, out: Path, chart_dir: Path, before: JsonObject | None = None) -> None:
    from bench.charts import before_after_chart, charts  # the charts read this module's figures

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    chart_dir.mkdir(parents=True, exist_ok=True)
    for name, svg in charts(results).items():
        (chart_dir / name).write_text(svg)
    if before is not None:
        (chart_dir / "before-after.svg").write_text(before_after_chart(before, results))
