"""Seed the local image registry at ``up``: the sample trainer and server, built by the Cloud Build emulator.

New data and drift train with the model's configured default trainer image until a push builds one, so that
image must exist before any push: each model's ``trainer.image`` is built from ``examples/trainer`` and its
``servingImage`` from ``examples/server``, under exactly those names (``.../mlops/trainer:seed``). The builds
go through the real Cloud Build client and the emulator (storage-source tarballs, the examples'
``cloudbuild.yaml``), like any build, but are tagged ``seed`` and never ``mlops``: ``on_build_status`` takes
only builds tagged ``mlops``, so seeding starts no training and counts as no pipeline build.

The builds start as soon as storage and Cloud Build are ready (:func:`start`) and run while the function host
starts; ``up`` waits for them at its end (the finisher :func:`start` returns), printing a line per image.
Measured on a 2-core machine: both builds take about 3 s, done before the function host is, so seeding adds
nothing noticeable to ``up`` (about 13 s in all).

The same step creates the buckets the chain's config names (the artifacts bucket, every dataset's bucket)
when they are missing — what Terraform or ``gcloud storage buckets create`` does once in a project — so new
data can land and a trainer can write its model right after ``up``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulators.common.proc import StackError

if TYPE_CHECKING:
    from shared.config import PipelineConfig
    from shared.ports import Ports

Progress = Callable[[str], None]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: The tag that marks a seed build (and never ``mlops``, the pipeline's own).
SEED_TAG = "seed"
#: How long ``up`` waits for the seed builds at most.
WAIT_SECONDS = 180.0


@dataclass(frozen=True)
class Seed:
    image: str  # the full reference the config names, e.g. us-central1-docker.pkg.dev/P/mlops/trainer:seed
    example: str  # the folder under examples/ it is built from
    role: str  # trainer | server

    @property
    def short(self) -> str:
        return self.image.rsplit("/", 1)[-1]


def seeds(config: PipelineConfig) -> list[Seed]:
    """The images the config's models name: a trainer and a server each, once per distinct image."""
    found: dict[str, Seed] = {}
    for model in config.chain.models:
        for image, example in ((model.trainer.image, "trainer"), (model.serving_image, "server")):
            if image and image not in found:
                found[image] = Seed(image, example, example)
    return list(found.values())


def chain_buckets(config: PipelineConfig) -> list[str]:
    """The buckets the chain reads and writes: artifacts (when models are configured) and the datasets'."""
    chain = config.chain
    names = [chain.artifacts_bucket] if chain.models and chain.artifacts_bucket else []
    names += [dataset.bucket for dataset in chain.datasets]
    return list(dict.fromkeys(name for name in names if name))


def source_bucket(project: str) -> str:
    """Where the stack uploads the sources it builds itself (not one of the pipeline's buckets)."""
    return f"{project}-stack"


def start(config: PipelineConfig, project: str, progress: Progress) -> Callable[[Progress], None] | None:
    """Upload each example's source and start its build; return the finisher that waits for them (None when
    the config names no image to seed)."""
    wanted = seeds(config)
    buckets = chain_buckets(config)
    if not wanted and not buckets:
        return None
    import yaml

    from emulators.cloudbuild.sources import pack_source
    from shared import clients
    from shared.ports import production_ports
    from shared.ports.builds import BuildRequest, StorageSource

    began = time.monotonic()
    clients.reset()  # the clients must be made for this stack's endpoints
    ports = production_ports(config)
    bucket = source_bucket(project)
    storage = clients.storage()
    created = [name for name in [*buckets, bucket] if _ensure_bucket(storage, name)]
    if created:
        progress(f"  ✓ {'buckets':<21} {', '.join(created)} (created)")
    if not wanted:
        clients.reset()
        return None
    started: list[tuple[Seed, str]] = []
    for seed in wanted:
        folder = EXAMPLES / seed.example
        uploaded = ports.objects.write(bucket, f"seed/{seed.example}.tgz", pack_source(folder), timeout=30)
        build_config = yaml.safe_load((folder / "cloudbuild.yaml").read_text())
        request = BuildRequest.from_config(
            build_config,
            source=StorageSource(bucket, uploaded.name, uploaded.generation),
            substitutions={"_IMAGE": seed.image},
            tags=[SEED_TAG],
        )
        started.append((seed, ports.builds.start(request, timeout=30)))
    progress(
        f"  … seeding images        {', '.join(seed.short for seed, _ in started)} "
        f"(Cloud Build emulator, started in {time.monotonic() - began:.1f}s)"
    )

    def finish(report: Progress) -> None:
        _wait(ports, started, began, report)

    return finish


def _ensure_bucket(storage: Any, name: str) -> bool:
    """Create the bucket unless it exists; True when this call created it."""
    from google.api_core.exceptions import Conflict

    if storage.bucket(name).exists():
        return False
    try:
        storage.create_bucket(name)
    except Conflict:  # created meanwhile (another `up` on the same emulator)
        return False
    return True


def _wait(ports: Ports, started: list[tuple[Seed, str]], began: float, progress: Progress) -> None:
    from shared import clients

    deadline = time.monotonic() + WAIT_SECONDS
    pending = dict(started)
    try:
        while pending:
            for seed, build_id in list(pending.items()):
                build = ports.builds.get(build_id, timeout=10)
                if build.status.terminal:
                    del pending[seed]
                    _report(seed, build, began, progress)
            if pending and time.monotonic() > deadline:
                names = ", ".join(seed.short for seed in pending)
                raise StackError(f"seeding the image registry: {names} not built after {WAIT_SECONDS:.0f}s")
            if pending:
                time.sleep(0.2)
    finally:
        clients.reset()


def _report(seed: Seed, build: Any, began: float, progress: Progress) -> None:
    from shared.ports.builds import BuildStatus

    if build.status is not BuildStatus.SUCCESS:
        raise StackError(
            f"seeding the image registry: the {seed.role} build {build.id} ended {build.status.value}"
            f"{': ' + build.status_detail if build.status_detail else ''} (log: {build.log_url})"
        )
    digest = (build.digest_of(seed.image) or "?")[:19]
    progress(
        f"  ✓ {'seeded ' + seed.role:<21} {seed.image}@{digest}…  (built in {time.monotonic() - began:.1f}s)"
    )
