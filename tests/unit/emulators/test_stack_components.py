"""The stack's component table: the start order it implies, the variables it exports, what it refuses."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from emulators.stack import API_EMULATORS, COMPONENTS, TABLE, ComponentSpec, Stack, StackError, StackState
from emulators.stack.components import BY_NAME, start_waves

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def names(waves: list[list[ComponentSpec]]) -> list[list[str]]:
    return [[spec.name for spec in wave] for wave in waves]


def test_the_full_stack_starts_in_four_waves() -> None:
    assert names(start_waves(TABLE)) == [
        ["pubsub", "firestore", "sink", "storage"],
        ["cloudbuild", "vertex", "run"],
        ["functions"],
        ["ticker"],
    ]


def test_a_subset_waits_only_for_what_it_contains() -> None:
    subset = [BY_NAME["firestore"], BY_NAME["run"]]
    assert names(start_waves(subset)) == [["firestore", "run"]]
    with_storage = [BY_NAME["storage"], BY_NAME["vertex"]]
    assert names(start_waves(with_storage)) == [["storage"], ["vertex"]]


def test_components_that_wait_for_each_other_are_refused() -> None:
    first = replace(BY_NAME["sink"], name="a", after=("b",))
    second = replace(BY_NAME["sink"], name="b", after=("a",))
    with pytest.raises(StackError, match=r"wait for each other"):
        start_waves([first, second])


def test_unknown_components_and_flags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"unknown component\(s\) \['pubsub2'\]"):
        Stack(tmp_path, components=["pubsub2"])
    with pytest.raises(StackError, match=r"unknown component\(s\) \['vertx'\]"):
        Stack(tmp_path, components=["vertex"], api_args={"vertx": ["--queued-seconds", "0"]})


def readme_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("prints `export` lines:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([A-Z_]+)`", sentence))


def test_the_plan_exports_what_the_readme_lists(tmp_path: Path) -> None:
    stack = Stack(tmp_path, project="plan-project", config_path=ROOT / "pipeline.yaml", grpc=True)
    state = StackState(project="plan-project", config="", started_at="now")
    specs, launch = stack.plan(state)

    assert [spec.name for spec in specs] == list(COMPONENTS)
    assert set(state.env) == readme_variables()
    assert state.env["GOOGLE_CLOUD_PROJECT"] == "plan-project"
    assert state.env["LOCAL_REGISTRY_DIR"] == str(tmp_path.resolve() / "registry")
    # The storage client and the URLs need the scheme; the emulator hosts of the other clients must not.
    for variable in ("STORAGE_EMULATOR_HOST", "FUNCTIONS_URL", "WEBHOOK_SINK_URL"):
        assert state.env[variable].startswith("http://127.0.0.1:")
    for variable in ("PUBSUB_EMULATOR_HOST", "CLOUDBUILD_EMULATOR_HOST", "MONITORING_EMULATOR_HOST"):
        assert re.fullmatch(r"127\.0\.0\.1:\d+", state.env[variable])
    ports = list(launch.ports.values()) + [int(h.rsplit(":", 1)[1]) for h in state.grpc_hosts.values()]
    assert len(ports) == len(set(ports)), "every server gets its own port"
    assert set(state.grpc_hosts) == {spec.name for spec in API_EMULATORS}
    assert state.extra_hosts["run--monitoring-grpc-port"] == state.env["MONITORING_EMULATOR_HOST"]
    assert launch.config is not None, "the function host needs the config, so it was validated up front"


def test_a_plan_without_the_function_host_needs_no_config(tmp_path: Path) -> None:
    stack = Stack(tmp_path, config_path=tmp_path / "missing.yaml", components=["storage", "pubsub"])
    state = StackState(project="p", config="", started_at="now")
    _, launch = stack.plan(state)
    assert launch.config is None
    assert state.grpc_hosts == {}
    assert "FUNCTIONS_URL" not in state.env and "PIPELINE_CONFIG" not in state.env
