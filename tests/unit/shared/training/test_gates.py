"""Metric gates: absolute bounds, tolerance against the champion, missing metrics, the side-by-side text."""

from __future__ import annotations

import json
import math

import pytest

from shared.problems import Problems
from shared.training.gates import Gate, Tolerance, evaluate, parse_gates

pytestmark = pytest.mark.unit

ACCURACY = Gate("accuracy", minimum=0.8)  # the shipped gate


def test_the_shipped_gate_passes_and_fails_on_the_floor_itself() -> None:
    assert evaluate([ACCURACY], {"accuracy": 0.8}).passed  # the floor is inclusive
    verdict = evaluate([ACCURACY], {"accuracy": 0.79})
    assert not verdict.passed
    assert verdict.reasons == ["accuracy: 0.79 is below the minimum 0.8"]
    assert evaluate([ACCURACY], {"accuracy": 0.93, "loss": 0.2}).reasons == []


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        ({}, "accuracy: missing in the candidate's metrics"),
        ({"accuracy": None}, "accuracy: not a finite number (None) in the candidate's metrics"),
        ({"accuracy": math.nan}, "accuracy: not a finite number (nan) in the candidate's metrics"),
        ({"accuracy": "0.9"}, "accuracy: not a finite number ('0.9') in the candidate's metrics"),
        ({"accuracy": True}, "accuracy: not a finite number (True) in the candidate's metrics"),
    ],
)
def test_a_missing_or_unusable_metric_fails(metrics: dict[str, object], reason: str) -> None:
    verdict = evaluate([Gate("accuracy", minimum=0.0, tolerance=Tolerance(0.1))], metrics, {"accuracy": 0.9})
    assert not verdict.passed
    assert verdict.reasons == [reason]


def test_higher_is_better_with_an_absolute_tolerance_against_the_champion() -> None:
    gate = Gate("accuracy", minimum=0.8, tolerance=Tolerance(0.02))
    champion = {"accuracy": 0.90}
    assert evaluate([gate], {"accuracy": 0.88}, champion).passed  # exactly the tolerance below
    verdict = evaluate([gate], {"accuracy": 0.87}, champion)
    assert verdict.reasons == ["accuracy: 0.87 is worse than the champion's 0.9 (needs >= 0.88)"]
    assert verdict.checks[0].outcome == "pass"  # the floor held; only the champion check failed
    assert evaluate([gate], {"accuracy": 0.95}, champion).passed


def test_lower_is_better_with_a_relative_tolerance() -> None:
    gate = Gate("rmse", direction="lower", maximum=5.0, tolerance=Tolerance(0.1, relative=True))
    champion = {"rmse": 2.0}
    assert evaluate([gate], {"rmse": 2.2}, champion).passed  # 10% worse than 2.0 is the limit
    verdict = evaluate([gate], {"rmse": 2.3}, champion)
    assert verdict.reasons == ["rmse: 2.3 is worse than the champion's 2 (needs <= 2.2)"]
    verdict = evaluate([gate], {"rmse": 6.0}, None)
    assert verdict.reasons == ["rmse: 6 is above the maximum 5"]
    assert str(Tolerance(0.1, relative=True)) == "10%"


def test_floating_point_rounding_does_not_fail_a_candidate_on_the_boundary() -> None:
    relative = Gate("accuracy", tolerance=Tolerance(0.1, relative=True))
    # 0.55 - 10% is 0.495 in exact arithmetic but 0.49500000000000005 in binary floating point.
    assert 0.55 - 0.55 * 0.1 > 0.495
    assert evaluate([relative], {"accuracy": 0.495}, {"accuracy": 0.55}).passed
    absolute = Gate("accuracy", tolerance=Tolerance(0.05))
    assert 0.52 - 0.05 > 0.47
    assert evaluate([absolute], {"accuracy": 0.47}, {"accuracy": 0.52}).passed
    assert not evaluate([absolute], {"accuracy": 0.4699}, {"accuracy": 0.52}).passed


def test_without_a_champion_only_absolute_bounds_apply_and_the_verdict_says_so() -> None:
    gate = Gate("accuracy", minimum=0.8, tolerance=Tolerance(0.01))
    verdict = evaluate([gate], {"accuracy": 0.81}, None)
    assert verdict.passed and not verdict.has_champion
    assert verdict.notes == ["accuracy: there is no champion; only the absolute bounds apply"]
    # A hand-registered champion without this metric: the same, said differently.
    verdict = evaluate([gate], {"accuracy": 0.81}, {"f1": 0.7})
    assert verdict.passed and verdict.has_champion
    assert verdict.notes == [
        "accuracy: the champion reported no usable value; only the absolute bounds apply"
    ]
    assert not evaluate([gate], {"accuracy": 0.79}, {"f1": 0.7}).passed


def test_every_reason_is_listed_and_the_numbers_sit_side_by_side() -> None:
    gates = [
        Gate("accuracy", minimum=0.8, maximum=0.999, tolerance=Tolerance(0.01)),
        Gate("latency_ms", direction="lower", maximum=50, tolerance=Tolerance(0.2, relative=True)),
        Gate("auc", minimum=0.7),
    ]
    candidate = {"accuracy": 0.9995, "latency_ms": 61.0}
    champion = {"accuracy": 0.95, "latency_ms": 40.0, "auc": 0.8}
    verdict = evaluate(gates, candidate, champion)
    assert not verdict.passed
    assert verdict.reasons == [
        "accuracy: 0.9995 is above the maximum 0.999",
        "latency_ms: 61 is above the maximum 50",
        "latency_ms: 61 is worse than the champion's 40 (needs <= 48)",
        "auc: missing in the candidate's metrics",
    ]
    lines = verdict.table().splitlines()
    assert lines[0].split() == ["metric", "candidate", "champion", "change", "required", "result"]
    accuracy = "accuracy  0.9995  0.95  +0.0495  >= 0.8; <= 0.999; >= 0.94 (champion)  fail"
    assert lines[1].split() == accuracy.split()
    assert lines[2].split() == [
        "latency_ms",
        "61",
        "40",
        "+21",
        "<=",
        "50;",
        "<=",
        "48",
        "(champion)",
        "fail",
    ]
    assert lines[3].split() == ["auc", "-", "0.8", "-", "-", "fail"]

    document = json.loads(json.dumps(verdict.to_dict()))
    assert document["passed"] is False
    assert document["metrics"][1] == {
        "metric": "latency_ms",
        "direction": "lower",
        "candidate": 61.0,
        "champion": 40.0,
        "change": 21.0,
        "required": ["<= 50", "<= 48 (champion)"],
        "outcome": "fail",
    }
    assert len(document["checks"]) == 6


def test_gates_refuse_contradictions() -> None:
    with pytest.raises(ValueError, match=r"min 0\.9 is above max 0\.8"):
        Gate("accuracy", minimum=0.9, maximum=0.8)
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance(-0.1)
    with pytest.raises(ValueError, match="direction"):
        Gate("accuracy", direction="up")  # type: ignore[arg-type]


def test_parse_gates_reads_the_config_shape_and_reports_every_problem() -> None:
    problems = Problems(mapping_word="mapping")
    gates = parse_gates(
        [
            {"metric": "accuracy", "min": 0.8},
            {"metric": "rmse", "direction": "lower", "max": 3, "tolerance": "5%"},
            {"metric": "f1", "tolerance": 0.02},
        ],
        "spec.models[0].gates",
        problems,
    )
    assert not problems.listing()
    assert gates == [
        Gate("accuracy", minimum=0.8),
        Gate("rmse", direction="lower", maximum=3.0, tolerance=Tolerance(0.05, relative=True)),
        Gate("f1", tolerance=Tolerance(0.02)),
    ]

    bad = parse_gates(
        [
            {"metric": "a", "direction": "up", "min": 1},
            {"metric": "b", "min": 0.9, "max": 0.1},
            {"metric": "c"},
            {"metric": "d", "tolerance": "lots"},
            {"metric": "e", "tolerance": -1},
            {"min": 0.5, "threshold": 1},
            {"metric": "g", "min": "high"},
        ],
        "gates",
        problems,
    )
    assert bad == []
    assert problems.listing() == [
        "gates[0].direction: must be higher or lower, got 'up'",
        "gates[1].max: must not be below min (0.9), got 0.1",
        "gates[2].metric: a gate needs at least one of min, max or tolerance",
        "gates[3].tolerance: must be a number >= 0 or a percentage such as '2%', got 'lots'",
        "gates[4].tolerance: must be a number >= 0 or a percentage such as '2%', got -1",
        "gates[5].threshold: unknown field (allowed: direction, max, metric, min, tolerance)",
        "gates[5].metric: required",
        "gates[6].min: must be a number, got 'high'",
    ]
    assert parse_gates(None, "gates", problems) == []
    parse_gates({"metric": "a"}, "gates", problems)
    assert problems.listing()[-1] == "gates: must be a list, got dict"
