"""The behaviour every :class:`shared.ports.builds.Builds` implementation must show.

A concrete module subclasses :class:`BuildsContract` (its name starting with ``Test``) and provides the
``builds`` fixture and :meth:`BuildsContract.inject_unavailable`. The requests are real ones: a git
repository made for the test (``file://`` URL at a commit), ``docker build`` of its Dockerfile, ``bash`` steps
whose exit code decides the outcome — a fake reads the same request through its scripted outcome.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from shared.errors import InvalidInput, PermanentError, TransientError
from shared.ports.builds import Build, BuildRequest, Builds, BuildStatus, BuildStep, GitSource
from shared.ports.errors import NotFound
from tests.contract.eventually import until

DOCKERFILE = 'FROM python:3.11-slim\nWORKDIR /app\nCOPY app.py .\nENTRYPOINT ["python", "app.py"]\n'
CONFIG = {
    "steps": [
        {"id": "build", "name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", "${_IMAGE}", "."]}
    ],
    "images": ["${_IMAGE}"],
    "tags": ["contract"],
}


def bash(script: str, step_id: str = "") -> BuildStep:
    return BuildStep(name="bash", args=("-c", script), id=step_id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_repository(folder: Path) -> tuple[str, str]:
    """A git repository holding a tiny app with a Dockerfile: its ``file://`` URL and the commit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "app.py").write_text("print('hello from the contract build')\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "--quiet", "--initial-branch=main")
    git("-c", "user.name=contract", "-c", "user.email=contract@example.com", "add", ".")
    git("-c", "user.name=contract", "-c", "user.email=contract@example.com", "commit", "--quiet", "-m", "app")
    return folder.resolve().as_uri(), git("rev-parse", "HEAD")


class BuildsContract:
    """The contract; subclasses provide ``builds`` and ``inject_unavailable``."""

    #: How long a build may take to end.
    FINISH_SECONDS = 90.0

    @pytest.fixture
    def builds(self) -> Builds:
        raise NotImplementedError("a concrete contract test overrides the `builds` fixture")

    def inject_unavailable(self, builds: Builds, method: str) -> None:
        """Make the next call of ``method`` ("start" or "get") fail as UNAVAILABLE would."""
        raise NotImplementedError

    @pytest.fixture
    def repository(self, tmp_path: Path) -> tuple[str, str]:
        return make_repository(tmp_path / "repo")

    def finished(self, builds: Builds, build_id: str) -> Build:
        return until(lambda: builds.get(build_id), lambda b: b.status.terminal, self.FINISH_SECONDS, 0.2)

    # -- start and read back --------------------------------------------------------------------------------

    def test_start_answers_with_the_id_before_the_build_ends(self, builds: Builds) -> None:
        tag = unique("early")
        build_id = builds.start(BuildRequest(steps=(bash("sleep 1"),), tags=(tag,)))

        first = builds.get(build_id)

        assert first.id == build_id
        assert not first.status.terminal
        assert first.tags == (tag,)
        assert self.finished(builds, build_id).status is BuildStatus.SUCCESS

    def test_a_git_source_at_a_commit_builds_the_image_with_its_digest(
        self, builds: Builds, repository: tuple[str, str]
    ) -> None:
        url, commit = repository
        tag = unique("git")
        image = f"us-central1-docker.pkg.dev/contract/ports/app:{tag}"
        request = BuildRequest.from_config(
            CONFIG, source=GitSource(url, commit), substitutions={"_IMAGE": image}, tags=[tag]
        )

        build = self.finished(builds, builds.start(request))

        assert build.status is BuildStatus.SUCCESS
        assert not build.status.failed
        assert [built.name for built in build.images] == [image]
        digest = build.digest_of(image)
        assert digest is not None and digest.startswith("sha256:") and len(digest) == 71
        assert build.tags == ("contract", tag)
        assert build.substitutions["_IMAGE"] == image
        assert build.source_revision == commit
        assert build.failing_step is None
        assert build.step_statuses == (BuildStatus.SUCCESS,)
        assert build.log_url
        assert build.create_time is not None and build.finish_time is not None
        assert build.finish_time >= build.create_time

    def test_a_failing_step_is_named_with_its_exit_code(self, builds: Builds) -> None:
        request = BuildRequest(
            steps=(bash("true", "prepare"), bash("exit 3", "test"), bash("echo never", "after")),
            tags=(unique("failing"),),
        )

        build = self.finished(builds, builds.start(request))

        assert build.status is BuildStatus.FAILURE
        assert build.status.terminal and build.status.failed
        assert build.failing_step is not None
        assert (build.failing_step.index, build.failing_step.id, build.failing_step.name) == (
            1,
            "test",
            "bash",
        )
        assert build.failing_step.exit_code == 3
        assert "3" in build.status_detail
        assert build.step_statuses[:2] == (BuildStatus.SUCCESS, BuildStatus.FAILURE)
        assert build.images == ()
        assert build.log_url

    def test_a_build_may_set_the_source_built_ins_and_keeps_its_logging_option(
        self, builds: Builds, repository: tuple[str, str]
    ) -> None:
        # What a push build sends: $COMMIT_SHA / $SHORT_SHA set as a trigger would set them (Cloud Build fills
        # them only for triggered builds), and the config's options.logging, which Cloud Build requires of a
        # build running as a user-specified service account.
        url, commit = repository
        tag = unique("builtins")
        config = {
            "steps": [{"id": "show", "name": "bash", "args": ["-c", "echo ${COMMIT_SHA} $SHORT_SHA"]}],
            "tags": ["contract"],
            "options": {"logging": "CLOUD_LOGGING_ONLY"},
        }
        request = BuildRequest.from_config(
            config,
            source=GitSource(url, commit),
            substitutions={"COMMIT_SHA": commit, "SHORT_SHA": commit[:7]},
            tags=[tag],
        )
        assert request.logging == "CLOUD_LOGGING_ONLY"

        build = self.finished(builds, builds.start(request))

        assert build.status is BuildStatus.SUCCESS, build.status_detail
        assert build.substitutions["COMMIT_SHA"] == commit
        assert build.substitutions["SHORT_SHA"] == commit[:7]

    def test_a_built_in_a_build_may_not_set_is_refused(self, builds: Builds) -> None:
        marker = unique("project")
        request = BuildRequest(steps=(bash("true"),), substitutions={"PROJECT_ID": "other"}, tags=(marker,))

        with pytest.raises(InvalidInput) as raised:
            builds.start(request)

        assert any("PROJECT_ID" in problem for problem in raised.value.problems)
        assert builds.find_by_tags([marker]) == []

    # -- finding ---------------------------------------------------------------------------------------------

    def test_find_by_tags_needs_every_tag_and_lists_newest_first(self, builds: Builds) -> None:
        family, first_tag, second_tag = unique("family"), unique("first"), unique("second")
        first = builds.start(BuildRequest(steps=(bash("true"),), tags=(family, first_tag)))
        time.sleep(0.05)  # distinct create times
        second = builds.start(BuildRequest(steps=(bash("true"),), tags=(family, second_tag)))

        assert [b.id for b in builds.find_by_tags([family])] == [second, first]
        assert [b.id for b in builds.find_by_tags([family, first_tag])] == [first]
        assert [b.id for b in builds.find_by_tags([family], limit=1)] == [second]
        assert builds.find_by_tags([unique("nothing")]) == []

    def test_finding_by_a_tag_no_build_can_carry_is_invalid(self, builds: Builds) -> None:
        with pytest.raises(InvalidInput):
            builds.find_by_tags(['x" OR tags="y'])

    def test_an_unknown_build_is_not_found(self, builds: Builds) -> None:
        with pytest.raises(NotFound) as raised:
            builds.get(str(uuid.uuid4()))
        assert isinstance(raised.value, PermanentError)

    # -- refusals and failures ------------------------------------------------------------------------------

    def test_a_request_cloud_build_would_refuse_names_every_problem_and_starts_nothing(
        self, builds: Builds
    ) -> None:
        marker = unique("refused")
        request = BuildRequest(steps=(BuildStep(name=""), bash("true")), tags=(marker, "not a tag"))

        with pytest.raises(InvalidInput) as raised:
            builds.start(request)

        assert len(raised.value.problems) >= 2
        assert builds.find_by_tags([marker]) == []

    def test_an_unused_substitution_is_refused(self, builds: Builds) -> None:
        marker = unique("unused")
        request = BuildRequest(steps=(bash("true"),), substitutions={"_UNUSED": "x"}, tags=(marker,))

        with pytest.raises(InvalidInput):
            builds.start(request)
        assert builds.find_by_tags([marker]) == []

    def test_unavailable_is_transient_and_the_next_call_works(self, builds: Builds) -> None:
        marker = unique("retry")
        self.inject_unavailable(builds, "start")

        with pytest.raises(TransientError):
            builds.start(BuildRequest(steps=(bash("true"),), tags=(marker,)))
        build_id = builds.start(BuildRequest(steps=(bash("true"),), tags=(marker,)))

        assert [b.id for b in builds.find_by_tags([marker])] == [build_id]
