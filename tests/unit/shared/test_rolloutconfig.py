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


@pytest.mark.parametrize("strategy", ["shadow", "ab"])
def test_shadow_and_ab_are_refused_as_not_supported_yet(strategy: str) -> None:
    text = problems({"name": "svc", "model": "churn", "strategy": strategy})
    assert f"spec.services[0].strategy: '{strategy}' is not supported yet" in text


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
