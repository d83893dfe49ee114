"""The bench's report on synthetic numbers: ceilings, ratios, goals met or not, the table and the charts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from bench import charts, report
from bench.counting import Counts

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"


def synthetic() -> dict[str, Any]:
    return {
        "machine": {"cores": 2, "python": "3.11.7", "date": "2026-11-30 23:00 UTC"},
        "baselines": {
            "firestore_creates": {"rate": 1200.0},
            "bare_host": {"rate": 800.0},
            "bare_push": {"rate": 400.0},
        },
        "cold_start": {
            "bare_seconds": 0.4,
            "functions": {
                "notify": {"seconds": 0.48, "ratio": 1.2, "first_event": "n"},
                "reconcile": {"seconds": 0.8, "ratio": 2.0, "first_event": "t"},
            },
        },
        "hot_path": {
            "notify": {
                "per_event": {"reads": 1.0, "writes": 6.0, "round_trips": 7.0},
                "per_event_shared_run": {"reads": 0.0, "writes": 6.0, "round_trips": 6.0},
                "host": {"rate": 120.0},
                "host_shared_run": {"rate": 90.0},
                "push": {"rate": 50.0},
            },
        },
        "burst": {"events": 1000, "concurrency": 10, "rate": 100.0, "training_runs": 1},
        "scale": {
            "notify_senders": {"1": {"rate": 30.0}, "10": {"rate": 110.0}},
            "burst_senders": {"10": {"events": 1000, "rate": 100.0, "training_runs": 1}},
            "runs": [
                {
                    "finished_runs": 10,
                    "runs_listed": 13,
                    "runs_listing_seconds": 0.065,
                    "runs_listing_reads": 13,
                    "tick_seconds": 0.05,
                    "tick_reads": 3,
                },
                {
                    "finished_runs": 1000,
                    "runs_listed": 20,
                    "runs_listing_seconds": 0.12,
                    "runs_listing_reads": 20,
                    "tick_seconds": 0.3,
                    "tick_reads": 3,
                },
            ],
        },
        "end_to_end": {"measured": False, "why": "x"},
    }


def test_the_ceiling_is_the_raw_write_rate_over_the_writes_an_event_needs() -> None:
    assert report.ceiling(1200.0, 6.0) == 200.0
    assert report.ceiling(1200.0, 0.0) == float("inf")


def test_ratios_and_goals_are_computed_against_the_same_runs_baselines() -> None:
    results = report.with_ratios(synthetic())
    notify = results["hot_path"]["notify"]
    assert notify["ceiling"] == 200.0
    assert notify["host"]["vs_ceiling"] == pytest.approx(0.6)
    assert notify["host"]["vs_bare"] == pytest.approx(0.15)
    assert notify["push"]["vs_bare"] == pytest.approx(0.125)  # against the bare function behind a push
    assert notify["host_shared_run"]["vs_ceiling"] == pytest.approx(0.45)
    assert results["burst"]["vs_goal"] == pytest.approx(0.5)
    # per listed run: 0.12 s / 20 against 0.065 s / 13 (the small tier holds fewer runs than the limit)
    # per listed run (the small tier holds fewer runs than the listing's 20): 0.12/20 against 0.065/13
    assert results["scale"]["runs_growth"]["listing"] == pytest.approx(1.2)
    assert results["scale"]["runs_growth"]["tick"] == pytest.approx(6.0)


def test_the_table_prints_every_figure_with_its_baseline_ratio_and_verdict() -> None:
    text = report.table(report.with_ratios(synthetic()))
    lines = text.splitlines()
    assert "2 cores" in lines[0] and "2026-11-30" in lines[0]
    notify_cold = next(line for line in lines if line.startswith("1 cold start") and "notify" in line)
    assert "480 ms" in notify_cold and "bare 400 ms" in notify_cold and "1.20x" in notify_cold
    assert notify_cold.rstrip().endswith("yes")
    reconcile_cold = next(line for line in lines if "reconcile" in line and "cold" in line)
    assert reconcile_cold.rstrip().endswith("NO")
    shared = next(line for line in lines if "one run vs ledger ceiling" in line)
    assert "0.45x" in shared and shared.rstrip().endswith("NO")
    assert any("1 reads, 6 writes" in line for line in lines)
    burst = next(line for line in lines if line.startswith("3 burst"))
    assert "100/s" in burst and burst.rstrip().endswith("NO")
    assert any("4 end to end" in line and "not measured" in line for line in lines)
    growth = next(line for line in lines if "growth 10 → 1000" in line)
    assert growth.rstrip().endswith("NO")  # the tick grew 6x with the finished runs


def test_every_chart_is_valid_svg_with_one_bar_per_figure(tmp_path: Path) -> None:
    results = report.with_ratios(synthetic())
    report.write(results, tmp_path / "results.json", tmp_path / "charts")
    assert json.loads((tmp_path / "results.json").read_text())["hot_path"]["notify"]["ceiling"] == 200.0
    names = sorted(path.name for path in (tmp_path / "charts").iterdir())
    assert names == ["burst.svg", "cold-start.svg", "hot-path.svg", "scale-runs.svg", "scale-senders.svg"]
    cold = ElementTree.parse(tmp_path / "charts" / "cold-start.svg").getroot()
    texts = [element.text or "" for element in cold.iter("{http://www.w3.org/2000/svg}text")]
    assert "bare function" in texts and "notify" in texts and "reconcile" in texts
    assert any("2026-11-30" in text for text in texts)  # the machine and the date are on every chart
    bars = [rect for rect in cold.iter("{http://www.w3.org/2000/svg}rect")][1:]  # the first is the canvas
    assert len(bars) == 3
    widths = {float(rect.get("width", 0)) for rect in bars}
    assert max(widths) == pytest.approx(440.0)  # the longest bar fills the plot


def test_bars_scale_with_their_values_and_the_goal_line_sits_at_the_goal() -> None:
    svg = charts.bar_chart(
        "t", "s", [charts.Bar("a", 50.0, "50"), charts.Bar("b", 100.0, "100")], "u", 200.0, "goal"
    )
    root = ElementTree.fromstring(svg)
    bars = [rect for rect in root.iter("{http://www.w3.org/2000/svg}rect")][1:]
    assert [float(rect.get("width", 0)) for rect in bars] == [110.0, 220.0]
    line = next(root.iter("{http://www.w3.org/2000/svg}line"))
    assert float(line.get("x1", 0)) == pytest.approx(260 + 440.0)


def test_counts_per_event() -> None:
    counts = Counts(reads=30, writes=70, round_trips=100).minus(Counts(reads=10, writes=10, round_trips=20))
    assert counts.per(10) == {"reads": 2.0, "writes": 6.0, "round_trips": 8.0}


def stages(*steps: tuple[str, float]) -> list[dict[str, Any]]:
    """A push's stages as bench/e2e.py records them: each stage's seconds and when it ended."""
    out, at = [], 0.0
    for name, seconds in steps:
        at += seconds
        out.append({"name": name, "seconds": seconds, "at": round(at, 6)})
    return out


def measured_end_to_end() -> dict[str, Any]:
    """Item 4 as measured with both pushes: the first on cold function instances, the second on warm ones."""
    return {
        "measured": True,
        "tick_seconds": 0.25,
        "push_to_canary_seconds": 5.7,
        "push_to_canary_ticks": 13,
        "stages": stages(
            ("build started", 0.13),
            ("image built", 0.53),
            ("rollout requested", 1.32),
            ("candidate at 0%", 0.33),
            ("ready, smoke passed", 3.39),
            ("split served", 0.0),
        ),
        "warm_push_to_canary_seconds": 4.2,
        "warm_push_to_canary_ticks": 9,
        "warm_stages": stages(
            ("build started", 0.05),
            ("image built", 0.3),
            ("rollout requested", 0.35),
            ("candidate at 0%", 0.2),
            ("ready, smoke passed", 3.28),
            ("split served", 0.02),
        ),
        "rollback_seconds": 0.02,
        "rollback_ticks": 0,
        "failing_analysis": "candidate 5xx 50.0% > 5.0%",
    }


def svg_texts(root: ElementTree.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_end_to_end_rows_and_the_stage_chart(tmp_path: Path) -> None:
    results = synthetic()
    results["end_to_end"] = {
        "measured": True,
        "tick_seconds": 0.25,
        "push_to_canary_seconds": 6.1,
        "push_to_canary_ticks": 13,
        "rollback_seconds": 0.02,
        "rollback_ticks": 0,
        "failing_analysis": "candidate 5xx 50.0% > 5.0%",
        "stages": [
            {"name": "image built", "seconds": 3.0, "at": 3.0},
            {"name": "split served (read back)", "seconds": 3.1, "at": 6.1},
        ],
    }  # an older run's results: one push, and no stage named for the revision's start
    lines = report.table(report.with_ratios(results)).splitlines()
    push = next(line for line in lines if "signed push → canary, first push (cold functions)" in line)
    assert "6.1 s, 13 ticks" in push and "3.05x" in push and push.rstrip().endswith("NO")
    assert not any("second push" in line or "own part" in line for line in lines)
    back = next(line for line in lines if "failing analysis → traffic on stable" in line)
    assert "0 ticks" in back and back.rstrip().endswith("yes")
    report.write(report.with_ratios(results), tmp_path / "results.json", tmp_path / "charts")
    texts = svg_texts(ElementTree.parse(tmp_path / "charts" / "end-to-end.svg").getroot())
    assert "image built" in texts and "split served (read back)" in texts  # labels as given
    assert "First push (cold functions)" in texts and "Second push (warm functions)" not in texts


def test_each_push_has_its_row_and_its_pipelines_own_part_against_the_goal() -> None:
    results = synthetic()
    results["end_to_end"] = measured_end_to_end()
    lines = report.table(report.with_ratios(results)).splitlines()
    item4 = [line for line in lines if line.startswith("4 end to end")]
    assert len(item4) == 5  # two pushes, each with its own part, and the rollback
    cold = next(line for line in item4 if "signed push → canary, first push (cold functions)" in line)
    assert "5.7 s, 13 ticks" in cold and "2.85x" in cold and cold.rstrip().endswith("NO")
    cold_own = next(
        line for line in item4 if "first push, pipeline's own part (revision start excluded)" in line
    )
    # 5.7 s less the 3.39 s of "ready, smoke passed": 2.31 s, over the goal of 2 s
    assert "2.3 s (5.7 s less 3.4 s ready, smoke passed)" in cold_own
    assert "1.16x" in cold_own and cold_own.rstrip().endswith("NO")
    warm = next(line for line in item4 if "signed push → canary, second push (warm functions)" in line)
    assert "4.2 s, 9 ticks" in warm and "2.10x" in warm and warm.rstrip().endswith("NO")
    warm_own = next(line for line in item4 if "second push, pipeline's own part" in line)
    assert "0.9 s (4.2 s less 3.3 s" in warm_own and "0.46x" in warm_own and warm_own.rstrip().endswith("yes")
    assert "goal 2 s" in warm_own


def test_the_pipelines_own_part_is_in_results_json(tmp_path: Path) -> None:
    results = synthetic()
    results["end_to_end"] = measured_end_to_end()
    report.write(report.with_ratios(results), tmp_path / "results.json", tmp_path / "charts")
    e2e = json.loads((tmp_path / "results.json").read_text())["end_to_end"]
    assert e2e["push_to_canary_pipeline_seconds"] == pytest.approx(5.7 - 3.39)
    assert e2e["warm_push_to_canary_pipeline_seconds"] == pytest.approx(4.2 - 3.28)


def test_results_without_the_second_push_keep_their_rows_and_gain_no_warm_figures() -> None:
    results = synthetic()
    e2e = measured_end_to_end()
    for key in ("warm_push_to_canary_seconds", "warm_push_to_canary_ticks", "warm_stages"):
        del e2e[key]
    results["end_to_end"] = e2e
    report.with_ratios(results)
    assert "warm_push_to_canary_pipeline_seconds" not in e2e
    assert e2e["push_to_canary_pipeline_seconds"] == pytest.approx(2.31)
    lines = [line for line in report.table(results).splitlines() if line.startswith("4 end to end")]
    assert len(lines) == 3 and not any("second push" in line for line in lines)
    root = ElementTree.fromstring(charts.charts(results)["end-to-end.svg"])
    assert svg_texts(root).count("build started") == 1


def test_the_end_to_end_chart_draws_both_pushes_stage_after_stage() -> None:
    results = synthetic()
    results["end_to_end"] = measured_end_to_end()
    root = ElementTree.fromstring(charts.charts(report.with_ratios(results))["end-to-end.svg"])
    texts = svg_texts(root)
    assert "First push (cold functions)" in texts and "Second push (warm functions)" in texts
    for name in ("build started", "image built", "candidate at 0%", "ready, smoke passed", "split served"):
        assert texts.count(name) == 2, name
    assert texts.count("push → canary") == 2 and texts.count("pipeline's own part") == 2
    assert "2.31 s (without the revision's start)" in texts and "4.20 s, 9 ticks" in texts
    bars = list(root.iter(f"{SVG}rect"))[1:]
    assert len(bars) == 2 * (6 + 2)  # every stage of each push, then its total and its own part
    built, requested = bars[1], bars[2]
    # A stage's bar begins where the stage before it ended: a waterfall, not bars all from zero.
    assert float(requested.get("x", 0)) == pytest.approx(
        float(built.get("x", 0)) + float(built.get("width", 0)), abs=0.2
    )
    fills = [rect.get("fill") for rect in bars]
    assert fills[4] == "#9c9c9c" and fills[8 + 4] == "#9c9c9c"  # the revision's start: not the pipeline's
    assert fills[6:8] == ["#e15759", "#e15759"]  # first push: 5.7 s and 2.31 s, both over 2 s
    assert fills[8 + 6 : 8 + 8] == ["#e15759", "#4e79a7"]  # second: 4.2 s over, its own 0.92 s within
    line = next(root.iter(f"{SVG}line"))
    peak = max(float(rect.get("x", 0)) + float(rect.get("width", 0)) for rect in bars)
    left = min(float(rect.get("x", 0)) for rect in bars)
    assert float(line.get("x1", 0)) == pytest.approx(left + (peak - left) * 2.0 / 5.7, abs=0.5)


def test_long_labels_and_values_widen_the_chart_instead_of_leaving_it() -> None:
    label, text = "a label far longer than the usual column holds, " * 2, "a value note just as long " * 3
    root = ElementTree.fromstring(
        charts.bar_chart("t", "s", [charts.Bar(label, 10.0, text), charts.Bar("b", 5.0, "5")], "u")
    )
    width = float(root.get("width", 0))
    [rect] = [rect for rect in root.iter(f"{SVG}rect")][1:2]
    left = float(rect.get("x", 0))
    assert left - 8 >= charts.text_width(label)  # the label, right-aligned before the bars, starts inside
    assert left + 440 + 6 + charts.text_width(text) <= width  # the value after the longest bar ends inside


def with_chain(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with two chain functions measured in-process, one of them also on one shared run."""
    results["hot_path"]["on_build_status"] = {
        "path": "in-process, 8 threads, fake Google ports",
        "per_event": {"reads": 3.0, "writes": 4.0, "round_trips": 7.0},
        "in_process": {"events": 100, "concurrency": 8, "rate": 120.0},
        "one_run": "not measured: a run builds each image once",
    }
    results["hot_path"]["on_drift_alert"] = {
        "path": "in-process, 8 threads, fake Google ports",
        "per_event": {"reads": 3.0, "writes": 5.0, "round_trips": 8.0},
        "per_event_shared_run": {"reads": 2.0, "writes": 3.0, "round_trips": 5.0},
        "in_process": {"events": 100, "concurrency": 8, "rate": 150.0},
        "in_process_shared_run": {"events": 100, "concurrency": 8, "rate": 160.0},
    }
    return results


def test_a_chain_function_is_held_against_the_ceiling_of_its_own_writes() -> None:
    results = report.with_ratios(with_chain(synthetic()))
    builds = results["hot_path"]["on_build_status"]
    assert builds["ceiling"] == 300.0  # 1,200 creates/s over 4 writes an event
    assert builds["in_process"]["vs_ceiling"] == pytest.approx(0.4)
    assert builds["in_process"]["vs_bare"] == pytest.approx(0.15)
    drift = results["hot_path"]["on_drift_alert"]
    assert drift["ceiling"] == 240.0 and drift["ceiling_shared_run"] == 400.0  # 3 writes when suppressed
    assert drift["in_process"]["vs_ceiling"] == pytest.approx(0.625)
    assert drift["in_process_shared_run"]["vs_ceiling"] == pytest.approx(0.4)
    assert results["hot_path"]["notify"]["host_shared_run"]["vs_ceiling"] == pytest.approx(0.45)


def test_the_table_has_a_row_per_chain_function_with_its_counts_rate_and_verdict() -> None:
    lines = report.table(report.with_ratios(with_chain(synthetic()))).splitlines()
    builds = [line for line in lines if "on_build_status" in line]
    assert len(builds) == 1  # no one-run row: that variant was not measured
    [row] = builds
    assert row.startswith("2 hot path") and "in-process vs ledger ceiling" in row
    assert "120/s; per event 3 reads, 4 writes, 7 round trips" in row
    assert "ceiling 300/s" in row and "0.40x" in row and row.rstrip().endswith("NO")
    drift = next(line for line in lines if "on_drift_alert in-process vs" in line)
    assert "0.62x" in drift and drift.rstrip().endswith("yes")
    shared = next(line for line in lines if "on_drift_alert in-process, one run" in line)
    assert "2 reads, 3 writes" in shared and "ceiling 400/s" in shared and shared.rstrip().endswith("NO")


def test_the_hot_path_chart_draws_each_chain_function_beside_its_ceilings(tmp_path: Path) -> None:
    report.write(report.with_ratios(with_chain(synthetic())), tmp_path / "results.json", tmp_path / "charts")
    chart = ElementTree.parse(tmp_path / "charts" / "hot-path.svg").getroot()
    texts = [element.text or "" for element in chart.iter("{http://www.w3.org/2000/svg}text")]
    for label in (
        "on_build_status: ledger ceiling",
        "on_build_status: in-process",
        "on_drift_alert: in-process",
        "on_drift_alert: ceiling, one run",
        "on_drift_alert: in-process, one run",
    ):
        assert label in texts, label
    assert "120/s (0.40x ceiling)" in texts and "160/s (0.40x ceiling)" in texts
    bad = [rect for rect in chart.iter("{http://www.w3.org/2000/svg}rect") if rect.get("fill") == "#e15759"]
    # Under 0.5x of their ceilings: notify's one-run and push figures, on_build_status, drift's one run.
    assert len(bad) == 4


def test_where_the_cores_went_is_a_row_under_its_figure() -> None:
    results = synthetic()
    results["burst"]["cpu_ms_per_event"] = {
        "functions": 10.4,
        "firestore": 14.2,
        "storage": 1.6,
        "pubsub": 0.01,
        "bench (senders)": 1.9,
        "total": 28.11,
    }
    results["burst"]["busy_cores"] = 1.62
    lines = report.table(report.with_ratios(results)).splitlines()
    burst = next(index for index, line in enumerate(lines) if line.startswith("3 burst"))
    cpu = lines[burst + 1]
    assert cpu.startswith("3 burst") and "CPU ms per event" in cpu
    assert "Firestore 14.2 + host 10.4 + bench (senders) 1.9 + storage 1.6" in cpu  # largest first
    assert "Pub/Sub" not in cpu  # under 0.05 ms: noise
    assert "28.1 ms; 1.62 cores busy" in cpu
    assert not any("CPU ms" in line for line in lines if line.startswith("2 hot path"))  # not measured there


def test_a_chain_function_behind_the_host_and_a_push_subscription_gets_its_own_rows() -> None:
    results = with_chain(synthetic())
    builds = results["hot_path"]["on_build_status"]
    builds["host"] = {"events": 100, "concurrency": 8, "rate": 90.0}
    builds["push"] = {"events": 100, "rate": 60.0}
    results = report.with_ratios(results)
    assert builds["host"]["vs_ceiling"] == pytest.approx(0.3) and builds["push"]["vs_bare"] == pytest.approx(
        0.15
    )
    lines = report.table(results).splitlines()
    host = next(line for line in lines if "on_build_status host vs ledger ceiling" in line)
    push = next(line for line in lines if "on_build_status push subscription vs ledger ceiling" in line)
    assert "90/s (0.11x bare)" in host and "ceiling 300/s" in host and host.rstrip().endswith("NO")
    assert "60/s (0.15x bare (push))" in push and "0.20x" in push
    svg = charts.charts(results)["hot-path.svg"]
    assert "on_build_status: host" in svg and "on_build_status: push subscription" in svg
