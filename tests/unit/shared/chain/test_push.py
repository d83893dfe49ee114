"""The push stage: planning builds before starting any, the build step's take-over, the webhook's answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shared import deadline as deadlines
from shared.chain.push import (
    SOURCE_ROOT,
    PlannedBuild,
    answer,
    build_config_path,
    build_step,
    plan_builds,
    push_cause,
    push_rules,
)
from shared.errors import ConfigError
from shared.events import GitPush, github_push
from shared.ingest.routing import Decision, route
from shared.ingest.signatures import Delivery, Provider
from shared.runtime import Runtime
from shared.steps import Outcome, StepContext, StepResult
from tests.functional.chain.push_support import (
    COMMIT,
    RUN_ID,
    fake_runtime,
    fakes,
    push_to_main,
    shipped_config,
)

pytestmark = pytest.mark.unit

DELIVERY = Delivery(Provider.GITHUB, "push", "d-1")


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    with fake_runtime() as test_runtime:
        yield test_runtime


def routed(*paths: str) -> tuple[GitPush, Decision]:
    push = github_push(push_to_main(*paths), DELIVERY.delivery_id)
    return push, route(push, push_rules(shipped_config()))


def planned_trainer(runtime: Runtime) -> PlannedBuild:
    push, decision = routed("trainer/train.py")
    [planned] = plan_builds(runtime.config, push, decision, RUN_ID)
    return planned


def test_the_run_cause_says_what_was_pushed_and_what_it_touched() -> None:
    push, decision = routed("trainer/train.py", "server/app.py")

    cause = push_cause(push, decision, DELIVERY)

    assert cause["cause"] == "push" and cause["provider"] == "github"
    assert (cause["repo"], cause["commit"], cause["branch"], cause["tag"]) == (
        "Codertocat/Hello-World",
        COMMIT,
        "main",
        "",
    )
    assert cause["images"] == ["trainer", "server"] and cause["delivery"] == "d-1"


def test_a_plan_is_the_shipped_build_config_at_the_pushed_commit(runtime: Runtime) -> None:
    planned = planned_trainer(runtime)

    assert planned.role == "trainer"
    assert planned.plan.key == f"build/codertocat/hello-world/{COMMIT}/trainer"
    assert planned.plan.lookup_tags == (f"run-{RUN_ID}", "image-trainer")
    assert planned.request.images == ("${_IMAGE}:${COMMIT_SHA}", "${_IMAGE}:${SHORT_SHA}")
    assert planned.request.substitutions["_IMAGE"] == "us-central1-docker.pkg.dev/demo-project/mlops/trainer"
    assert planned.request.logging == "CLOUD_LOGGING_ONLY"


def test_a_build_config_that_cannot_be_found_refuses_the_whole_push(runtime: Runtime) -> None:
    push, decision = routed("trainer/train.py", "server/app.py")
    broken = replace(decision.images[1].rule, config="cloudbuild/missing.yaml")
    decision = replace(decision, images=(decision.images[0], replace(decision.images[1], rule=broken)))

    with pytest.raises(ConfigError):
        plan_builds(runtime.config, push, decision, RUN_ID)
    assert fakes(runtime).builds.started == []


def test_build_configs_are_found_beside_the_pipeline_config_then_in_the_source_tree(tmp_path: Path) -> None:
    config = replace(shipped_config(), source=str(tmp_path / "pipeline.yaml"))
    (tmp_path / "cloudbuild").mkdir()
    (tmp_path / "cloudbuild" / "mine.yaml").write_text("steps: []\n")

    assert build_config_path(config, "cloudbuild/mine.yaml") == tmp_path / "cloudbuild" / "mine.yaml"
    assert (
        build_config_path(config, "cloudbuild/build-image.yaml")
        == SOURCE_ROOT / "cloudbuild/build-image.yaml"
    )
    assert build_config_path(config, "/abs/build.yaml") == Path("/abs/build.yaml")


def test_a_pipeline_without_push_rules_cannot_take_pushes() -> None:
    config = shipped_config()
    without = replace(config, chain=replace(config.chain, push=None))

    with pytest.raises(ConfigError) as raised:
        push_rules(without)
    assert "spec.push" in str(raised.value)


def context(attempt: int) -> StepContext:
    return StepContext("build/x", attempt, deadlines.Deadline(5.0))


def test_a_take_over_finds_the_build_its_crashed_predecessor_started(runtime: Runtime) -> None:
    planned = planned_trainer(runtime)
    builds = fakes(runtime).builds
    first_id = builds.start(planned.request)  # the predecessor's start, never completed in the ledger
    step = build_step(builds, planned, {}, "d-1")

    effect = step.effect(context(attempt=2))

    assert effect.result["build_id"] == first_id and effect.result["found_again"] is True
    assert len(builds.started) == 1


def test_a_take_over_that_finds_nothing_starts_the_build(runtime: Runtime) -> None:
    planned = planned_trainer(runtime)
    builds = fakes(runtime).builds

    effect = build_step(builds, planned, {}, "d-1").effect(context(attempt=2))

    assert effect.result["found_again"] is False
    assert [b.id for b in builds.find_by_tags(planned.plan.lookup_tags)] == [effect.result["build_id"]]


def test_a_first_attempt_does_not_look_before_starting(runtime: Runtime) -> None:
    planned = planned_trainer(runtime)
    builds = fakes(runtime).builds
    builds.faults.fail_next("find_by_tags", AssertionError("a fresh claim must not search"))

    effect = build_step(builds, planned, {}, "d-1").effect(context(attempt=1))

    assert effect.result["found_again"] is False and len(builds.started) == 1


def test_the_answer_is_202_only_when_a_build_was_started_now(runtime: Runtime) -> None:
    planned = planned_trainer(runtime)
    _, decision = routed("trainer/train.py")
    key = planned.plan.key

    started = answer(RUN_ID, decision, [planned], [StepResult(key, Outcome.DONE, {"build_id": "b"})])
    again = answer(RUN_ID, decision, [planned], [StepResult(key, Outcome.DUPLICATE, {"build_id": "b"})])
    found = answer(
        RUN_ID, decision, [planned], [StepResult(key, Outcome.DONE, {"build_id": "b", "found_again": True})]
    )
    failed = answer(RUN_ID, decision, [planned], [StepResult(key, Outcome.FAILED, error="refused")])

    assert (started[1], again[1], found[1], failed[1]) == (202, 200, 200, 200)
    assert started[0]["builds"] == [{"image": "trainer", "build_id": "b", "outcome": "started"}]
    assert again[0]["duplicate"] == ["trainer"] and found[0]["duplicate"] == ["trainer"]
    assert failed[0]["builds"] == [{"image": "trainer", "outcome": "failed", "error": "refused"}]
