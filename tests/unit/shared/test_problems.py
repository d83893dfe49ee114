"""The one problem collector: typed reads record ``path: message`` and carry on; all raise at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import InvalidInput
from shared.problems import MAX_PROBLEMS, Problems, shown, to_int64

pytestmark = pytest.mark.unit


def invalid(items: list[str]) -> InvalidInput:
    return InvalidInput("thing", items)


def test_every_problem_is_collected_with_its_dotted_and_indexed_path() -> None:
    problems = Problems()
    root = problems.reader(
        {
            "name": "",
            "count": "12",
            "nested": {"flag": "yes", "when": "yesterday"},
            "items": [{"id": 1}, "not an object", {"id": {"no": 1}}],
        }
    )
    assert root.string("name", "", required=True) == ""
    assert root.integer("count", 0) == 0  # a literal integer is expected here, text is not accepted
    nested = root.child("nested")
    assert nested.boolean("flag", False) is False
    assert nested.timestamp("when") is None
    assert [item.string("id", "") for item in root.items("items")] == ["1", "", ""]
    with pytest.raises(InvalidInput) as caught:
        problems.raise_if_any(invalid)
    assert caught.value.problems == [
        "name: required",
        "count: must be an integer, got '12'",
        "nested.flag: must be true or false, got 'yes'",
        "nested.when: not an RFC 3339 timestamp or epoch seconds: 'yesterday'",
        "items[1]: must be an object, got str",
        "items[2].id: must be a string, got dict",
    ]


def test_nothing_recorded_raises_nothing() -> None:
    problems = Problems()
    reader = problems.reader({"a": "x", "n": "9007199254740993", "t": "2026-11-22T10:00:00.123456789Z"})
    assert reader.string("a", required=True) == "x"
    assert reader.int64("n", required=True) == 9007199254740993  # int64 as a string keeps full precision
    assert reader.timestamp("t") == datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    problems.raise_if_any(invalid)
    assert len(problems) == 0


def test_the_whole_input_not_being_a_mapping_is_named_by_the_root() -> None:
    events, config = Problems(), Problems(mapping_word="mapping", root="(document)")
    events.reader([1, 2])
    config.reader("text")
    assert events.listing() == ["(payload): must be an object, got list"]
    assert config.listing() == ["(document): must be a mapping, got str"]


def test_size_limits_name_the_field_and_the_limit() -> None:
    problems = Problems()
    reader = problems.reader({"id": "é" * 300, "labels": {"k" * 70: "v", "ok": "x" * 200}, "list": [1] * 11})
    assert reader.string("id", "", max_bytes=512) == ""
    labels = reader.string_map("labels", max_key_bytes=128, max_value_bytes=128, max_chars=63)
    assert labels["ok"] == "x" * 200  # reported, not dropped silently: the caller decides from the problems
    assert reader.sequence("list", max_items=10) == []
    assert problems.listing() == [
        "id: must be at most 512 bytes, got 600",
        f"labels.{'k' * 70}: key must be at most 63 characters, got 70",
        "labels.ok: value must be at most 128 bytes, got 200",
        "labels.ok: value must be at most 63 characters, got 200",
        "list: at most 10 items, got 11",
    ]


def test_string_map_entries_and_number_limits() -> None:
    problems = Problems()
    reader = problems.reader({"m": {f"k{i}": str(i) for i in range(5)}, "x": float("nan"), "y": 5})
    assert reader.string_map("m", max_entries=4) == {}
    assert reader.number("x", 1.0) == 1.0
    assert reader.number("y", 1.0, maximum=4) == 5.0
    assert problems.listing() == [
        "m: at most 4 entries, got 5",
        "x: must be a finite number, got nan",
        "y: must be at most 4, got 5",
    ]


def test_problems_are_capped_and_the_rest_counted() -> None:
    problems = Problems()
    reader = problems.reader({"items": [{}] * (MAX_PROBLEMS + 50)})
    for item in reader.items("items"):
        item.string("id", required=True)
    listing = problems.listing()
    assert len(listing) == MAX_PROBLEMS + 1
    assert listing[-1] == "... and 50 more problem(s)"
    assert listing[0] == "items[0].id: required"
    assert len(problems) == MAX_PROBLEMS + 50


def test_convert_turns_a_value_error_into_the_problem() -> None:
    def even(value: Any) -> int:
        if not isinstance(value, int) or value % 2:
            raise ValueError(f"must be even, got {value!r}")
        return value

    problems = Problems()
    reader = problems.reader({"a": 3, "b": 4})
    assert reader.convert("a", even, 0) == 0
    assert reader.convert("b", even, 0) == 4
    assert reader.convert("absent", even, 2) == 2  # the default goes through the same rule
    assert problems.listing() == ["a: must be even, got 3"]


def test_shown_values_stay_short_whatever_they_are() -> None:
    assert shown("abc") == "'abc'"
    assert shown([1]) == "[1]"
    assert len(shown("x" * 1_000_000)) < 80
    assert len(shown(list(range(1_000_000)))) < 80
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    assert len(shown(deep)) < 80  # no recursion through the whole structure


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), (" -7 ", -7), (12.0, 12), (2**63 - 1, 2**63 - 1), ("-9223372036854775808", -(2**63))],
)
def test_int64_accepts_what_google_sends(value: Any, expected: int) -> None:
    assert to_int64(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        1.5,
        float("nan"),
        float("inf"),
        1e300,
        2**63,
        "9" * 21,
        "9" * 5000,
        "1_000",
        "١٢",
        "0x10",
        None,
        [1],
    ],
)
def test_int64_refuses_everything_else_with_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match="integer"):
        to_int64(value)
