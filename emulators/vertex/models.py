"""The Vertex AI Model Registry (ModelService): models, versions and version aliases.

UploadModel creates a model (version 1, alias ``default``) or, with ``parent_model``, its next version; the
operation is done at once (``UploadModelResponse`` with ``model`` and ``model_version_id``;
``UploadModelOperationMetadata`` with its ``generic_metadata``). GetModel takes ``models/ID`` (the default
version), ``models/ID@VERSION`` or ``models/ID@ALIAS``. ListModels lists default versions; ListModelVersions
all versions of one model; MergeVersionAliases adds (``alias``) and removes (``-alias``) aliases, an alias
naming at most one version of a model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from google.cloud.aiplatform_v1.services.model_service.transports.rest_base import (
    _BaseModelServiceRestTransport,
)
from google.cloud.aiplatform_v1.types import model as model_types
from google.cloud.aiplatform_v1.types import model_service
from google.cloud.aiplatform_v1.types import operation as vertex_operation
from google.longrunning import operations_pb2

from emulators.apiserver.errors import already_exists, invalid, not_found
from emulators.apiserver.filtering import compile_filter
from emulators.apiserver.messages import to_dict
from emulators.apiserver.operations import operation
from emulators.apiserver.paging import page
from emulators.apiserver.routing import rest_rules
from emulators.apiserver.server import ApiServer
from emulators.vertex.common import now, numeric_id, parse_parent, validate_labels

SERVICE = "google.cloud.aiplatform.v1.ModelService"
_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass
class ModelEntry:
    name: str  # projects/P/locations/L/models/ID
    versions: list[model_types.Model] = field(default_factory=list)

    def version(self, ref: str) -> model_types.Model:
        for version in self.versions:
            if version.version_id == ref or ref in version.version_aliases:
                return version
        raise not_found(f"Model {self.name}@{ref} does not exist.")

    @property
    def default(self) -> model_types.Model:
        return self.version("default")


def _copy(model: model_types.Model) -> model_types.Model:
    copied: model_types.Model = model_types.Model.deserialize(model_types.Model.serialize(model))
    return copied


class ModelRegistryService:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._lock = threading.RLock()
        self._models: dict[str, ModelEntry] = {}
        base = _BaseModelServiceRestTransport
        handlers: list[tuple[str, type, type, Any]] = [
            ("UploadModel", model_service.UploadModelRequest, operations_pb2.Operation, self.upload_model),
            ("GetModel", model_service.GetModelRequest, model_types.Model, self.get_model),
            (
                "ListModels",
                model_service.ListModelsRequest,
                model_service.ListModelsResponse,
                self.list_models,
            ),
            (
                "ListModelVersions",
                model_service.ListModelVersionsRequest,
                model_service.ListModelVersionsResponse,
                self.list_model_versions,
            ),
            (
                "MergeVersionAliases",
                model_service.MergeVersionAliasesRequest,
                model_types.Model,
                self.merge_version_aliases,
            ),
        ]
        for name, request_type, response_type, handler in handlers:
            server.add_method(SERVICE, name, request_type, response_type, handler, rest_rules(base, name))
        server.add_unimplemented(SERVICE, base, {name for name, *_ in handlers}, "Vertex AI")
        server.on_reset(self.reset)

    def reset(self) -> None:
        with self._lock:
            self._models.clear()

    def _split(self, name: str) -> tuple[ModelEntry, str]:
        """``projects/P/locations/L/models/ID[@REF]`` → (entry, REF or "default")."""
        parts = name.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "models":
            raise invalid(f"Invalid model name {name!r}: expected projects/P/locations/L/models/ID[@VERSION]")
        model_id, _, ref = parts[5].partition("@")
        base = "/".join([*parts[:5], model_id])
        with self._lock:
            entry = self._models.get(base)
        if entry is None:
            raise not_found(f"Model {base} does not exist.")
        return entry, ref or "default"

    def upload_model(self, request: model_service.UploadModelRequest) -> operations_pb2.Operation:
        project, location = parse_parent(request.parent)
        requested = request.model
        if not requested.display_name:
            raise invalid("Model.display_name must be set.")
        validate_labels(dict(requested.labels), "Model.labels")
        for alias in requested.version_aliases:
            _check_alias(alias)
        moment = now()
        with self._lock:
            if request.parent_model:
                if request.model_id:
                    raise invalid("model_id cannot be set together with parent_model.")
                entry, _ = self._split(request.parent_model)
                if not entry.name.startswith(f"{request.parent}/"):
                    raise invalid(f"parent_model {request.parent_model} is not in {request.parent}.")
            else:
                model_id = request.model_id or numeric_id()
                if not _MODEL_ID.fullmatch(model_id):
                    raise invalid(f"model_id {model_id!r} must match [a-z0-9][a-z0-9-]{{0,62}}.")
                name = f"projects/{project}/locations/{location}/models/{model_id}"
                if name in self._models:
                    raise already_exists(f"Model {name} already exists.")
                entry = ModelEntry(name=name)
                self._models[name] = entry
            version = _copy(requested)
            version.name = entry.name
            version.version_id = str(len(entry.versions) + 1)
            version.version_create_time = moment
            version.version_update_time = moment
            version.create_time = entry.versions[0].create_time if entry.versions else moment
            version.update_time = moment
            aliases = list(dict.fromkeys(version.version_aliases))
            if not entry.versions and "default" not in aliases:
                aliases.insert(0, "default")
            version.version_aliases[:] = []
            entry.versions.append(version)
            _assign_aliases(entry, version, aliases)
            response = model_service.UploadModelResponse(
                model=entry.name, model_version_id=version.version_id
            )
        metadata = model_service.UploadModelOperationMetadata(
            generic_metadata=vertex_operation.GenericOperationMetadata(create_time=moment, update_time=now())
        )
        op_name = f"{entry.name}/operations/{numeric_id()}"
        done = operation(op_name, metadata=metadata, done=True, response=response)
        return self.server.operations.add(op_name, lambda: done)

    def get_model(self, request: model_service.GetModelRequest) -> model_types.Model:
        entry, ref = self._split(request.name)
        with self._lock:
            return _copy(entry.version(ref))

    def list_models(self, request: model_service.ListModelsRequest) -> model_service.ListModelsResponse:
        parse_parent(request.parent)
        predicate = compile_filter(request.filter)
        with self._lock:
            defaults = [
                _copy(entry.default)
                for name, entry in self._models.items()
                if name.startswith(f"{request.parent}/")
            ]
        defaults.sort(key=lambda model: (model.create_time, model.name), reverse=True)
        matching = [model for model in defaults if predicate(to_dict(model, proto_names=True))]
        items, token = page(matching, request.page_size, request.page_token, default_size=100)
        return model_service.ListModelsResponse(models=items, next_page_token=token)

    def list_model_versions(
        self, request: model_service.ListModelVersionsRequest
    ) -> model_service.ListModelVersionsResponse:
        entry, ref = self._split(request.name)
        if ref != "default":
            raise invalid("ListModelVersions takes a model name without a version.")
        predicate = compile_filter(request.filter)
        with self._lock:
            versions = [_copy(version) for version in entry.versions]
        matching = [model for model in versions if predicate(to_dict(model, proto_names=True))]
        items, token = page(matching, request.page_size, request.page_token, default_size=100)
        return model_service.ListModelVersionsResponse(models=items, next_page_token=token)

    def merge_version_aliases(self, request: model_service.MergeVersionAliasesRequest) -> model_types.Model:
        if "@" not in request.name:
            raise invalid(
                "MergeVersionAliases needs a model version name: projects/P/locations/L/models/ID@VERSION"
            )
        if not request.version_aliases:
            raise invalid("version_aliases must not be empty.")
        entry, ref = self._split(request.name)
        with self._lock:
            version = entry.version(ref)
            additions: list[str] = []
            for alias in request.version_aliases:
                if alias.startswith("-"):
                    name = alias[1:]
                    _check_alias(name)
                    if name == "default":
                        raise invalid(
                            "The default alias cannot be removed; assign it to another version instead."
                        )
                    if name in version.version_aliases:
                        version.version_aliases[:] = [
                            item for item in version.version_aliases if item != name
                        ]
                else:
                    _check_alias(alias)
                    additions.append(alias)
            _assign_aliases(entry, version, additions)
            version.version_update_time = now()
            return _copy(version)


def _check_alias(alias: str) -> None:
    if not _ALIAS.fullmatch(alias) or alias.isdigit():
        raise invalid(
            f"Invalid version alias {alias!r}: it must match [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9] "
            "and not be a number."
        )


def _assign_aliases(entry: ModelEntry, version: model_types.Model, aliases: list[str]) -> None:
    """Give ``version`` the ``aliases``, taking each away from any other version of the model."""
    for alias in aliases:
        for other in entry.versions:
            if other is not version and alias in other.version_aliases:
                other.version_aliases[:] = [item for item in other.version_aliases if item != alias]
        if alias not in version.version_aliases:
            version.version_aliases.append(alias)
