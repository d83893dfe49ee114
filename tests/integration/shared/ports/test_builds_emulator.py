"""The ``Builds`` contract against the Cloud Build emulator, through the real ``cloudbuild_v1`` client.

One emulator per module, started by the project's stack (with storage, where it reads sources); builds stay
QUEUED a second so the contract can see one before it ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_exceptions

from emulators.apiserver.admin import EmulatorAdmin
from shared import clients
from shared.errors import DeadlineExceeded, TransientError
from shared.ports.builds import BuildRequest, Builds, CloudBuildBuilds
from tests.contract.builds import BuildsContract, bash
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("builds-port")
    with running(
        root, storage=True, cloudbuild=True, api_args={"cloudbuild": ["--queued-seconds", "1"]}
    ) as api:
        clients.reset()  # the client reads CLOUDBUILD_EMULATOR_HOST, set now
        yield api


@pytest.fixture
def admin(stack: ApiStack) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(stack.hosts["cloudbuild"])
    yield admin
    admin.clear_faults()


class TestCloudBuildBuilds(BuildsContract):
    @pytest.fixture
    def builds(self, stack: ApiStack, admin: EmulatorAdmin) -> Builds:
        return CloudBuildBuilds(PROJECT)

    def inject_unavailable(self, builds: Builds, method: str) -> None:
        rpc = {"start": "CreateBuild", "get": "GetBuild"}[method]
        EmulatorAdmin(os.environ["CLOUDBUILD_EMULATOR_HOST"]).fail_next(rpc, "UNAVAILABLE")


def test_the_google_error_is_kept_as_the_cause(stack: ApiStack, admin: EmulatorAdmin) -> None:
    admin.fail_next("CreateBuild", "UNAVAILABLE")

    with pytest.raises(TransientError) as raised:
        CloudBuildBuilds(PROJECT).start(BuildRequest(steps=(bash("true"),)))

    assert isinstance(raised.value.__cause__, google_exceptions.ServiceUnavailable)


def test_a_slow_answer_ends_at_the_timeout_as_a_deadline(stack: ApiStack, admin: EmulatorAdmin) -> None:
    builds = CloudBuildBuilds(PROJECT)
    build_id = builds.start(BuildRequest(steps=(bash("true"),)))
    admin.add_latency("GetBuild", 3.0)

    with pytest.raises(DeadlineExceeded):
        builds.get(build_id, timeout=0.5)


def test_a_regional_build_is_started_read_and_found_in_its_region(
    stack: ApiStack, admin: EmulatorAdmin
) -> None:
    regional = CloudBuildBuilds(PROJECT, "us-central1")
    tag = f"regional-{uuid.uuid4().hex[:8]}"

    build_id = regional.start(BuildRequest(steps=(bash("true"),), tags=(tag,)))

    assert regional.get(build_id).id == build_id
    assert [b.id for b in regional.find_by_tags([tag])] == [build_id]
    assert CloudBuildBuilds(PROJECT).find_by_tags([tag]) == []  # not a global build
