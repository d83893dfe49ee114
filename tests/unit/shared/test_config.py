"""Configuration: validation names the file and every bad field; env interpolation and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_config, main, parse_config, parse_duration
from shared.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]

MINIMAL = {
    "apiVersion": "mlops.dev/v1",
    "kind": "Pipeline",
    "spec": {"project": "p1", "triggers": [{"function": "notify", "event": "notification"}]},
}


def test_shipped_example_config_is_valid() -> None:
    config = load_config(ROOT / "pipeline.yaml", env={})
    assert config.project == "demo-project"
    assert config.topic_for("notification") == "mlops-notifications"
    assert "notify" in [t.function for t in config.triggers]  # the chain adds its own triggers
    assert {c.name for c in config.channels} == {"ml-team-slack", "platform-chat", "audit-webhook"}


def test_defaults() -> None:
    config = parse_config(MINIMAL, "x.yaml", env={})
    trigger = config.triggers[0]
    assert trigger.topic == "notifications"
    assert trigger.retry.max_delivery_attempts == 5
    assert config.max_event_age_seconds == 24 * 3600
    assert config.subscription_for(trigger) == "notify--notifications"
    assert config.dead_letter_topic_for(trigger) == "dead-letter-notify"


def test_every_problem_is_reported_with_file_and_field() -> None:
    document = {
        "apiVersion": "v0",
        "kind": "Pipeline",
        "spec": {
            "eventing": {"maxDeliveryAttempts": 2, "minimumBackoff": "fast"},
            "triggers": [{"function": "notify", "event": "nope"}],
            "notifications": {
                "channels": [{"name": "x", "type": "slack", "url": "ftp://a", "minSeverity": "loud"}]
            },
            "surprise": 1,
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "conf/pipeline.yaml", env={})
    problems = caught.value.problems
    text = "\n".join(problems)
    assert all(p.startswith("conf/pipeline.yaml: ") for p in problems)
    for expected in (
        "apiVersion: unsupported 'v0'",
        "spec.project: required",
        "spec.eventing.maxDeliveryAttempts: must be between 5 and 100",
        "spec.eventing.minimumBackoff: not a duration",
        "spec.triggers[0].event: unknown event kind 'nope'",
        "spec.notifications.channels[0].url: must be an http(s) URL",
        "spec.notifications.channels[0].minSeverity: 'loud' is not one of",
        "spec.surprise: unknown field",
    ):
        assert expected in text


def test_environment_interpolation_and_overrides() -> None:
    document = {
        **MINIMAL,
        "spec": {
            **MINIMAL["spec"],
            "notifications": {"channels": [{"name": "s", "type": "slack", "url": "${HOOK}"}]},
            "topicPrefix": "${PREFIX:-dev-}",
        },
    }
    config = parse_config(
        document, "x.yaml", env={"HOOK": "https://hooks.example/1", "PIPELINE_REGION": "eu"}
    )
    assert config.channels[0].url == "https://hooks.example/1"
    assert config.topic_prefix == "dev-"
    assert config.region == "eu"
    overridden = parse_config(document, "x.yaml", env={"HOOK": "https://h", "GOOGLE_CLOUD_PROJECT": "prod"})
    assert overridden.project == "prod"


def test_unset_environment_variable_is_an_error_naming_the_field() -> None:
    document = {
        **MINIMAL,
        "spec": {
            **MINIMAL["spec"],
            "notifications": {"channels": [{"name": "s", "type": "slack", "url": "${MISSING_HOOK}"}]},
        },
    }
    with pytest.raises(
        ConfigError, match=r"spec\.notifications\.channels\[0\]\.url: environment variable MISSING_HOOK"
    ):
        parse_config(document, "x.yaml", env={})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+, column \d+: invalid YAML"):
        load_config(bad, env={})


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("apiVersion: mlops.dev/v1\nkind: Pipeline\nspec: {project: from-file}\n")
    assert load_config(env={"PIPELINE_CONFIG": str(path)}).project == "from-file"


def test_check_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GOOGLE_CLOUD_PROJECT", "PIPELINE_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["check", str(ROOT / "pipeline.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: mlops.dev/v1\nkind: Pipeline\nspec: {}\n")
    assert main(["check", str(bad)]) == 1
    assert "spec.project: required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), (30, 30.0), ("500ms", 0.5), ("10m", 600.0), ("1h", 3600.0), ("1.5s", 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["fast", "-1", True, "10d"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_clock_skew_has_a_default_and_is_validated_like_every_duration() -> None:
    assert parse_config(MINIMAL, "x.yaml", env={}).max_clock_skew_seconds == 300.0
    skewed = {**MINIMAL, "spec": {**MINIMAL["spec"], "events": {"maxAge": "1h", "maxClockSkew": "30s"}}}
    assert parse_config(skewed, "x.yaml", env={}).max_clock_skew_seconds == 30.0
    broken = {**MINIMAL, "spec": {**MINIMAL["spec"], "events": {"maxClockSkew": "soon"}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(broken, "x.yaml", env={})
    assert caught.value.problems == [
        "x.yaml: spec.events.maxClockSkew: not a duration: 'soon' (use e.g. 30s, 500ms, 10m, 1h)"
    ]


def test_a_duration_too_large_for_a_float_is_a_problem_not_a_crash() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("9" * 400)
