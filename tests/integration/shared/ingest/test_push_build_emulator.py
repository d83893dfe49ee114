"""A planned push build runs on the Cloud Build emulator: the commit, both image tags, found by its tags."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud.devtools import cloudbuild_v1

from shared.ingest.builds import load_build_config, plan_build
from shared.ingest.routing import ImageRule, Push, PushCommit, PushRules, route
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, poll, running

pytestmark = pytest.mark.integration

Status = cloudbuild_v1.Build.Status
TERMINAL = {Status.SUCCESS, Status.FAILURE, Status.TIMEOUT, Status.CANCELLED, Status.INTERNAL_ERROR}
IMAGE = "us-central1-docker.pkg.dev/emu-project/mlops/trainer"
RULES = PushRules(
    images=(
        ImageRule("trainer", ("trainer/**",), "trainer", repository=IMAGE),
        ImageRule("server", ("server/**",), "server", repository=IMAGE.replace("trainer", "server")),
    )
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with running(tmp_path_factory.mktemp("ingest-builds"), cloudbuild=True) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: ApiStack) -> cloudbuild_v1.CloudBuildClient:
    return cloudbuild_v1.CloudBuildClient(**stack.options("cloudbuild"))


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def test_a_pushed_trainer_change_builds_the_trainer_at_that_commit(
    client: cloudbuild_v1.CloudBuildClient, tmp_path: Path
) -> None:
    repo = tmp_path / "ml"
    shutil.copytree(ROOT / "examples" / "trainer", repo / "trainer")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "sample trainer")
    before = git(repo, "rev-parse", "HEAD")
    (repo / "trainer" / "trainer" / "NOTES.txt").write_text("tuned\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tune the trainer")
    after = git(repo, "rev-parse", "HEAD")
    (repo / "trainer" / "trainer" / "NOTES.txt").write_text("a later commit the build must not see\n")
    git(repo, "commit", "-q", "-am", "later")

    push = Push(
        provider="github",
        repository="acme/ml",
        ref="refs/heads/main",
        before=before,
        after=after,
        clone_url=f"file://{repo}",
        commits=(PushCommit(after, added=("trainer/trainer/NOTES.txt",)),),
        raw={
            "commits": [{"id": after, "added": ["trainer/trainer/NOTES.txt"], "modified": [], "removed": []}]
        },
    )
    decision = route(push, RULES)
    assert decision.image_names == ("trainer",)
    plan = plan_build(
        push, decision.images[0].rule, load_build_config(ROOT / "cloudbuild" / "build-image.yaml")
    )
    body = cloudbuild_v1.Build.from_json(json.dumps(plan.to_build()))
    operation = client.create_build(project_id=PROJECT, build=body)
    build_id = operation.metadata.build.id

    seen = poll(lambda: client.get_build(project_id=PROJECT, id=build_id), lambda b: b.status in TERMINAL, 60)
    build = seen[-1]
    assert build.status == Status.SUCCESS, build.status_detail
    assert build.source_provenance.resolved_git_source.revision == after
    digests = {image.name: image.digest for image in build.results.images}
    assert set(digests) == {f"{IMAGE}:{after}", f"{IMAGE}:{after[:7]}"}
    assert len(set(digests.values())) == 1 and next(iter(digests.values())).startswith("sha256:")
    assert list(build.tags) == ["mlops", f"run-{plan.run_id}", "image-trainer"]
    assert build.substitutions["_RUN_ID"] == plan.run_id and build.substitutions["COMMIT_SHA"] == after

    # After a crash, the build is found by its tags instead of being started again.
    query = " AND ".join(f'tags="{tag}"' for tag in plan.lookup_tags)
    found = list(client.list_builds(project_id=PROJECT, filter=query))
    assert [b.id for b in found] == [build_id]
