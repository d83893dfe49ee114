"""``spec.services`` and ``spec.rollout``: the shipped values, defaults, and every refusal named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.config import load_config, parse_config
from shared.errors import ConfigError
from shared.rolloutconfig import Strategy, service_for_model

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def config(*services: dict[str, Any], rollout: dict[str, Any] | None = None) -> Any:
    spec: dict[str, Any] = {
        "project": "p",
        "models": [{"name": "churn", "trainer": {"image": "t"}}],
        "services": list(services),
    }
    if rollout is not None:
        spec["rollout"] = rollout
    return parse_config({"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": spec}, "p.yaml", env={})


def problems(*services: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        config(*services, **kwargs)
    return "\n".join(raised.value.problems)


def test_the_shipped_configuration() -> None:
    shipped = load_config(ROOT / "pipeline.yaml", env={})
    service = service_for_model(shipped.services, "churn")
    assert service is not None and service.name == "churn-predictor"
    assert service.strategy is Strategy.CANARY and service.steps == (10, 50, 100)
    assert service.interval_seconds <= 10  # a few seconds locally: the canary under a minute
    assert service.thresholds.min_requests == 20
    assert service.thresholds.max_5xx_share == 0.05 and service.thresholds.max_p95_ratio == 2.0
    [smoke] = service.smoke
    assert (smoke.method, smoke.path, smoke.expect_status, smoke.expect_json) == (
        "POST",
        "/predict",
        200,
        ("predictions",),
    )
    assert shipped.rollout.server_image_changes == "auto"
    assert shipped.topic_for("rollout.event") == "mlops-rollouts"
    assert shipped.topic_for("rollout.requested") == "mlops-rollout-requests"
    assert any(
        t.function == "start_rollout" and t.event_kind == "rollout.requested" for t in shipped.triggers
    )


def test_defaults() -> None:
    [service] = config({"name": "svc", "model": "churn"}).services
    assert service.steps == (10, 50, 100) and service.canary.inconclusive.then == "fail"
    assert service.thresholds.max_p95_ratio == 2.0


def test_shadow_compares_first_then_promotes_or_hands_over_to_the_canary() -> None:
    shadow = {"sample": 0.25, "duration": "15s", "minRequests": 30, "minAgreement": 0.9}
    [service] = config({"name": "svc", "model": "churn", "strategy": "shadow", "shadow": shadow}).services
    assert service.strategy is Strategy.SHADOW and service.steps == (0,)
    assert service.intervals_of(Strategy.SHADOW) == (15.0,)
    assert (service.shadow.sample, service.shadow.min_requests, service.shadow.min_agreement) == (
        0.25,
        30,
        0.9,
    )
    handed = {**shadow, "then": "canary"}
    canary = {"steps": [20, 100], "interval": "3s"}
    [service] = config(
        {"name": "svc", "model": "churn", "strategy": "shadow", "shadow": handed, "canary": canary}
    ).services
    assert service.steps == (0, 20, 100) and service.intervals_of(Strategy.SHADOW) == (15.0, 3.0, 3.0)


def test_ab_holds_its_split_for_the_duration() -> None:
    ab = {"split": 30, "duration": "2m", "metric": {"type": "custom.googleapis.com/shop/conversion"}}
    [service] = config({"name": "svc", "model": "churn", "strategy": "ab", "ab": ab}).services
    assert service.steps == (30,) and service.interval_seconds == 120.0
    assert service.ab.metric.type == "custom.googleapis.com/shop/conversion"
    assert service.ab.metric.direction == "higher" and service.ab.decide == "metric"
    # A rollout may run another strategy than the service's (operator `start --strategy`).
    assert service.steps_of(Strategy.CANARY) == (10, 50, 100)
    assert service.problems_for(Strategy.BLUE_GREEN) == [
        "blue_green needs at least one smoke check (they decide the switch)"
    ]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"strategy": "shadow", "shadow": {"sample": 0}}, "shadow.sample: 0.0 is not a share above 0"),
        ({"strategy": "shadow", "shadow": {"minAgreement": 1.5}}, "shadow.minAgreement: 1.5 is not a share"),
        (
            {"strategy": "shadow", "shadow": {"then": "wait"}},
            "shadow.then: 'wait' is not one of promote, canary",
        ),
        ({"strategy": "ab", "ab": {"split": 100}}, "ab.split"),
        ({"strategy": "ab", "ab": {"decide": "vote"}}, "ab.decide: 'vote' is not one of metric, human"),
        ({"strategy": "ab"}, "ab: ab with decide: metric needs ab.metric.type"),
        (
            {"strategy": "ab", "ab": {"metric": {"type": "run.googleapis.com/request_count"}}},
            "ab.metric.type: 'run.googleapis.com/request_count' is not a metric an application writes",
        ),
        (
            {"strategy": "ab", "ab": {"metric": {"type": "custom.googleapis.com/x", "direction": "up"}}},
            "ab.metric.direction: 'up' is not one of higher, lower",
        ),
        ({"strategy": "canary", "shadow": {"bogus": 1}}, "shadow.bogus"),
        ({"strategy": "rainbow"}, "'rainbow' is not one of canary, blue_green, shadow, ab"),
    ],
)
def test_shadow_and_ab_refusals_name_their_field(section: dict[str, Any], expected: str) -> None:
    assert expected in problems({"name": "svc", "model": "churn", **section})


def test_ab_decided_by_a_person_needs_no_metric() -> None:
    [service] = config(
        {"name": "svc", "model": "churn", "strategy": "ab", "ab": {"decide": "human"}}
    ).services
    assert service.ab.decide == "human" and service.problems_for(Strategy.AB) == []


def test_blue_green_steps_once_to_100_for_its_post_switch_window() -> None:
    smoke = [{"path": "/predict", "method": "POST", "expectJson": ["predictions"]}]
    [service] = config(
        {"name": "svc", "model": "churn", "strategy": "blue_green", "smoke": smoke, "postSwitchWindow": "7s"}
    ).services
    assert service.steps == (100,) and service.interval_seconds == 7.0


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"name": "svc", "model": "nope"}, "unknown model 'nope'"),
        ({"name": "svc", "model": "churn", "strategy": "blue_green"}, "needs at least one smoke check"),
        ({"name": "svc", "model": "churn", "canary": {"steps": [50, 10, 100]}}, "must increase"),
        ({"name": "svc", "model": "churn", "canary": {"steps": [10, 50]}}, "must end at 100"),
        ({"name": "svc", "model": "churn", "canary": {"steps": [0, 100]}}, "between 1 and 100"),
        (
            {"name": "svc", "model": "churn", "canary": {"inconclusive": {"then": "pray"}}},
            "'pray' is not one",
        ),
        (
            {"name": "svc", "model": "churn", "analysis": {"max5xxShare": 2}},
            "max5xxShare: 2.0 is not between",
        ),
        ({"name": "svc", "model": "churn", "smoke": [{"path": "predict"}]}, "must start with /"),
        ({"name": "svc", "model": "churn", "colour": "blue"}, "colour: unknown field"),
    ],
)
def test_problems_name_their_field(service: dict[str, Any], expected: str) -> None:
    assert expected in problems(service)


def test_a_model_served_twice_and_a_bad_image_policy_are_refused() -> None:
    text = problems(
        {"name": "a", "model": "churn"},
        {"name": "b", "model": "churn"},
        rollout={"serverImageChanges": "sometimes"},
    )
    assert "'churn' is used twice" in text and "'sometimes' is not one of auto, manual" in text


def test_the_rollout_request_contract_knows_every_strategy() -> None:
    from shared.chain.contracts import STRATEGIES

    assert tuple(strategy.value for strategy in Strategy) == STRATEGIES
