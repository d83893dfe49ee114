"""The ``Builds`` contract against the in-memory fake, plus the request parsing both sides share."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from shared.errors import InvalidInput, TransientError
from shared.ports.builds import BuildRequest, Builds, BuildStatus, StorageSource, request_problems
from shared.ports.builds_fake import FakeBuilds, FakeOutcome
from tests.contract.builds import BuildsContract, bash

pytestmark = pytest.mark.unit

_EXIT = re.compile(r"\bexit (\d+)")


def shell_outcome(request: BuildRequest) -> FakeOutcome:
    """What the steps would do: the first ``bash -c "exit N"`` with N > 0 fails the build there."""
    for index, step in enumerate(request.steps):
        found = _EXIT.search(" ".join(step.args)) if step.name == "bash" else None
        if found and int(found.group(1)) != 0:
            return FakeOutcome(BuildStatus.FAILURE, failing_step=index, exit_code=int(found.group(1)))
    return FakeOutcome()


class TestFakeBuilds(BuildsContract):
    @pytest.fixture
    def builds(self) -> Builds:
        return FakeBuilds(project="contract", outcome=shell_outcome)

    def inject_unavailable(self, builds: Builds, method: str) -> None:
        assert isinstance(builds, FakeBuilds)
        builds.faults.fail_next(method, TransientError("UNAVAILABLE (injected)"))


def test_finish_ends_a_build_at_once_with_the_given_outcome() -> None:
    builds = FakeBuilds()
    build_id = builds.start(BuildRequest(steps=(bash("true"), bash("true")), images=("x/y:1",)))

    ended = builds.finish(build_id, FakeOutcome(BuildStatus.TIMEOUT, failing_step=1))

    assert ended.status is BuildStatus.TIMEOUT
    assert ended.failing_step is not None and ended.failing_step.index == 1
    assert ended.images == ()
    assert builds.get(build_id) == ended  # terminal builds stay as they ended
    assert builds.started[0].images == ("x/y:1",)


def test_from_config_reads_a_cloudbuild_yaml_and_adds_substitutions_and_tags() -> None:
    config = {
        "steps": [{"id": "b", "name": "gcr.io/cloud-builders/docker", "args": ["build"], "waitFor": ["-"]}],
        "images": ["${_IMAGE}"],
        "tags": ["trainer"],
        "substitutions": {"_IMAGE": "default", "_OTHER": "o"},
        "timeout": "600s",
        "options": {"substitutionOption": "ALLOW_LOOSE"},
    }

    request = BuildRequest.from_config(
        config,
        source=StorageSource("b", "src.tgz"),
        substitutions={"_IMAGE": "mine"},
        tags=["run-1", "trainer"],
    )

    assert request.steps[0].wait_for == ("-",)
    assert request.substitutions == {"_IMAGE": "mine", "_OTHER": "o"}
    assert request.tags == ("trainer", "run-1")
    assert request.timeout_seconds == 600.0
    assert request.allow_loose_substitutions
    assert request.source == StorageSource("b", "src.tgz")


def test_from_config_names_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        BuildRequest.from_config({"steps": [{"name": "x", "args": "not-a-list"}, 3], "timeout": "soon"})
    assert len(raised.value.problems) == 3


def test_request_problems_cover_what_cloud_build_checks_before_running() -> None:
    request = BuildRequest(
        steps=(bash("true", "a"), bash("true", "a"), replace(bash("true"), wait_for=("z",))),
        substitutions={"lower": "x"},
        tags=("bad tag",),
        timeout_seconds=0,
    )
    problems = request_problems(request)
    assert any("duplicate step id" in p for p in problems)
    assert any("'z' is not the id of an earlier step" in p for p in problems)
    assert any("substitutions" in p for p in problems)
    assert any("tags" in p for p in problems)
    assert any("timeout" in p for p in problems)


def test_options_logging_from_the_config_reaches_the_cloud_build_request() -> None:
    from google.cloud.devtools import cloudbuild_v1

    from shared.ports.builds import _build_body

    config = {
        "steps": [{"name": "bash", "args": ["-c", "true"]}],
        "options": {"logging": "CLOUD_LOGGING_ONLY", "substitutionOption": "ALLOW_LOOSE"},
    }
    request = BuildRequest.from_config(config, substitutions={"COMMIT_SHA": "a" * 40})

    body = _build_body(request)

    assert body["options"] == {"logging": "CLOUD_LOGGING_ONLY", "substitution_option": "ALLOW_LOOSE"}
    # The body is what the real client sends: it must convert into the API's Build message as is.
    build = cloudbuild_v1.Build(body)
    assert build.options.logging == cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY
    assert build.substitutions["COMMIT_SHA"] == "a" * 40


def test_a_logging_mode_cloud_build_does_not_know_is_a_problem() -> None:
    request = BuildRequest.from_config({"steps": [{"name": "bash"}], "options": {"logging": "SOMEWHERE"}})

    assert any("options.logging" in problem for problem in request_problems(request))
    assert not request_problems(replace(request, logging="NONE"))
