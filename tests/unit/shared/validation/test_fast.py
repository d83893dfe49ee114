"""The plain-Python answer for valid objects (shared.validation.fast) agrees with the pandera engine.

The property: whenever the fast path says "valid", pandera finds no failure and the reports are equal. It is
checked on generated schemas and tables whose values mix canonical spellings with the ones pandas reads its
own way (signs, spaces, exponents, NaN, offsets, quotes). The fast path must also actually answer the common
case, or it would be a slow no-op that passes the property trivially.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.validation import DEFAULT_LIMITS, DataSchema, Limits, engine, fast, parse_schema, validate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]

TYPES = ("string", "integer", "number", "boolean", "datetime")
#: per type: text values pandas reads as that type, and text it reads differently or not at all
TEXT_VALUES = {
    "string": ["a", "yes", "no", "x y", "ÿ", "1", " a", "a "],
    "integer": ["0", "7", "-3", "007", "+5", " 4", "4 ", "1.0", "1e3", "9223372036854775808", "x", "nan"],
    "number": [
        "0.5",
        "-2.25",
        "3",
        ".5",
        "5.",
        "1e3",
        "-1E-2",
        " 1",
        "+1",
        "nan",
        "inf",
        "1e999",
        "1,5",
        "x",
    ],
    "boolean": ["true", "false", "True", "FALSE", "1", "0", " true", "yes", "t", "2"],
    "datetime": [
        "2024-01-02",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.123+02:00",
        "2024-01-02 03:04",
        "2024-13-02",
        "2024-01-02T03:04:05+0200",
        "1500-01-01",
        "02/01/2024",
        "now",
    ],
}
JSON_VALUES: dict[str, list[Any]] = {
    "string": ["a", "yes", "no", "1", 1, True, None],
    "integer": [0, 7, -3, 2.0, 2.5, 2**63, True, "4", None],
    "number": [0.5, -2.25, 3, 2**60, True, "1.5", None],
    "boolean": [True, False, 1, 0, "true", None],
    "datetime": ["2024-01-02T03:04:05Z", "2024-01-02", "2024-13-02", 5, None],
}


@st.composite
def column_specs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    spec: dict[str, Any] = {"name": name, "type": kind}
    if draw(st.booleans()):
        spec["nullable"] = True
        if draw(st.booleans()):
            spec["maxNullFraction"] = draw(st.sampled_from([0.0, 0.25, 0.5]))
    if draw(st.integers(0, 5)) == 0:
        spec["required"] = False
    if kind in ("integer", "number") and draw(st.booleans()):
        spec["min"], spec["max"] = draw(st.sampled_from([(-5, 10), (0, 5), (-3, 3)]))
    if kind == "string" and draw(st.booleans()):
        spec["allowed"] = draw(st.sampled_from([["a", "yes", "no"], ["yes", "no"], ["a", "1"]]))
    if kind == "integer" and draw(st.integers(0, 3)) == 0:
        spec["allowed"] = [0, 7, -3, 2]
    if kind == "string" and draw(st.integers(0, 3)) == 0:
        spec["pattern"] = draw(st.sampled_from(["^[a-z]", "^[a-z ]*$", "y"]))
    if draw(st.integers(0, 4)) == 0:
        spec["unique"] = True
    return spec


@st.composite
def cases(draw: st.DrawFn, json_lines: bool) -> tuple[DataSchema, bytes, str]:
    count = draw(st.integers(1, 4))
    names = [f"c{index}" for index in range(count)]
    columns = [draw(column_specs(name)) for name in names]
    spec: dict[str, Any] = {"columns": columns}
    if draw(st.booleans()):
        spec["extraColumns"] = "allow"
    if draw(st.integers(0, 3)) == 0:
        spec["rows"] = {"min": draw(st.integers(0, 3)), "max": draw(st.integers(3, 8))}
    if draw(st.integers(0, 4)) == 0:
        spec["keys"] = [names[: draw(st.integers(1, count))]]
    schema = parse_schema(
        {"apiVersion": "mlops.dev/v1", "kind": "DataSchema", "metadata": {"name": "g"}, "spec": spec}
    )
    present = [column for column in columns if column.get("required", True) or draw(st.booleans())]
    if draw(st.integers(0, 5)) == 0:
        present.append({"name": "extra", "type": "string"})
    order = draw(st.permutations(present))
    rows = draw(st.integers(0, 7))
    canonical = draw(st.booleans())  # half the tables use only the first (canonical) spellings

    def value(column: dict[str, Any]) -> Any:
        pool = (JSON_VALUES if json_lines else TEXT_VALUES)[column["type"]]
        if canonical:
            pool = pool[:3]
        if draw(st.integers(0, 6)) == 0:
            return None if json_lines else ""
        return draw(st.sampled_from(pool))

    table = [{column["name"]: value(column) for column in order} for _ in range(rows)]
    if json_lines:
        lines = [
            json.dumps({k: v for k, v in row.items() if v is not None or draw(st.booleans())})
            for row in table
        ]
        return schema, ("\n".join(lines) + "\n").encode(), "g.jsonl"
    header = ",".join(column["name"] for column in order)
    lines = [header] + [",".join(str(row[column["name"]]) for column in order) for row in table]
    if draw(st.integers(0, 8)) == 0:
        lines.insert(draw(st.integers(1, len(lines))), "")  # a blank line
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return schema, (ending.join(lines) + ending).encode(), "g.csv"


def _agrees(schema: DataSchema, data: bytes, name: str) -> bool:
    quick = fast.clean_report(data, name, schema, DEFAULT_LIMITS)
    if quick is None:
        return False
    full = engine.run(data, name, schema, DEFAULT_LIMITS)
    assert full.failures == (), f"fast said valid, pandera found: {full.summary()}\n{data!r}"
    assert quick == full
    return True


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(json_lines=False))
def test_a_csv_the_fast_path_passes_pandera_passes_too(case: tuple[DataSchema, bytes, str]) -> None:
    _agrees(*case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(json_lines=True))
def test_a_jsonl_object_the_fast_path_passes_pandera_passes_too(case: tuple[DataSchema, bytes, str]) -> None:
    _agrees(*case)


def test_the_common_case_takes_the_fast_path(make_csv: Callable[..., str], churn: DataSchema) -> None:
    sample = make_csv(400).encode()
    assert _agrees(churn, sample, "churn/part-1.csv")
    assert _agrees(churn, gzip.compress(sample), "churn/part-1.csv.gz")
    every_type = parse_schema(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "DataSchema",
            "metadata": {"name": "all"},
            "spec": {
                "keys": [["id"]],
                "columns": [
                    {"name": "id", "type": "integer", "unique": True},
                    {"name": "score", "type": "number", "min": 0, "max": 1},
                    {"name": "ok", "type": "boolean"},
                    {"name": "at", "type": "datetime"},
                    {"name": "note", "type": "string", "nullable": True, "maxNullFraction": 0.5},
                    {"name": "tier", "type": "string", "allowed": ["gold", "silver"], "pattern": "^[a-z]+$"},
                ],
            },
        }
    )
    csv_rows = ["id,score,ok,at,note,tier"] + [
        f"{n},0.{n},{'true' if n % 2 else 'false'},2024-01-0{n}T10:00:00Z,{'x' if n % 2 else ''},gold"
        for n in range(1, 7)
    ]
    assert _agrees(every_type, ("\n".join(csv_rows) + "\n").encode(), "t.csv")
    records = [
        {
            "id": n,
            "score": n / 10,
            "ok": bool(n % 2),
            "at": f"2024-01-0{n}",
            "note": "x" if n % 2 else None,
            "tier": "silver",
        }
        for n in range(1, 7)
    ]
    assert _agrees(every_type, "".join(json.dumps(r) + "\n" for r in records).encode(), "t.ndjson")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,4,yes\n" * 19, "too few rows"),
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,4,maybe\n" * 20, "a value not allowed"),
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,40,yes\n" * 20, "above the bound"),
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,x,yes\n" * 20, "not a number"),
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,,yes\n" * 20, "an empty cell"),
        (b"f1,f2,f3,label\n" + b"1,2,3,yes\n" * 20, "a missing column"),
        (b"f1,f2,f3,f4,label,f5\n" + b"1,2,3,4,yes,5\n" * 20, "an unexpected column"),
        (b"f1,f2,f3,f4,label\n" + b"1,2,3,4,yes,9\n" * 20, "a ragged row"),
        (b"f1,f2,f3,f4,label\n" + b'1,2,3,4,"yes"\n' * 20, "quoting"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_anything_doubtful_goes_to_the_engine(data: bytes, why: str, churn: DataSchema) -> None:
    assert fast.clean_report(data, "churn/x.csv", churn, DEFAULT_LIMITS) is None, why


def test_a_large_object_goes_to_the_engine(make_csv: Callable[..., str], churn: DataSchema) -> None:
    large = make_csv(fast.MAX_ROWS + 1).encode()
    assert fast.clean_report(large, "churn/big.csv", churn, DEFAULT_LIMITS) is None
    assert validate(large, "churn/big.csv", churn).valid
    assert fast.clean_report(large, "churn/big.csv", churn, Limits(max_rows=10)) is None


def test_a_valid_object_is_checked_without_loading_pandas() -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from shared.validation import load_schema, validate\n"
        "schema = load_schema(Path('schemas/churn.yaml'))\n"
        "data = ('f1,f2,f3,f4,label\\n' + '1.5,0.2,-3,4,yes\\n' * 30).encode()\n"
        "assert validate(data, 'churn/a.csv', schema).valid\n"
        "print('pandas' in sys.modules, 'pandera' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
