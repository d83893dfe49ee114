"""Typed ports: what the chain drives on Google Cloud, each a ``Protocol`` with frozen dataclasses for its
values, a real adapter over the Google client and an in-memory fake that passes the same contract suite.

==============  ===========================================  =====================  ========================
port            what                                         real adapter           fake
==============  ===========================================  =====================  ========================
``Builds``      Cloud Build: start, get, find by tag         ``CloudBuildBuilds``   ``FakeBuilds``
``TrainingJobs`` Vertex AI CustomJobs: submit, get, by label ``VertexTrainingJobs`` ``FakeTrainingJobs``
``ModelRegistry`` Vertex AI Model Registry versions/aliases  ``VertexModelRegistry`` ``FakeModelRegistry``
``Deployments`` Cloud Run services, revisions, traffic        ``CloudRunDeployments`` ``FakeDeployments``
``Metrics``     Cloud Monitoring per-revision request stats  ``MonitoringMetrics``  ``FakeMetrics``
``Objects``     Cloud Storage objects with generations       ``StorageObjects``     ``FakeObjects``
==============  ===========================================  =====================  ========================

Every method takes ``timeout`` (seconds for the whole method; None = a 30 s default) and raises only the
project's errors (``shared.errors``; the port-specific subclasses are in ``shared.ports.errors``). Importing
this package loads no Google client library: adapters create their clients on first use, through
``shared.clients`` (which points them at the local emulators when the ``*_EMULATOR_HOST`` variables are set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.ports.builds import Builds
from shared.ports.deployments import Deployments
from shared.ports.metrics import Metrics
from shared.ports.objects import Objects
from shared.ports.registry import ModelRegistry
from shared.ports.training import TrainingJobs

if TYPE_CHECKING:
    from shared.ports.builds_fake import FakeBuilds
    from shared.ports.deployments_fake import FakeDeployments
    from shared.ports.metrics_fake import FakeMetrics
    from shared.ports.objects_fake import FakeObjects
    from shared.ports.registry_fake import FakeModelRegistry
    from shared.ports.training_fake import FakeTrainingJobs


class Placement(Protocol):
    """Where the pipeline runs (``shared.config.PipelineConfig`` is one)."""

    @property
    def project(self) -> str: ...

    @property
    def region(self) -> str: ...


@dataclass(frozen=True)
class Ports:
    builds: Builds
    training: TrainingJobs
    registry: ModelRegistry
    deployments: Deployments
    metrics: Metrics
    objects: Objects


@dataclass(frozen=True)
class FakePorts(Ports):
    """:class:`Ports` whose members are the fakes, typed as such so tests reach their controls."""

    builds: FakeBuilds
    training: FakeTrainingJobs
    registry: FakeModelRegistry
    deployments: FakeDeployments
    metrics: FakeMetrics
    objects: FakeObjects


def production_ports(config: Placement, build_location: str = "global") -> Ports:
    """The real adapters for ``config``'s project and region; no client exists until a port is used."""
    from shared.ports.builds import CloudBuildBuilds
    from shared.ports.deployments import CloudRunDeployments
    from shared.ports.metrics import MonitoringMetrics
    from shared.ports.objects import StorageObjects
    from shared.ports.registry import VertexModelRegistry
    from shared.ports.training import VertexTrainingJobs

    return Ports(
        builds=CloudBuildBuilds(config.project, build_location),
        training=VertexTrainingJobs(config.project, config.region),
        registry=VertexModelRegistry(config.project, config.region),
        deployments=CloudRunDeployments(config.project, config.region),
        metrics=MonitoringMetrics(config.project, config.region),
        objects=StorageObjects(),
    )


def fake_ports(project: str = "fake-project", region: str = "us-central1") -> FakePorts:
    """A fresh set of in-memory fakes (tests)."""
    from shared.ports.builds_fake import FakeBuilds
    from shared.ports.deployments_fake import FakeDeployments
    from shared.ports.metrics_fake import FakeMetrics
    from shared.ports.objects_fake import FakeObjects
    from shared.ports.registry_fake import FakeModelRegistry
    from shared.ports.training_fake import FakeTrainingJobs

    return FakePorts(
        builds=FakeBuilds(project=project),
        training=FakeTrainingJobs(project=project, location=region),
        registry=FakeModelRegistry(project=project, location=region),
        deployments=FakeDeployments(project=project, location=region),
        metrics=FakeMetrics(),
        objects=FakeObjects(),
    )


__all__ = [
    "Builds",
    "Deployments",
    "FakePorts",
    "Metrics",
    "ModelRegistry",
    "Objects",
    "Placement",
    "Ports",
    "TrainingJobs",
    "fake_ports",
    "production_ports",
]
