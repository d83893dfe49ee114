"""An in-memory ``ModelRegistry`` that honours the port's contract (``tests/contract/registry_contract.py``):
version numbering, the ``default`` alias, aliases that move between versions, label lookups."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared.ports.common import check, label_problems
from shared.ports.errors import NotFound
from shared.ports.faults import Faults
from shared.ports.registry import (
    ModelUpload,
    ModelVersion,
    as_stored,
    merge_problems,
    upload_problems,
)


@dataclass
class FakeModelRegistry:
    project: str = "fake-project"
    location: str = "us-central1"
    faults: Faults = field(default_factory=Faults)
    _models: dict[str, list[ModelVersion]] = field(
        default_factory=dict, init=False, repr=False
    )  # name -> versions
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def model_name(self, model: str) -> str:
        return (
            model
            if model.startswith("projects/")
            else f"projects/{self.project}/locations/{self.location}/models/{model}"
        )

    def upload(self, upload: ModelUpload, *, timeout: float | None = None) -> ModelVersion:
        self.faults.take("upload")
        check("model upload", upload_problems(upload))
        name = self.model_name(upload.model_id)
        with self._lock:
            versions = self._models.setdefault(name, [])
            aliases = list(dict.fromkeys(upload.aliases))
            if not versions and "default" not in aliases:
                aliases.insert(0, "default")
            version = ModelVersion(
                model=name,
                version_id=str(len(versions) + 1),
                display_name=upload.display_name,
                artifact_uri=upload.artifact_uri,
                serving_image=upload.serving_image,
                labels=dict(upload.labels),
                aliases=(),
                description=upload.description,
                metadata=as_stored(upload.metadata),
                create_time=datetime.now(UTC),
            )
            versions.append(version)
            return self._assign(name, version.version_id, aliases)

    def get_version(
        self, model: str, ref: str = "default", *, timeout: float | None = None
    ) -> ModelVersion | None:
        self.faults.take("get_version")
        with self._lock:
            for version in self._models.get(self.model_name(model), []):
                if version.version_id == ref or ref in version.aliases:
                    return version
        return None

    def list_versions(self, model: str, *, timeout: float | None = None) -> list[ModelVersion]:
        self.faults.take("list_versions")
        with self._lock:
            return list(self._models.get(self.model_name(model), []))

    def find_versions(
        self, model: str, labels: Mapping[str, str], *, timeout: float | None = None
    ) -> list[ModelVersion]:
        self.faults.take("find_versions")
        check("label lookup", label_problems(labels, "labels"))
        with self._lock:
            return [
                version
                for version in self._models.get(self.model_name(model), [])
                if all(version.labels.get(key) == value for key, value in labels.items())
            ]

    def merge_aliases(
        self,
        model: str,
        version_id: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> ModelVersion:
        self.faults.take("merge_aliases")
        check("alias change", merge_problems(add, remove))
        name = self.model_name(model)
        with self._lock:
            versions = self._models.get(name, [])
            index = next((i for i, v in enumerate(versions) if v.version_id == version_id), None)
            if index is None:
                raise NotFound(f"model version {name}@{version_id} does not exist")
            kept = tuple(alias for alias in versions[index].aliases if alias not in remove)
            versions[index] = replace(versions[index], aliases=kept)
            return self._assign(name, version_id, list(add))

    def _assign(self, name: str, version_id: str, aliases: list[str]) -> ModelVersion:
        """Give ``version_id`` the ``aliases``, taking each from any other version (lock held)."""
        versions = self._models[name]
        for index, version in enumerate(versions):
            if version.version_id == version_id:
                merged = tuple(dict.fromkeys([*version.aliases, *aliases]))
                versions[index] = replace(version, aliases=merged)
            else:
                versions[index] = replace(
                    version, aliases=tuple(a for a in version.aliases if a not in aliases)
                )
        return next(version for version in versions if version.version_id == version_id)
