"""validate(): every failed check with its column, rows and count, on CSV, JSONL and gzip objects."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.validation import CHECKS, DataSchema, Limits, Report, parse_schema, validate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]


def _schema(columns: list[dict[str, Any]], **spec: Any) -> DataSchema:
    return parse_schema(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "DataSchema",
            "metadata": {"name": "t"},
            "spec": {"columns": columns, **spec},
        }
    )


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _found(report: Report) -> list[tuple[str, str | None, tuple[int, ...]]]:
    return [(failure.check, failure.column, failure.rows) for failure in report.failures]


def _corrupt(text: str, edits: dict[tuple[int, int], str]) -> bytes:
    """The CSV with cell (data row, column index) replaced; data row 1 is the first line after the header."""
    lines = [line.split(",") for line in text.splitlines()]
    for (row, column), value in edits.items():
        lines[row][column] = value
    return ("\n".join(",".join(cells) for cells in lines) + "\n").encode()


def test_the_churn_sample_is_valid(make_csv: Callable[..., str], churn: DataSchema) -> None:
    report = validate(make_csv(400).encode(), "churn/part-1.csv", churn)
    assert report.valid, report.summary()
    assert (report.rows, report.format, report.columns) == (400, "csv", ("f1", "f2", "f3", "f4", "label"))
    assert json.loads(report.to_json())["valid"] is True


def test_every_failed_check_is_listed_with_column_rows_and_values(
    make_csv: Callable[..., str], churn: DataSchema
) -> None:
    # columns: f1 f2 f3 f4 label
    data = _corrupt(
        make_csv(400),
        {
            (3, 0): "abc",  # not a number
            (5, 1): "12.5",  # above 10
            (7, 2): "-11",  # below -10
            (9, 3): "",  # empty
            (11, 4): "maybe",  # not allowed
            (13, 4): "",  # empty
            (15, 1): "10.5",  # above 10 again: one failure, two rows
        },
    )
    report = validate(data, "churn/bad.csv", churn)
    assert not report.valid
    assert _found(report) == [
        ("type", "f1", (3,)),
        ("max", "f2", (5, 15)),
        ("min", "f3", (7,)),
        ("nullable", "f4", (9,)),
        ("nullable", "label", (13,)),
        ("allowed", "label", (11,)),
    ]
    by_check = {(failure.check, failure.column): failure for failure in report.failures}
    assert by_check["type", "f1"].values == ("abc",)
    assert by_check["max", "f2"].values == (12.5, 10.5)
    assert by_check["max", "f2"].count == 2
    assert by_check["max", "f2"].message == "2 value(s) above 10"
    assert by_check["allowed", "label"].values == ("maybe",)
    assert by_check["nullable", "f4"].values == (None,)
    assert all(failure.check in CHECKS for failure in report.failures)

    document = json.loads(report.to_json())
    assert document["failureCount"] == 6
    assert document["failures"][1] == {
        "check": "max",
        "column": "f2",
        "message": "2 value(s) above 10",
        "count": 2,
        "rows": [5, 15],
        "values": [12.5, 10.5],
    }
    summary = report.summary()
    assert summary.splitlines()[0] == "churn/bad.csv: 6 failed check(s) against schema churn"
    assert "- f2: max: 2 value(s) above 10 (rows 5, 15)" in summary


def test_a_column_with_an_unreadable_value_still_has_its_other_checks(churn: DataSchema) -> None:
    rows = ["f1,f2,f3,f4,label", *["1,2,3,4,yes"] * 25]
    rows[2] = "oops,2,3,4,no"  # row 2: unreadable f1
    rows[4] = "99,2,3,4,no"  # row 4: f1 above 10, still found
    report = validate(_csv(*rows), "x.csv", churn)
    assert _found(report) == [("type", "f1", (2,)), ("max", "f1", (4,))]
    # The unreadable cell is blanked for the second pass but not reported again as empty.
    assert not any(failure.check == "nullable" for failure in report.failures)


def test_row_count_bounds(make_csv: Callable[..., str], churn: DataSchema) -> None:
    few = validate(make_csv(10).encode(), "few.csv", churn)
    assert _found(few) == [("rows.min", None, ())]
    assert few.failures[0].message == "10 row(s), at least 20 required"
    header_only = validate(b"f1,f2,f3,f4,label\n", "empty.csv", churn)
    assert (header_only.rows, _found(header_only)) == (0, [("rows.min", None, ())])
    capped = _schema([{"name": "a", "type": "integer"}], rows={"max": 2})
    assert _found(validate(_csv("a", "1", "2", "3"), "x.csv", capped)) == [("rows.max", None, ())]


def test_missing_and_unexpected_columns(make_csv: Callable[..., str], churn: DataSchema) -> None:
    text = make_csv(30)
    without_f4 = "\n".join(",".join(line.split(",")[:3] + line.split(",")[4:]) for line in text.splitlines())
    report = validate((without_f4 + "\n").encode(), "x.csv", churn)
    assert _found(report) == [("columns.missing", "f4", ())]
    assert report.failures[0].message == "required column 'f4' is absent"

    extra = "\n".join(
        line + (",extra" if index == 0 else ",1") for index, line in enumerate(text.splitlines())
    )
    report = validate((extra + "\n").encode(), "x.csv", churn)
    assert _found(report) == [("columns.unexpected", "extra", ())]
    allowing = _schema([{"name": "f1", "type": "number"}], extraColumns="allow")
    assert validate((extra + "\n").encode(), "x.csv", allowing).valid

    optional = _schema([{"name": "a", "type": "integer"}, {"name": "b", "type": "string", "required": False}])
    assert validate(_csv("a", "1"), "x.csv", optional).valid


def test_a_header_naming_a_column_twice_is_refused(churn: DataSchema) -> None:
    report = validate(_csv("f1,f1,f2,f3,f4,label", "1,1,2,3,4,yes"), "x.csv", churn)
    assert _found(report) == [("columns.duplicate", "f1", ())]
    assert report.rows is None


def test_unique_columns_and_keys_list_every_repeating_row() -> None:
    schema = _schema(
        [
            {"name": "id", "type": "integer", "unique": True},
            {"name": "store", "type": "string"},
            {"name": "day", "type": "integer"},
        ],
        keys=[["store", "day"]],
    )
    report = validate(_csv("id,store,day", "1,a,1", "2,a,2", "2,b,1", "3,a,1", "4,b,2"), "x.csv", schema)
    assert _found(report) == [("unique", "id", (2, 3)), ("key", "store, day", (1, 4))]
    key = report.failures[1]
    assert key.values == (["a", 1], ["a", 1])  # typed, as the key's columns read
    assert key.message == "2 row(s) repeat the key (store, day)"


def test_completeness_pattern_booleans_integers_and_datetimes() -> None:
    schema = _schema(
        [
            {"name": "note", "type": "string", "nullable": True, "maxNullFraction": 0.25},
            {"name": "code", "type": "string", "pattern": "^[A-Z]{3}$"},
            {"name": "ok", "type": "boolean"},
            {"name": "n", "type": "integer", "min": 0},
            {"name": "at", "type": "datetime"},
        ]
    )
    good = validate(
        _csv(
            "note,code,ok,n,at",
            "x,ABC,true,1,2026-11-30T10:00:00Z",
            "y,DEF,FALSE,2,2026-11-30",
            "z,GHI,1,3,2026-11-30T10:00:00+02:00",
            ",JKL,0,4,2026-12-01T00:00:00Z",
        ),
        "x.csv",
        schema,
    )
    assert good.valid, good.summary()
    bad = validate(
        _csv(
            "note,code,ok,n,at",
            ",abc,maybe,1.5,yesterday",
            ",DEF,true,-1,2026-11-30",
            "z,GHIJ,false,2,2026-11-30",
        ),
        "x.csv",
        schema,
    )
    assert _found(bad) == [
        ("completeness", "note", ()),
        ("pattern", "code", (1, 3)),
        ("type", "ok", (1,)),
        ("type", "n", (1,)),
        ("min", "n", (2,)),
        ("type", "at", (1,)),
    ]
    assert bad.failures[0].message == "66.7% of the values are empty or unreadable, at most 25.0% allowed"
    assert bad.failures[2].message == "1 value(s) are not a boolean"


def test_jsonl_objects_keep_json_types_and_report_line_numbers(churn: DataSchema) -> None:
    lines = [json.dumps({"f1": 1.5, "f2": 0, "f3": -2, "f4": 3, "label": "yes"})] * 25
    text = "\n".join(lines) + "\n"
    assert validate(text.encode(), "x.jsonl", churn).valid
    assert validate(gzip.compress(text.encode()), "x.ndjson.gz", churn).valid

    lines[4] = json.dumps({"f1": "1.5", "f2": 0, "f3": -2, "f4": 3, "label": "yes"})  # a string, not a number
    lines[6] = json.dumps({"f1": 1, "f2": True, "f3": -2, "f4": 3, "label": 1})  # a boolean and a number
    lines[8] = json.dumps({"f1": 1, "f2": 0, "f3": -2, "f4": None, "label": "no"})
    # A blank line 4 moves every later record one line down.
    text = "\n".join([*lines[:3], "", *lines[3:]]) + "\n"
    report = validate(text.encode(), "x.jsonl", churn)
    assert _found(report) == [
        ("type", "f1", (6,)),
        ("type", "f2", (8,)),
        ("nullable", "f4", (10,)),
        ("type", "label", (8,)),
    ]


def test_unreadable_jsonl_lines_are_all_listed(churn: DataSchema) -> None:
    good = json.dumps({"f1": 1, "f2": 0, "f3": -2, "f4": 3, "label": "yes"})
    report = validate(f"{good}\n{{broken\n[1, 2]\n{good}\n".encode(), "x.jsonl", churn)
    assert _found(report) == [("format", None, (2, 3))]
    assert report.failures[0].count == 2
    assert report.failures[0].values[1] == "a JSON list, not an object"
    assert _found(validate(b"\n\n", "x.jsonl", churn)) == [("format", None, ())]


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"", "x.csv", "empty: a CSV object needs a header line"),
        (b"f1,label\n\xff\xfe,yes\n", "x.csv", "not UTF-8 text: invalid start byte at byte 9"),
        (b"\xff\xfef1,label\n", "x.csv", "not UTF-8 text"),
        (b"f1,f2\n1,2,3,4\n", "x.csv", "not readable as CSV: row 1 has 4 fields, the header 2"),
        (b"f1,f2\n1,2\n1,2,3\n", "x.csv", "not readable as CSV: Error tokenizing data. C error: Expected 2"),
        (b"not gzip", "x.csv.gz", "not a readable gzip file"),
        (b"f1\n1\n", "x.parquet", "cannot tell the format of 'x.parquet'"),
    ],
)
def test_unreadable_objects_fail_the_format_check(
    data: bytes, name: str, expected: str, churn: DataSchema
) -> None:
    report = validate(data, name, churn)
    assert [failure.check for failure in report.failures] == ["format"]
    assert expected in report.failures[0].message


def test_the_schema_format_wins_over_the_name(make_csv: Callable[..., str]) -> None:
    schema = _schema([{"name": "f1", "type": "number"}], format="csv", extraColumns="allow")
    assert validate(make_csv(30).encode(), "export.txt", schema).valid


def test_size_bounds_stop_before_parsing(make_csv: Callable[..., str], churn: DataSchema) -> None:
    data = make_csv(400).encode()
    report = validate(data, "big.csv", churn, Limits(max_bytes=1000))
    assert _found(report) == [("size", None, ())]
    assert report.rows is None
    assert report.failures[0].message == f"{len(data)} bytes, at most 1000 are checked"
    bomb = gzip.compress(b"f1\n" + b"1\n" * 100_000)
    assert len(bomb) < 1000
    report = validate(bomb, "bomb.csv.gz", churn, Limits(max_bytes=1000))
    assert report.failures[0].message == "decompresses to more than 1000 bytes"
    report = validate(data, "many.csv", churn, Limits(max_rows=100))
    assert report.failures[0].message == "more than 100 rows are not checked"
    report = validate(b"a,b,c\n1,2,3\n", "wide.csv", churn, Limits(max_columns=2))
    assert report.failures[0].message == "3 columns, at most 2 are checked"
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        Limits(max_bytes=0)


def test_reports_stay_bounded_but_keep_the_true_counts(churn: DataSchema) -> None:
    rows = ["f1,f2,f3,f4,label", *["50,2,3,4,yes"] * 100]
    report = validate(_csv(*rows), "x.csv", churn, Limits(rows_per_failure=5))
    assert _found(report) == [("max", "f1", (1, 2, 3, 4, 5))]
    assert report.failures[0].count == 100
    assert report.summary().endswith("(rows 1, 2, 3, 4, 5, …)")

    every_column_bad = ["f1,f2,f3,f4,label", *["50,50,50,50,maybe"] * 3]
    report = validate(_csv(*every_column_bad), "x.csv", churn, Limits(max_failures=2))
    assert len(report.failures) == 2
    assert report.omitted_failures == 4  # f3 and f4 max, label allowed, rows.min
    assert json.loads(report.to_json())["failureCount"] == 6


def test_importing_the_package_does_not_import_pandas() -> None:
    code = "import sys, shared.validation; print('pandas' in sys.modules, 'pandera' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
