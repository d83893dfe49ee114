"""The push stage against the Cloud Build emulator: a signed push of a real local git repository builds the
trainer at that commit (once, however often the webhook is sent), and the reconciler's ``poll_run`` turns
the finished build into ``training.requested`` with the digest Cloud Build reported."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import clients
from shared.chain.builds import POINTERS, poll_run
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import Ports, fake_ports
from shared.ports.builds import CloudBuildBuilds
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.functional.chain.push_support import (
    SECRET,
    TRAINER_REPOSITORY,
    client,
    distinct,
    github_headers,
    published,
    push_to_main,
    shipped_config,
)
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, poll, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with running(tmp_path_factory.mktemp("push-chain"), cloudbuild=True) as api:
        clients.reset()  # the Cloud Build client reads CLOUDBUILD_EMULATOR_HOST, set now
        yield api
    clients.reset()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def repository_with_a_trainer_change(folder: Path) -> tuple[str, str, str]:
    """A git repository holding the sample trainer, then a commit changing it: URL, before, after."""
    shutil.copytree(ROOT / "examples" / "trainer", folder / "trainer")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "sample trainer")
    before = git(folder, "rev-parse", "HEAD")
    (folder / "trainer" / "NOTES.txt").write_text("tuned\n")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "tune the trainer")
    return folder.resolve().as_uri(), before, git(folder, "rev-parse", "HEAD")


def test_a_signed_push_builds_once_and_poll_run_requests_training_with_the_digest(
    stack: ApiStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    url, before, after = repository_with_a_trainer_change(tmp_path / "ml")
    payload = push_to_main("trainer/NOTES.txt", before=before, after=after)
    payload["commits"][0]["id"] = after
    payload["repository"]["clone_url"] = url
    body = json.dumps(payload).encode()
    fakes = fake_ports()
    builds = CloudBuildBuilds(PROJECT)
    ports = Ports(builds, fakes.training, fakes.registry, fakes.deployments, fakes.metrics, fakes.objects)
    runtime = Runtime(shipped_config(), InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), ports)
    webhook = client("on_git_push")

    with use(runtime):
        answers = [webhook.post("/", data=body, headers=github_headers(body)) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [202, 200, 200], answers[0].get_json()
        run_id = answers[0].get_json()["run_id"]
        [started] = builds.find_by_tags([f"run-{run_id}", "image-trainer"])

        def tick() -> list[str]:
            run = runtime.ledger.get_run(run_id)
            assert run is not None
            return poll_run(runtime, run)

        [line] = poll(tick, bool, timeout=120, interval=0.5)[-1]

    build = builds.get(started.id)
    assert build.status.value == "SUCCESS", build.status_detail
    assert build.source_revision == after
    digest = build.digest_of(f"{TRAINER_REPOSITORY}:{after}")
    assert digest is not None and digest.startswith("sha256:")
    assert "training.requested for churn" in line
    [request] = distinct(published(runtime, "training.requested")).values()
    data = request.json()["data"]
    assert data["image"] == f"{TRAINER_REPOSITORY}@{digest}"
    assert data["git"]["commit"] == after and data["git"]["branch"] == "main"
    pointer = runtime.ledger.get_doc(POINTERS, "image-trainer")
    assert pointer is not None and pointer.data["image"] == data["image"]
