"""The behaviour every :class:`shared.ports.objects.Objects` implementation must show.

A concrete module subclasses :class:`ObjectsContract` and provides ``objects`` and ``bucket`` (an existing,
empty bucket per test) and :meth:`inject_unavailable`.
"""

from __future__ import annotations

import uuid

import pytest

from shared.errors import InvalidInput, PermanentError, TransientError
from shared.ports.errors import NotFound, PreconditionFailed
from shared.ports.objects import Objects, move


class ObjectsContract:
    @pytest.fixture
    def objects(self) -> Objects:
        raise NotImplementedError("a concrete contract test overrides the `objects` fixture")

    @pytest.fixture
    def bucket(self, objects: Objects) -> str:
        raise NotImplementedError("a concrete contract test overrides the `bucket` fixture")

    def inject_unavailable(self, objects: Objects, method: str) -> None:
        raise NotImplementedError

    def test_written_bytes_and_text_read_back_with_their_metadata(
        self, objects: Objects, bucket: str
    ) -> None:
        info = objects.write(bucket, "data/a.csv", "f1,label\n1,yes\n", metadata={"source": "contract"})
        raw = objects.write(bucket, "data/b.bin", b"\x00\x01", content_type="application/x-test")

        assert objects.read_text(bucket, "data/a.csv") == "f1,label\n1,yes\n"
        assert objects.read_bytes(bucket, "data/b.bin") == b"\x00\x01"
        assert (info.bucket, info.name, info.size) == (bucket, "data/a.csv", 15)
        assert info.uri == f"gs://{bucket}/data/a.csv"
        assert info.generation > 0 and raw.generation != info.generation
        assert info.content_type.startswith("text/plain")
        stat = objects.stat(bucket, "data/a.csv")
        assert stat is not None
        assert (stat.generation, stat.size, stat.metadata) == (info.generation, 15, {"source": "contract"})
        assert stat.md5_hash and stat.updated is not None
        raw_stat = objects.stat(bucket, "data/b.bin")
        assert raw_stat is not None and raw_stat.content_type == "application/x-test"
        assert objects.read_bytes(bucket, "data/a.csv", generation=info.generation).startswith(b"f1")

    def test_create_only_and_replace_only_preconditions(self, objects: Objects, bucket: str) -> None:
        first = objects.write(bucket, "report.json", "{}", if_generation_match=0)

        with pytest.raises(PreconditionFailed) as raised:
            objects.write(bucket, "report.json", '{"again": 1}', if_generation_match=0)
        assert isinstance(raised.value, PermanentError)
        assert objects.read_text(bucket, "report.json") == "{}"
        second = objects.write(bucket, "report.json", "[1]", if_generation_match=first.generation)
        assert second.generation != first.generation
        with pytest.raises(PreconditionFailed):
            objects.write(bucket, "report.json", "[2]", if_generation_match=first.generation)
        assert objects.read_text(bucket, "report.json") == "[1]"

    def test_missing_objects_and_buckets(self, objects: Objects, bucket: str) -> None:
        assert objects.stat(bucket, "nothing/here") is None
        with pytest.raises(NotFound):
            objects.read_bytes(bucket, "nothing/here")
        with pytest.raises(NotFound):
            objects.read_bytes(f"{bucket}-missing", "x")
        with pytest.raises(NotFound):
            objects.delete(bucket, "nothing/here")

    def test_a_replaced_generation_can_no_longer_be_read(self, objects: Objects, bucket: str) -> None:
        old = objects.write(bucket, "v.txt", "old")
        objects.write(bucket, "v.txt", "new")

        with pytest.raises(NotFound):
            objects.read_bytes(bucket, "v.txt", generation=old.generation)

    def test_text_that_is_not_utf8_is_invalid_input(self, objects: Objects, bucket: str) -> None:
        objects.write(bucket, "latin1.txt", "café".encode("latin-1"))

        with pytest.raises(InvalidInput):
            objects.read_text(bucket, "latin1.txt")
        assert objects.read_text(bucket, "latin1.txt", encoding="latin-1") == "café"

    def test_copy_keeps_the_source_and_its_content_type(self, objects: Objects, bucket: str) -> None:
        source = objects.write(bucket, "in/a.csv", "x,y\n", content_type="text/csv")

        copied = objects.copy(bucket, "in/a.csv", bucket, "out/a.csv", source_generation=source.generation)

        assert (copied.bucket, copied.name, copied.size) == (bucket, "out/a.csv", 4)
        assert copied.content_type == "text/csv"
        assert objects.read_text(bucket, "out/a.csv") == "x,y\n"
        assert objects.stat(bucket, "in/a.csv") is not None
        with pytest.raises(PreconditionFailed):
            objects.copy(bucket, "in/a.csv", bucket, "out/a.csv", if_generation_match=0)

    def test_delete_honours_the_generation(self, objects: Objects, bucket: str) -> None:
        first = objects.write(bucket, "d.txt", "1")
        objects.write(bucket, "d.txt", "2")

        with pytest.raises(PreconditionFailed):
            objects.delete(bucket, "d.txt", if_generation_match=first.generation)
        live = objects.stat(bucket, "d.txt")
        assert live is not None
        objects.delete(bucket, "d.txt", if_generation_match=live.generation)
        assert objects.stat(bucket, "d.txt") is None

    def test_list_by_prefix_in_name_order(self, objects: Objects, bucket: str) -> None:
        for name in ("churn/b.csv", "churn/a.csv", "quarantine/c.csv", "churn/sub/d.csv"):
            objects.write(bucket, name, name)

        assert [i.name for i in objects.list(bucket, "churn/")] == [
            "churn/a.csv",
            "churn/b.csv",
            "churn/sub/d.csv",
        ]
        assert [i.name for i in objects.list(bucket, "churn/", limit=2)] == ["churn/a.csv", "churn/b.csv"]
        assert len(objects.list(bucket)) == 4
        assert objects.list(bucket, "none/") == []

    def test_move_is_safe_to_redo_at_any_point(self, objects: Objects, bucket: str) -> None:
        source = objects.write(bucket, "churn/bad.csv", "bad", content_type="text/csv")

        moved = move(
            objects, bucket, "churn/bad.csv", bucket, "quarantine/churn/bad.csv", generation=source.generation
        )

        assert moved.name == "quarantine/churn/bad.csv"
        assert objects.stat(bucket, "churn/bad.csv") is None
        assert objects.read_text(bucket, "quarantine/churn/bad.csv") == "bad"
        # Redone after it completed (a redelivery): the same end state, no error.
        again = move(
            objects, bucket, "churn/bad.csv", bucket, "quarantine/churn/bad.csv", generation=source.generation
        )
        assert again.name == moved.name and objects.read_text(bucket, again.name) == "bad"

    def test_move_leaves_a_newer_upload_under_the_source_name_alone(
        self, objects: Objects, bucket: str
    ) -> None:
        old = objects.write(bucket, "churn/x.csv", "old")
        objects.copy(bucket, "churn/x.csv", bucket, "quarantine/churn/x.csv")  # crashed after the copy...
        objects.write(bucket, "churn/x.csv", "new")  # ...and a new file arrived under the same name

        move(objects, bucket, "churn/x.csv", bucket, "quarantine/churn/x.csv", generation=old.generation)

        assert objects.read_text(bucket, "churn/x.csv") == "new"
        assert objects.read_text(bucket, "quarantine/churn/x.csv") == "old"

    def test_moving_what_never_existed_is_not_found(self, objects: Objects, bucket: str) -> None:
        with pytest.raises(NotFound):
            move(objects, bucket, "ghost.csv", bucket, "quarantine/ghost.csv", generation=1)

    def test_unavailable_is_transient_and_the_next_call_works(self, objects: Objects, bucket: str) -> None:
        self.inject_unavailable(objects, "write")

        with pytest.raises(TransientError):
            objects.write(bucket, "flaky.txt", "1")
        objects.write(bucket, "flaky.txt", "2")

        assert objects.read_text(bucket, "flaky.txt") == "2"


def unique_bucket() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"
