"""The chain's part of ``pipeline.yaml``: which pushes build which images, which datasets train which models,
and how a trained model is judged. Parsed by :func:`shared.config.parse_config` into
:class:`ChainConfig` (``config.chain``); every problem is reported with the others, naming its field.

```yaml
spec:
  push:                              # which pushes start builds (shared.ingest.routing)
    repositories: ["**"]             # globs on owner/name
    branches: [main]
    tags: []
    images:
      - {name: trainer, role: trainer, paths: ["trainer/**"], context: trainer}
      - {name: server, role: server, paths: ["server/**"], context: server}
  artifacts:                         # defaults: PROJECT-artifacts, REGION-docker.pkg.dev/PROJECT/mlops
    bucket: ${GOOGLE_CLOUD_PROJECT}-artifacts
    imageRepository: us-central1-docker.pkg.dev/${GOOGLE_CLOUD_PROJECT}/mlops
  datasets:
    - name: churn
      bucket: ${GOOGLE_CLOUD_PROJECT}-data
      prefix: churn/
      model: churn
      schema: schemas/churn.yaml     # relative to this file
      batching: {quiet: 10s, maxWait: 2m, maxCount: 50}
  models:
    - name: churn
      trainer: {image: ..., machineType: n1-standard-4, serviceAccount: "", args: []}
      servingImage: ...
      gates: [{metric: accuracy, direction: higher, min: 0.8}]
      approval: manual               # manual | auto
      drift: {debounce: 1h}
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from shared.ingest.routing import ImageRule, PushRules
from shared.problems import Reader
from shared.training.batching import BatchPolicy, DebouncePolicy
from shared.training.gates import Gate, parse_gates

IMAGE_ROLES = ("trainer", "server", "other")
APPROVAL_POLICIES = ("manual", "auto")
TRAINING_KINDS = ("custom_job", "pipeline_job")


@dataclass(frozen=True)
class ImageSpec:
    """An image the pipeline builds, and what its successful build means (``role``)."""

    rule: ImageRule
    role: str  # trainer: train on SUCCESS; server: record for the rollout; other: record only

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass(frozen=True)
class TrainerSpec:
    image: str  # the default trainer image, used until our builds produce one
    machine_type: str = "n1-standard-4"
    service_account: str = ""
    args: tuple[str, ...] = ()
    kind: str = "custom_job"  # custom_job | pipeline_job
    pipeline_template: str = ""  # for pipeline_job: the compiled pipeline spec (gs:// or a path)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    trainer: TrainerSpec
    serving_image: str
    gates: tuple[Gate, ...]
    approval: str  # manual | auto
    approvers: tuple[str, ...]
    drift: DebouncePolicy


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    bucket: str
    prefix: str
    model: str
    schema_path: Path
    batching: BatchPolicy

    def holds(self, bucket: str, name: str) -> bool:
        """Is ``bucket/name`` a data object of this dataset (and not one of our own quarantined copies)?"""
        return bucket == self.bucket and name.startswith(self.prefix) and not name.startswith("quarantine/")


@dataclass(frozen=True)
class ChainConfig:
    push: PushRules | None
    images: tuple[ImageSpec, ...]
    artifacts_bucket: str
    image_repository: str
    datasets: tuple[DatasetSpec, ...]
    models: tuple[ModelSpec, ...]

    def image(self, name: str) -> ImageSpec | None:
        return next((image for image in self.images if image.name == name), None)

    def model(self, name: str) -> ModelSpec | None:
        return next((model for model in self.models if model.name == name), None)

    def dataset_for(self, bucket: str, name: str) -> DatasetSpec | None:
        """The dataset whose bucket and prefix hold the object (the longest prefix wins)."""
        matches = [dataset for dataset in self.datasets if dataset.holds(bucket, name)]
        return max(matches, key=lambda dataset: len(dataset.prefix), default=None)

    def dataset(self, name: str) -> DatasetSpec | None:
        return next((dataset for dataset in self.datasets if dataset.name == name), None)


EMPTY = ChainConfig(None, (), "", "", (), ())


def parse_chain(
    spec: Reader,
    source: str,
    duration: Callable[[Reader, str, float, float], float],
    project: str,
    region: str,
) -> ChainConfig:
    """Read ``spec.push``, ``spec.artifacts``, ``spec.datasets`` and ``spec.models`` (problems go to the
    collector of ``spec``)."""
    artifacts = spec.child("artifacts")
    artifacts.unknown({"bucket", "imageRepository"})
    artifacts_bucket = artifacts.string("bucket", f"{project}-artifacts")
    image_repository = artifacts.string("imageRepository", f"{region}-docker.pkg.dev/{project}/mlops")

    images: list[ImageSpec] = []
    push: PushRules | None = None
    if spec.has("push"):
        reader = spec.child("push")
        reader.unknown({"repositories", "branches", "tags", "images"})
        for item in reader.items("images"):
            item.unknown({"name", "role", "paths", "context", "config", "repository"})
            name = item.string("name", required=True) or ""
            role = item.string("role", "other")
            if role not in IMAGE_ROLES:
                item.add("role", f"{role!r} is not one of {', '.join(IMAGE_ROLES)}")
            rule = ImageRule(
                name=name,
                paths=item.string_list("paths", ()),
                context=item.string("context", name),
                config=item.string("config", "cloudbuild/build-image.yaml"),
                repository=item.string("repository", f"{image_repository}/{name}"),
            )
            images.append(ImageSpec(rule, role))
        push = PushRules(
            images=tuple(image.rule for image in images),
            repositories=reader.string_list("repositories", ("**",)),
            branches=reader.string_list("branches", ("main",)),
            tags=reader.string_list("tags", ()),
        )
        for problem in push.problems("spec.push"):
            field, _, message = problem.partition(": ")
            spec.problems.add(field, message)

    models: list[ModelSpec] = []
    for item in spec.items("models"):
        item.unknown({"name", "trainer", "servingImage", "gates", "approval", "approvers", "drift"})
        name = item.string("name", required=True) or ""
        trainer = item.child("trainer")
        trainer.unknown({"image", "machineType", "serviceAccount", "args", "kind", "pipelineTemplate"})
        kind = trainer.string("kind", "custom_job")
        if kind not in TRAINING_KINDS:
            trainer.add("kind", f"{kind!r} is not one of {', '.join(TRAINING_KINDS)}")
        template = trainer.string("pipelineTemplate", "")
        if kind == "pipeline_job" and not template:
            trainer.add("pipelineTemplate", "required when kind is pipeline_job")
        approval = item.string("approval", "manual")
        if approval not in APPROVAL_POLICIES:
            item.add("approval", f"{approval!r} is not one of {', '.join(APPROVAL_POLICIES)}")
        drift = item.child("drift")
        drift.unknown({"debounce"})
        window = duration(drift, "debounce", 3600.0, 1.0)
        models.append(
            ModelSpec(
                name=name,
                trainer=TrainerSpec(
                    image=trainer.string("image", f"{image_repository}/trainer:latest"),
                    machine_type=trainer.string("machineType", "n1-standard-4"),
                    service_account=trainer.string("serviceAccount", ""),
                    args=trainer.string_list("args", ()),
                    kind=kind,
                    pipeline_template=template,
                ),
                serving_image=item.string("servingImage", f"{image_repository}/server:latest"),
                gates=tuple(parse_gates(item.get("gates"), item.at("gates"), item.problems)),
                approval=approval,
                approvers=item.string_list("approvers", ()),
                drift=DebouncePolicy(timedelta(seconds=max(window, 1.0))),
            )
        )
    _unique(spec, "models", [model.name for model in models])

    datasets: list[DatasetSpec] = []
    base = Path(source).parent
    for item in spec.items("datasets"):
        item.unknown({"name", "bucket", "prefix", "model", "schema", "batching"})
        name = item.string("name", required=True) or ""
        model = item.string("model", required=True) or ""
        if model and model not in {known.name for known in models}:
            item.add("model", f"unknown model {model!r} (spec.models lists {[m.name for m in models]})")
        schema = item.string("schema", required=True) or ""
        schema_path = (base / schema) if schema else base
        if schema and not schema_path.is_file():
            item.add("schema", f"schema file {str(schema_path)!r} not found")
        batching = item.child("batching")
        batching.unknown({"quiet", "maxWait", "maxCount"})
        quiet = duration(batching, "quiet", 10.0, 0.0)
        max_wait = duration(batching, "maxWait", 120.0, 0.0)
        max_count = batching.integer("maxCount", 100, minimum=1, maximum=10_000)
        if max_wait < quiet:
            batching.add("maxWait", "must not be shorter than quiet")
        datasets.append(
            DatasetSpec(
                name=name,
                bucket=item.string("bucket", required=True) or "",
                prefix=item.string("prefix", ""),
                model=model,
                schema_path=schema_path,
                batching=BatchPolicy(timedelta(seconds=quiet), timedelta(seconds=max_wait), max_count),
            )
        )
    _unique(spec, "datasets", [dataset.name for dataset in datasets])
    return ChainConfig(
        push=push,
        images=tuple(images),
        artifacts_bucket=artifacts_bucket,
        image_repository=image_repository,
        datasets=tuple(datasets),
        models=tuple(models),
    )


def _unique(spec: Reader, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            spec.problems.add(f"{spec.at(key)}[{index}].name", f"{name!r} is used twice")
        seen.add(name)
