"""Build requests for touched images: git source at the pushed commit, substitutions, tags, configs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud.devtools import cloudbuild_v1

from shared import events
from shared.errors import ConfigError, InvalidInput
from shared.ingest.builds import (
    OFFERED_SUBSTITUTIONS,
    build_tags,
    config_problems,
    load_build_config,
    plan_build,
    referenced_substitutions,
)
from shared.ingest.routing import ImageRule, Push, PushCommit, PushRules, route
from tests.unit.shared.ingest.payloads import sample_paths

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
BUILD_IMAGE = ROOT / "cloudbuild" / "build-image.yaml"
SHA = "b1946ac92492d2347c6235b4d2611184" + "abcdef12"
TRAINER = ImageRule(
    "trainer", ("trainer/**",), "trainer", repository="us-central1-docker.pkg.dev/demo/mlops/trainer"
)


def push(ref: str = "refs/heads/main", clone_url: str = "file:///tmp/demo-repo", after: str = SHA) -> Push:
    return Push(
        provider="github",
        repository="acme/ml",
        ref=ref,
        before="a" * 40,
        after=after,
        clone_url=clone_url,
        commits=(PushCommit(after, modified=("trainer/trainer/train.py",)),),
    )


def write_config(tmp_path: Path, config: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config) if not isinstance(config, str) else config)
    return path


MINIMAL = {
    "steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", "${_IMAGE}:$SHORT_SHA", "."]}],
    "images": ["${_IMAGE}:$SHORT_SHA"],
}


# -- the shipped config --------------------------------------------------------------------------------------


def test_the_shipped_build_config_is_valid() -> None:
    config = load_build_config(BUILD_IMAGE)
    assert config_problems(config) == []
    assert referenced_substitutions(config) >= set(OFFERED_SUBSTITUTIONS) | {"COMMIT_SHA", "SHORT_SHA"}


def test_a_push_becomes_a_git_sourced_build_of_the_pushed_commit() -> None:
    plan = plan_build(
        push(), TRAINER, load_build_config(BUILD_IMAGE), config_path="cloudbuild/build-image.yaml"
    )
    assert plan.run_id == "push-acme-ml-b1946ac92492"
    assert plan.key == f"build/acme/ml/{SHA}/trainer"
    assert plan.source.to_json() == {"url": "file:///tmp/demo-repo", "revision": SHA, "dir": "trainer"}
    assert plan.substitutions == {
        "_IMAGE": "us-central1-docker.pkg.dev/demo/mlops/trainer",
        "_RUN_ID": "push-acme-ml-b1946ac92492",
        "_REPO": "acme/ml",
        "_BRANCH": "main",
        "_TAG": "",
        "COMMIT_SHA": SHA,
        "SHORT_SHA": SHA[:7],
    }
    assert plan.tags == ("mlops", "run-push-acme-ml-b1946ac92492", "image-trainer")
    assert plan.lookup_tags == ("run-push-acme-ml-b1946ac92492", "image-trainer")
    assert plan.to_json()["config"] == "cloudbuild/build-image.yaml"


def test_the_build_is_a_valid_cloud_build_resource() -> None:
    plan = plan_build(push(), TRAINER, load_build_config(BUILD_IMAGE))
    body = plan.to_build()
    # The real client's message accepts every field, in Cloud Build's REST spelling, with no unknown one.
    build = cloudbuild_v1.Build.from_json(json.dumps(body), ignore_unknown_fields=False)
    assert build.source.git_source.url == "file:///tmp/demo-repo"
    assert build.source.git_source.revision == SHA
    assert build.source.git_source.dir_ == "trainer"
    assert list(build.tags) == ["mlops", "run-push-acme-ml-b1946ac92492", "image-trainer"]  # "mlops" once
    assert build.substitutions["COMMIT_SHA"] == SHA
    assert list(build.images) == ["${_IMAGE}:${COMMIT_SHA}", "${_IMAGE}:${SHORT_SHA}"]
    assert build.options.logging == cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY
    assert build.timeout.total_seconds() == 1200


def test_substituting_like_cloud_build_leaves_no_variable_and_no_unused_key() -> None:
    plan = plan_build(push(), TRAINER, load_build_config(BUILD_IMAGE))
    body = plan.to_build()
    values = {"PROJECT_ID": "demo", "BUILD_ID": "b-1", **body["substitutions"]}
    rendered = _substitute(body["steps"], values)
    args = rendered[0]["args"]
    assert f"--tag=us-central1-docker.pkg.dev/demo/mlops/trainer:{SHA}" in args
    assert f"--tag=us-central1-docker.pkg.dev/demo/mlops/trainer:{SHA[:7]}" in args
    assert "--label=dev.mlops.run-id=push-acme-ml-b1946ac92492" in args
    assert "$" not in json.dumps(rendered)
    user_keys = {key for key in body["substitutions"] if key.startswith("_")}
    assert user_keys <= referenced_substitutions(body)  # Cloud Build refuses unused user substitutions


def _substitute(node: Any, values: dict[str, str]) -> Any:
    import re

    if isinstance(node, str):
        return re.sub(
            r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
            lambda m: values[m.group(1) or m.group(2)],
            node,
        )
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    return node


def test_a_tag_push_sets_the_tag_and_no_branch() -> None:
    plan = plan_build(push(ref="refs/tags/v1.2.0"), TRAINER, load_build_config(BUILD_IMAGE))
    assert plan.substitutions["_TAG"] == "v1.2.0" and plan.substitutions["_BRANCH"] == ""


def test_only_the_substitutions_a_config_uses_are_passed() -> None:
    plan = plan_build(push(), TRAINER, MINIMAL)
    assert set(plan.substitutions) == {"_IMAGE", "COMMIT_SHA", "SHORT_SHA"}
    body = plan.to_build()
    assert body["tags"] == ["mlops", "run-push-acme-ml-b1946ac92492", "image-trainer"]
    assert "options" not in body


def test_a_context_at_the_repository_root_has_no_dir() -> None:
    root = ImageRule("app", ("**",), ".", repository="r/app")
    assert plan_build(push(), root, MINIMAL).source.to_json() == {
        "url": "file:///tmp/demo-repo",
        "revision": SHA,
    }
    slashed = ImageRule("app", ("**",), "app/", repository="r/app")
    assert plan_build(push(), slashed, MINIMAL).source.dir == "app"


def test_to_build_never_changes_the_loaded_config() -> None:
    config = load_build_config(BUILD_IMAGE)
    before = json.dumps(config, sort_keys=True)
    body = plan_build(push(), TRAINER, config).to_build()
    body["steps"][0]["args"].append("--oops")
    body["tags"].append("x")
    assert json.dumps(config, sort_keys=True) == before
    assert json.dumps(load_build_config(BUILD_IMAGE), sort_keys=True) == before


def test_file_defaults_stay_and_push_values_win() -> None:
    config = {**MINIMAL, "substitutions": {"_IMAGE": "placeholder", "_NAME": "x"}, "tags": ["custom"]}
    config["steps"] = [*MINIMAL["steps"], {"name": "bash", "args": ["-c", "echo ${_NAME}"]}]
    body = plan_build(push(), TRAINER, config).to_build()
    assert body["substitutions"]["_IMAGE"] == TRAINER.repository
    assert body["substitutions"]["_NAME"] == "x"
    assert body["tags"][0] == "custom" and "mlops" in body["tags"]


# -- from real payloads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_real_github_push_plans_a_build_from_its_clone_url(path: Path) -> None:
    git_push = events.github_push(json.loads(path.read_text()), delivery_id="d-1")
    rules = PushRules(images=(TRAINER,), branches=("master",))
    decision = route(git_push, rules)
    plans = [plan_build(git_push, image.rule, load_build_config(BUILD_IMAGE)) for image in decision.images]
    assert [plan.image for plan in plans] == ["trainer"]
    plan = plans[0]
    assert plan.run_id == "push-codertocat-hello-world-6113728f27ae"
    assert plan.source.url == "https://github.com/Codertocat/Hello-World.git"
    assert plan.source.revision == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert (
        plan.substitutions["_BRANCH"] == "master" and plan.substitutions["_REPO"] == "Codertocat/Hello-World"
    )


# -- refusals ------------------------------------------------------------------------------------------------


def test_pushes_that_cannot_be_built_are_invalid_input() -> None:
    config = load_build_config(BUILD_IMAGE)
    with pytest.raises(InvalidInput, match="deleted ref"):
        plan_build(push(after="0" * 40), TRAINER, config)
    with pytest.raises(InvalidInput, match="clone URL"):
        plan_build(push(clone_url=" "), TRAINER, config)
    with pytest.raises(InvalidInput, match="not a 40 or 64 hex"):
        plan_build(push(after="not-a-sha"), TRAINER, config)
    with pytest.raises(InvalidInput, match="label-safe"):
        plan_build(push(), TRAINER, config, run_id="Not A Run Id")


def test_rules_that_cannot_build_are_configuration_errors() -> None:
    nowhere = ImageRule("trainer", ("trainer/**",), "trainer")
    with pytest.raises(ConfigError, match="trainer") as caught:
        plan_build(push(), nowhere, MINIMAL, config_path="cloudbuild/x.yaml")
    assert any("repository (where the image is pushed)" in p for p in caught.value.problems)
    with pytest.raises(ConfigError):
        plan_build(push(), TRAINER, {"steps": []})


def test_build_tags_refuse_what_cloud_build_refuses() -> None:
    with pytest.raises(InvalidInput, match="image-a/b"):
        build_tags("push-x-1", "a/b")
    assert build_tags("push-x-1", "trainer") == ("mlops", "run-push-x-1", "image-trainer")


@pytest.mark.parametrize(
    "config, problem",
    [
        ([], "must be a mapping"),
        ({"images": ["${_IMAGE}"]}, "steps: at least one build step"),
        ({**MINIMAL, "steps": [{"args": ["x"]}]}, "builder 'name'"),
        ({**MINIMAL, "source": {"storageSource": {}}}, "source: must not be set"),
        ({**MINIMAL, "images": ["gcr.io/x/y"]}, "images: must list the built image by ${_IMAGE}"),
        ({**MINIMAL, "tags": ["a/b"]}, "tags: 'a/b'"),
        ({**MINIMAL, "substitutions": {"lower": "x"}}, "substitutions: 'lower' must start with '_'"),
        ({**MINIMAL, "substitutions": {"_UNUSED": "x"}}, "_UNUSED is never used"),
        ({**MINIMAL, "substitutions": ["_A"]}, "substitutions: must be a mapping"),
        (
            {**MINIMAL, "steps": [{"name": "bash", "args": ["-c", "echo $HOME ${_IMAGE}"]}]},
            "${HOME} is neither a Cloud Build built-in",
        ),
    ],
)
def test_config_problems_find_what_cloud_build_would_refuse(config: Any, problem: str) -> None:
    assert any(problem in p for p in config_problems(config)), config_problems(config)


def test_escaped_dollars_scripts_and_loose_configs_are_fine() -> None:
    escaped = {**MINIMAL, "steps": [*MINIMAL["steps"], {"name": "bash", "args": ["-c", "echo $$HOME"]}]}
    assert config_problems(escaped) == []
    scripted = {**MINIMAL, "steps": [*MINIMAL["steps"], {"name": "bash", "script": "echo $HOME $_X"}]}
    assert config_problems(scripted) == []  # Cloud Build does not substitute in script
    loose = {**MINIMAL, "options": {"substitutionOption": "ALLOW_LOOSE"}, "substitutions": {"_UNUSED": "x"}}
    loose["steps"] = [{"name": "bash", "args": ["-c", "echo $UNKNOWN ${_IMAGE}"]}]
    assert config_problems(loose) == []


# -- loading -------------------------------------------------------------------------------------------------


def test_load_names_the_file_and_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot be read"):
        load_build_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_build_config(write_config(tmp_path, "steps: [unclosed", "broken.yaml"))
    with pytest.raises(ConfigError, match=r"list\.yaml") as caught:
        load_build_config(write_config(tmp_path, ["a"], "list.yaml"))
    assert caught.value.problems == ["must be a mapping (a cloudbuild.yaml), got list"]
    bad = {"steps": [{"name": "bash", "args": ["$HOME"]}], "images": ["x"]}
    with pytest.raises(ConfigError) as caught:
        load_build_config(write_config(tmp_path, bad, "bad.yaml"))
    assert len(caught.value.problems) == 2


def test_load_sees_a_changed_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL)
    assert load_build_config(path)["images"] == ["${_IMAGE}:$SHORT_SHA"]
    path.write_text(yaml.safe_dump({**MINIMAL, "images": ["${_IMAGE}:$COMMIT_SHA", "${_IMAGE}:v2"]}))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_build_config(path)["images"] == ["${_IMAGE}:$COMMIT_SHA", "${_IMAGE}:v2"]
