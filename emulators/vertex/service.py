"""Wire the Vertex AI services (jobs, pipelines, Model Registry) into one emulator server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emulators.apiserver.server import ApiServer
from emulators.common.registry import LocalRegistry
from emulators.vertex.jobs import JobsService
from emulators.vertex.models import ModelRegistryService


@dataclass
class VertexEmulator:
    jobs: JobsService
    models: ModelRegistryService


def attach_vertex(
    server: ApiServer, project: str, state_dir: Path, registry: LocalRegistry
) -> VertexEmulator:
    # Register the operations routes first: the clients poll /ui/... and /v1/... operation names.
    server.add_operations(("ui", "v1"))
    emulator = VertexEmulator(
        jobs=JobsService(server, project, state_dir, registry),
        models=ModelRegistryService(server),
    )
    server.add_health_info(lambda: {"registry": str(registry.root)})
    return emulator
