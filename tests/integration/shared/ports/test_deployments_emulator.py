"""The ``Deployments`` contract against the Cloud Run emulator, through the real ``run_v2`` clients: revisions
are real local processes of a server image recorded in the stack's registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_exceptions

from emulators.apiserver.admin import EmulatorAdmin
from emulators.common.registry import LocalRegistry
from shared import clients
from shared.ports.deployments import CloudRunDeployments, Deployments, TrafficTarget
from shared.ports.errors import Conflict
from tests.contract.deployments import SERVER_SCRIPT, DeploymentsContract
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/ports/server:contract"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("deployments-port")
    context = root / "server"
    context.mkdir()
    (context / "serve.py").write_text(SERVER_SCRIPT)
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY serve.py .\nENTRYPOINT ["python", "serve.py"]\n'
    )
    LocalRegistry(root / "registry").build(context, [IMAGE])
    with running(root, run=True) as api:
        clients.reset()
        yield api


@pytest.fixture
def admin(stack: ApiStack) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(stack.hosts["run"])
    yield admin
    admin.clear_faults()


class TestCloudRunDeployments(DeploymentsContract):
    @pytest.fixture
    def deployments(self, stack: ApiStack, admin: EmulatorAdmin) -> Deployments:
        return CloudRunDeployments(PROJECT, LOCATION)

    @pytest.fixture
    def image(self) -> str:
        return IMAGE

    def make_revision_fail(self, deployments: Deployments, service: str, revision: str) -> None:
        name = f"projects/{PROJECT}/locations/{LOCATION}/services/{service}"
        EmulatorAdmin(os.environ["RUN_EMULATOR_HOST"])._call(
            "POST", "revisions:fail-next", {"count": 1, "service": name}
        )

    def inject_unavailable(self, deployments: Deployments, method: str) -> None:
        rpc = {"create_service": "CreateService", "set_traffic": "UpdateService"}[method]
        EmulatorAdmin(os.environ["RUN_EMULATOR_HOST"]).fail_next(rpc, "UNAVAILABLE")


def test_an_injected_aborted_update_is_a_conflict_with_its_cause(
    stack: ApiStack, admin: EmulatorAdmin
) -> None:
    deployments = CloudRunDeployments(PROJECT, LOCATION)
    contract = DeploymentsContract()
    stable, _ = contract.running(deployments, "svc-aborted", IMAGE)
    admin.fail_next("UpdateService", "ABORTED")

    with pytest.raises(Conflict) as raised:
        deployments.set_traffic("svc-aborted", [TrafficTarget(stable, 100)])

    assert isinstance(raised.value.__cause__, google_exceptions.Conflict)  # 409 over REST: told apart by body
    deployments.set_traffic("svc-aborted", [TrafficTarget(stable, 100)])
    assert contract.settled(deployments, "svc-aborted").traffic == (TrafficTarget(stable, 100),)
