"""The behaviour every :class:`shared.ports.registry.ModelRegistry` implementation must show.

A concrete module subclasses :class:`ModelRegistryContract` and provides ``registry`` and
:meth:`inject_unavailable`. Every test uses its own model id, so a shared server needs no reset.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from shared.errors import InvalidInput, TransientError
from shared.ports.registry import ModelRegistry, ModelUpload


def upload(model_id: str, run: str, **changes: Any) -> ModelUpload:
    base = ModelUpload(
        model_id=model_id,
        display_name="churn",
        artifact_uri=f"gs://contract-models/{run}/model/",
        labels={"run-id": run, "cause": "push"},
        aliases=("candidate",),
    )
    return replace(base, **changes)


class ModelRegistryContract:
    @pytest.fixture
    def registry(self) -> ModelRegistry:
        raise NotImplementedError("a concrete contract test overrides the `registry` fixture")

    @pytest.fixture
    def model_id(self) -> str:
        return f"m{uuid.uuid4().hex[:12]}"

    def inject_unavailable(self, registry: ModelRegistry, method: str) -> None:
        raise NotImplementedError

    def test_the_first_upload_creates_version_1_with_the_default_alias(
        self, registry: ModelRegistry, model_id: str
    ) -> None:
        version = registry.upload(
            upload(
                model_id,
                "run-1",
                serving_image="us-docker.pkg.dev/p/r/server:1",
                description="first",
                metadata={"metrics": {"accuracy": 0.91, "rows": 400}, "data": ["gs://d/a.csv"]},
            )
        )

        assert version.version_id == "1"
        assert version.model.endswith(f"/models/{model_id}") and version.model_id == model_id
        assert version.resource_name == f"{version.model}@1"
        assert set(version.aliases) == {"default", "candidate"}
        assert version.labels == {"run-id": "run-1", "cause": "push"}
        assert version.artifact_uri == "gs://contract-models/run-1/model/"
        assert version.serving_image == "us-docker.pkg.dev/p/r/server:1"
        assert version.description == "first"
        # JSON numbers come back as floats (a protobuf Value), and they compare equal to what was sent.
        assert version.metadata == {"metrics": {"accuracy": 0.91, "rows": 400.0}, "data": ["gs://d/a.csv"]}
        assert version.create_time is not None

    def test_a_later_upload_is_the_next_version_and_takes_the_alias_over(
        self, registry: ModelRegistry, model_id: str
    ) -> None:
        registry.upload(upload(model_id, "run-1"))

        second = registry.upload(upload(model_id, "run-2"))

        assert second.version_id == "2"
        assert second.aliases == ("candidate",)
        first = registry.get_version(model_id, "1")
        assert first is not None and first.aliases == ("default",)

    def test_a_version_is_found_by_alias_id_or_full_name_and_a_miss_is_none(
        self, registry: ModelRegistry, model_id: str
    ) -> None:
        first = registry.upload(upload(model_id, "run-1"))
        registry.upload(upload(model_id, "run-2"))

        assert registry.get_version(model_id, "champion") is None
        registry.merge_aliases(model_id, "1", add=["champion"])
        champion = registry.get_version(model_id, "champion")
        assert champion is not None and champion.version_id == "1"
        by_id = registry.get_version(model_id, "2")
        assert by_id is not None and by_id.labels["run-id"] == "run-2"
        by_name = registry.get_version(first.model)  # a hand-registered model is addressed by its name
        assert by_name is not None and by_name.version_id == "1"
        assert registry.get_version(model_id, "99") is None
        assert registry.get_version(f"{model_id}-missing") is None

    def test_merging_moves_an_alias_and_removes_another(self, registry: ModelRegistry, model_id: str) -> None:
        registry.upload(upload(model_id, "run-1"))
        registry.upload(upload(model_id, "run-2"))
        registry.merge_aliases(model_id, "1", add=["champion"])

        promoted = registry.merge_aliases(model_id, "2", add=["champion"], remove=["candidate"])

        assert set(promoted.aliases) == {"champion"}
        old = registry.get_version(model_id, "1")
        assert old is not None and old.aliases == ("default",)
        again = registry.merge_aliases(model_id, "2", add=["champion"])  # the same merge twice: no change
        assert set(again.aliases) == {"champion"}

    def test_versions_are_listed_oldest_first_and_found_by_labels(
        self, registry: ModelRegistry, model_id: str
    ) -> None:
        for run in ("run-1", "run-2", "run-3"):
            registry.upload(upload(model_id, run))

        assert [v.version_id for v in registry.list_versions(model_id)] == ["1", "2", "3"]
        assert [v.version_id for v in registry.find_versions(model_id, {"run-id": "run-2"})] == ["2"]
        assert [v.version_id for v in registry.find_versions(model_id, {"cause": "push"})] == ["1", "2", "3"]
        assert registry.find_versions(model_id, {"run-id": "run-9"}) == []
        assert registry.list_versions(f"{model_id}-missing") == []

    def test_refusals_name_every_problem(self, registry: ModelRegistry, model_id: str) -> None:
        with pytest.raises(InvalidInput) as raised:
            registry.upload(upload(model_id, "run-1", aliases=("1", "Bad_Alias"), labels={"Key": "v"}))
        assert len(raised.value.problems) == 3
        assert registry.list_versions(model_id) == []

        registry.upload(upload(model_id, "run-1"))
        with pytest.raises(InvalidInput):
            registry.merge_aliases(model_id, "1", remove=["default"])

    def test_unavailable_is_transient_and_the_next_call_works(
        self, registry: ModelRegistry, model_id: str
    ) -> None:
        self.inject_unavailable(registry, "upload")

        with pytest.raises(TransientError):
            registry.upload(upload(model_id, "run-1"))
        version = registry.upload(upload(model_id, "run-1"))

        assert version.version_id == "1"
