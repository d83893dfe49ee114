"""The ``Objects`` contract against the in-memory fake, and the gs:// URI parsing."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput, TransientError
from shared.ports.objects import Objects, parse_uri
from shared.ports.objects_fake import FakeObjects
from tests.contract.objects import ObjectsContract, unique_bucket

pytestmark = pytest.mark.unit


class TestFakeObjects(ObjectsContract):
    @pytest.fixture
    def objects(self) -> Objects:
        return FakeObjects()

    @pytest.fixture
    def bucket(self, objects: Objects) -> str:
        assert isinstance(objects, FakeObjects)
        name = unique_bucket()
        objects.add_bucket(name)
        return name

    def inject_unavailable(self, objects: Objects, method: str) -> None:
        assert isinstance(objects, FakeObjects)
        objects.faults.fail_next(method, TransientError("UNAVAILABLE (injected)"))


def test_parse_uri_splits_a_gs_uri_and_refuses_anything_else() -> None:
    assert parse_uri("gs://b/a/b.csv") == ("b", "a/b.csv")
    for bad in ("s3://b/x", "gs://b", "gs:///x"):
        with pytest.raises(InvalidInput):
            parse_uri(bad)
