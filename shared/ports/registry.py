"""The ``ModelRegistry`` port: versions of a model in the Vertex AI Model Registry, their labels, aliases and
metadata.

A model is addressed by its id (``churn``: the pipeline uploads with that ``model_id``, so the name is
deterministic) or by its full resource name (``projects/P/locations/L/models/ID``, e.g. a hand-registered
model). :meth:`ModelRegistry.upload` adds a version: the first upload creates the model (version 1, alias
``default``), later ones use ``parent_model``. An alias names at most one version of a model: adding it to a
version moves it (that is how ``champion`` moves on promotion). ``metadata`` is a JSON object kept with the
version (the evaluation metrics, so a champion's numbers are read back from the registry itself); JSON
numbers come back as floats.

Uploads are not idempotent: a caller labels the version with its run id and looks for it first
(:meth:`ModelRegistry.find_versions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.ports.common import Budget, as_utc, check, label_problems, read_retry
from shared.ports.errors import AlreadyExists, NotFound, boundary


@dataclass(frozen=True)
class ModelUpload:
    model_id: str  # the model's id; its name becomes projects/P/locations/L/models/<model_id>
    display_name: str
    artifact_uri: str  # gs:// folder holding the model files
    serving_image: str = ""  # the container that serves it (container_spec.image_uri)
    labels: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # e.g. ("candidate",); the first version also gets "default"
    description: str = ""  # of this version
    metadata: Mapping[str, Any] = field(default_factory=dict)  # JSON object, e.g. {"metrics": {...}}


@dataclass(frozen=True)
class ModelVersion:
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    display_name: str
    artifact_uri: str = ""
    serving_image: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    create_time: datetime | None = None

    @property
    def model_id(self) -> str:
        return self.model.rsplit("/", 1)[-1]

    @property
    def resource_name(self) -> str:
        """``projects/P/locations/L/models/ID@VERSION``: the name that pins this version."""
        return f"{self.model}@{self.version_id}"


class ModelRegistry(Protocol):
    def upload(self, upload: ModelUpload, *, timeout: float | None = None) -> ModelVersion:
        """Add a version (creating the model on first use) and return it."""
        ...

    def get_version(
        self, model: str, ref: str = "default", *, timeout: float | None = None
    ) -> ModelVersion | None:
        """The version ``ref`` (a version id or an alias such as ``champion``), or None when the model or
        the reference does not exist."""
        ...

    def list_versions(self, model: str, *, timeout: float | None = None) -> list[ModelVersion]:
        """Every version, oldest first; empty when the model does not exist."""
        ...

    def find_versions(
        self, model: str, labels: Mapping[str, str], *, timeout: float | None = None
    ) -> list[ModelVersion]:
        """Versions carrying every one of ``labels``, oldest first."""
        ...

    def merge_aliases(
        self,
        model: str,
        version_id: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> ModelVersion:
        """Give the version the aliases ``add`` (taking each from any other version) and drop ``remove``."""
        ...


_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def alias_problems(aliases: Sequence[str], where: str) -> list[str]:
    return [
        f"{where}: {alias!r} must match [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9] and not be a number"
        for alias in aliases
        if not _ALIAS.fullmatch(alias) or alias.isdigit()
    ]


def upload_problems(upload: ModelUpload) -> list[str]:
    problems = label_problems(upload.labels, "labels") + alias_problems(upload.aliases, "aliases")
    if not _MODEL_ID.fullmatch(upload.model_id):
        problems.append(f"model_id: {upload.model_id!r} must match [a-z0-9][a-z0-9-]{{0,62}}")
    if not upload.display_name:
        problems.append("display_name: required")
    if not upload.artifact_uri.startswith("gs://"):
        problems.append(f"artifact_uri: {upload.artifact_uri!r} is not a gs:// URI")
    try:
        as_stored(upload.metadata)
    except TypeError as error:
        problems.append(f"metadata: must be a JSON object ({error})")
    return problems


def merge_problems(add: Sequence[str], remove: Sequence[str]) -> list[str]:
    problems = alias_problems(add, "add") + alias_problems(remove, "remove")
    if "default" in remove:
        problems.append("remove: the default alias cannot be removed; give it to another version instead")
    return problems


class VertexModelRegistry:
    """``ModelRegistry`` over ``aiplatform_v1.ModelServiceClient`` (the emulator when
    ``VERTEX_EMULATOR_HOST`` is set); the client is made on first use."""

    def __init__(self, project: str, location: str, client: Any | None = None) -> None:
        self.project = project
        self.location = location
        self._client = client

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def _api(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.vertex_models()
        return self._client

    def model_name(self, model: str) -> str:
        return model if model.startswith("projects/") else f"{self.parent}/models/{model}"

    def upload(self, upload: ModelUpload, *, timeout: float | None = None) -> ModelVersion:
        check("model upload", upload_problems(upload))
        budget = Budget(timeout)
        name = self.model_name(upload.model_id)
        exists = self.get_version(name, timeout=budget.left("reading the model")) is not None
        try:
            response = self._upload(upload, name if exists else "", budget)
        except AlreadyExists:
            # Another upload created the model between our read and our create: add a version instead.
            response = self._upload(upload, name, budget)
        version = self.get_version(name, str(response.model_version_id), timeout=budget.left("reading back"))
        if version is None:
            raise NotFound(f"{name}@{response.model_version_id} vanished right after its upload")
        return version

    def _upload(self, upload: ModelUpload, parent_model: str, budget: Budget) -> Any:
        from google.api_core.future.polling import DEFAULT_POLLING

        model: dict[str, Any] = {
            "display_name": upload.display_name,
            "artifact_uri": upload.artifact_uri,
            "labels": dict(upload.labels),
            "version_aliases": list(upload.aliases),
        }
        if upload.serving_image:
            model["container_spec"] = {"image_uri": upload.serving_image}
        if upload.description:
            model["version_description"] = upload.description
        if upload.metadata:
            model["metadata"] = _json_value(upload.metadata)
        request: dict[str, Any] = {"parent": self.parent, "model": model}
        if parent_model:
            request["parent_model"] = parent_model
        else:
            request["model_id"] = upload.model_id
        with boundary(f"uploading a version of model {upload.model_id}"):
            operation = self._api().upload_model(
                request=request, timeout=budget.left("uploading a model"), retry=None
            )
            polling = DEFAULT_POLLING.with_delay(initial=0.2, maximum=2.0, multiplier=1.5)
            return operation.result(timeout=budget.left("waiting for the upload"), polling=polling)

    def get_version(
        self, model: str, ref: str = "default", *, timeout: float | None = None
    ) -> ModelVersion | None:
        seconds = Budget(timeout).left("reading a model version")
        name = f"{self.model_name(model)}@{ref}"
        try:
            with boundary(f"reading model version {name}"):
                found = self._api().get_model(
                    request={"name": name}, timeout=seconds, retry=read_retry(seconds)
                )
        except NotFound:
            return None
        return _to_version(found)

    def list_versions(self, model: str, *, timeout: float | None = None) -> list[ModelVersion]:
        return self._list(model, "", Budget(timeout))

    def find_versions(
        self, model: str, labels: Mapping[str, str], *, timeout: float | None = None
    ) -> list[ModelVersion]:
        check("label lookup", label_problems(labels, "labels"))
        query = " AND ".join(f'labels.{key}="{value}"' for key, value in labels.items())
        return self._list(model, query, Budget(timeout))

    def _list(self, model: str, query: str, budget: Budget) -> list[ModelVersion]:
        name = self.model_name(model)
        versions: list[ModelVersion] = []
        try:
            with boundary(f"listing versions of {name}"):
                seconds = budget.left("listing model versions")
                pager = self._api().list_model_versions(
                    request={"name": name, "filter": query}, timeout=seconds, retry=read_retry(seconds)
                )
                versions.extend(_to_version(item) for item in pager)
        except NotFound:
            return []
        return sorted(versions, key=_version_order)

    def merge_aliases(
        self,
        model: str,
        version_id: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> ModelVersion:
        check("alias change", merge_problems(add, remove))
        budget = Budget(timeout)
        name = f"{self.model_name(model)}@{version_id}"
        if not add and not remove:
            version = self.get_version(model, version_id, timeout=budget.left("reading a model version"))
            if version is None:
                raise NotFound(f"model version {name} does not exist")
            return version
        aliases = [*add, *(f"-{alias}" for alias in remove)]
        with boundary(f"changing the aliases of {name}"):
            # Idempotent (the same merge twice leaves the same aliases), so it may be retried.
            seconds = budget.left("merging aliases")
            merged = self._api().merge_version_aliases(
                request={"name": name, "version_aliases": aliases}, timeout=seconds, retry=read_retry(seconds)
            )
        return _to_version(merged)


def _version_order(version: ModelVersion) -> tuple[int, str]:
    return (int(version.version_id) if version.version_id.isdigit() else 0, version.version_id)


def as_stored(value: Any) -> Any:
    """``value`` as the registry gives it back: plain JSON, every number a float (a protobuf Value)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): as_stored(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_stored(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_value(value: Any) -> Any:
    return as_stored(value)


def _to_version(model: Any) -> ModelVersion:
    from google.protobuf.json_format import MessageToDict

    raw = type(model).pb(model)
    metadata: Any = MessageToDict(raw.metadata) if raw.HasField("metadata") else {}
    return ModelVersion(
        model=model.name.partition("@")[0],
        version_id=model.version_id,
        display_name=model.display_name,
        artifact_uri=model.artifact_uri,
        serving_image=model.container_spec.image_uri,
        labels=dict(model.labels),
        aliases=tuple(model.version_aliases),
        description=model.version_description,
        metadata=metadata if isinstance(metadata, dict) else {"value": metadata},
        create_time=as_utc(model.version_create_time),
    )
