"""The quick answer for the common case, a small valid object, in plain Python: no pandas, no pandera.

Building a DataFrame and running pandera twice costs about 15 ms of CPU for a 24-row CSV and 1.5 s of imports
on a function's first object (docs/performance.md); reading the same object with :mod:`csv` or :mod:`json` and
checking each value costs a fraction of a millisecond. This module only ever answers "valid" (a report with no
failures) or "cannot tell" (``None``). Anything it does not read exactly as the pandera engine
(:mod:`shared.validation.engine`) would, such as a value in an unusual spelling, an empty cell a check would
look at, a quote character or a ragged row, is "cannot tell", and the engine then checks the object and names
every failure. So a failure is always found and described by pandera; a valid object gets the same report
either way. ``tests/unit/shared/validation/test_fast.py`` holds both to that on generated tables.

Objects over :data:`MAX_ROWS` rows also go to the engine: past a few thousand rows its column-at-a-time work
is faster than a loop over values.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.validation.limits import Limits
from shared.validation.reading import Unreadable, format_for, payload
from shared.validation.report import Report
from shared.validation.schema import ColumnSpec, DataSchema

#: Above this many rows the engine's vectorised checks win; measured in tests/unit/shared/validation.
MAX_ROWS = 5000

#: pandas' datetime64[ns] holds the years 1678-2261; outside them the engine decides.
_FIRST_YEAR, _LAST_YEAR = 1678, 2261
#: a JSON integer beyond this loses digits as a float64 "number": the engine decides.
_EXACT_FLOAT_INT = 2**53
_INT64 = 2**63 - 1

_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_NUMBER_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}


class _CannotTell(Exception):
    """The object needs the engine."""


_EMPTY = None  # an empty CSV cell, a JSON null, a key absent from a JSONL line
Reader = Callable[[Any], Any]


def clean_report(data: bytes, name: str, schema: DataSchema, limits: Limits) -> Report | None:
    """A report with no failures when the object is certainly valid, else ``None`` (ask the engine)."""
    data_format = format_for(name, schema)
    if data_format is None:
        return None
    try:
        text = payload(data, name, limits).decode("utf-8")
        if data_format == "csv":
            columns, rows = _csv_rows(text, schema.delimiter)
            json_values = False
        else:
            columns, rows = _jsonl_rows(text)
            json_values = True
        _check(columns, rows, schema, limits, json_values)
    except (Unreadable, UnicodeDecodeError, csv.Error, _CannotTell):
        return None
    return Report(
        object_name=name,
        schema=schema.name,
        format=data_format,
        rows=len(rows),
        failures=(),
        omitted_failures=0,
        columns=tuple(columns),
    )


# ---------------------------------------------------------------------------------------------- reading


def _csv_rows(text: str, delimiter: str) -> tuple[list[str], list[list[Any]]]:
    if '"' in text or "\r" in text.replace("\r\n", "") or text.startswith("\ufeff"):
        raise _CannotTell  # quoting, lone carriage returns, a byte order mark: pandas' reading of them rules
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or any(not column for column in header):
        raise _CannotTell
    width = len(header)
    rows: list[list[Any]] = []
    for row in reader:
        if not row:
            continue  # a blank line holds no row (pandas skips it too)
        if len(row) != width:
            raise _CannotTell
        rows.append([value if value != "" else _EMPTY for value in row])
        if len(rows) > MAX_ROWS:
            raise _CannotTell
    return header, rows


def _jsonl_rows(text: str) -> tuple[list[str], list[list[Any]]]:
    records: list[dict[str, Any]] = []
    for line in text.splitlines():  # the engine's line splitting, so both see the same lines
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            raise _CannotTell from None
        if not isinstance(value, dict):
            raise _CannotTell
        records.append(value)
        if len(records) > MAX_ROWS:
            raise _CannotTell
    columns = list(dict.fromkeys(key for record in records for key in record))
    if not columns:
        raise _CannotTell  # no record with a key: pandas counts no rows at all
    return columns, [[record.get(column) for column in columns] for record in records]


# --------------------------------------------------------------------------------------------- checking


def _check(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    schema: DataSchema,
    limits: Limits,
    json_values: bool,
) -> None:
    if len(columns) > limits.max_columns or len(rows) > limits.max_rows or len(set(columns)) != len(columns):
        raise _CannotTell
    if schema.min_rows is not None and len(rows) < schema.min_rows:
        raise _CannotTell
    if schema.max_rows is not None and len(rows) > schema.max_rows:
        raise _CannotTell
    named = {spec.name for spec in schema.columns}
    if schema.extra_columns == "forbid" and any(column not in named for column in columns):
        raise _CannotTell
    position = {column: index for index, column in enumerate(columns)}
    read: dict[str, list[Any]] = {}
    for spec in schema.columns:
        if spec.name not in position:
            if spec.required:
                raise _CannotTell
            continue
        index = position[spec.name]
        read[spec.name] = _column([row[index] for row in rows], spec, json_values)
    for key in schema.keys:
        if not all(column in read for column in key):
            continue  # as in the engine: a key over an absent optional column is not checked
        seen: set[tuple[Any, ...]] = set()
        for values in zip(*(read[column] for column in key), strict=True):
            if _EMPTY in values or values in seen:
                raise _CannotTell
            seen.add(values)


def _column(raw: Sequence[Any], spec: ColumnSpec, json_values: bool) -> list[Any]:
    """The column's values as the engine's coercion reads them, or :class:`_CannotTell` at the first doubt."""
    reader = (_JSON_READERS if json_values else _TEXT_READERS)[spec.type]
    values = [_EMPTY if value is _EMPTY else reader(value) for value in raw]
    empty = sum(1 for value in values if value is _EMPTY)
    if empty and not spec.nullable:
        raise _CannotTell
    if spec.max_null_fraction is not None and values and empty / len(values) > spec.max_null_fraction:
        raise _CannotTell
    present = [value for value in values if value is not _EMPTY]
    if spec.minimum is not None and any(value < spec.minimum for value in present):
        raise _CannotTell
    if spec.maximum is not None and any(value > spec.maximum for value in present):
        raise _CannotTell
    if spec.allowed is not None:
        if not _same_kind(spec.allowed, spec.type):
            raise _CannotTell
        allowed = set(spec.allowed)
        if any(value not in allowed for value in present):
            raise _CannotTell
    if spec.pattern is not None:
        if spec.type != "string":
            raise _CannotTell
        matcher = re.compile(spec.pattern).match
        if not all(matcher(value) for value in present):
            raise _CannotTell
    if spec.unique and (empty or len(set(present)) != len(present)):
        raise _CannotTell
    return values


def _same_kind(allowed: Sequence[Any], column_type: str) -> bool:
    """Only allowed values that pandas' ``isin`` and Python's ``in`` compare alike (no bool/number mix)."""
    if column_type == "string":
        return all(isinstance(value, str) for value in allowed)
    if column_type == "boolean":
        return all(isinstance(value, bool) for value in allowed)
    if column_type in ("integer", "number"):
        return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in allowed)
    return False


def _text_integer(value: str) -> int:
    if not _INTEGER_TEXT.fullmatch(value):
        raise _CannotTell
    number = int(value)
    if abs(number) > _INT64:
        raise _CannotTell
    return number


def _text_number(value: str) -> float:
    if not _NUMBER_TEXT.fullmatch(value):
        raise _CannotTell
    number = float(value)
    if not math.isfinite(number):
        raise _CannotTell
    return number


def _text_boolean(value: str) -> bool:
    reading = _BOOLEAN_TEXT.get(value.strip().lower())
    if reading is None:
        raise _CannotTell
    return reading


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str) or not _DATETIME_TEXT.fullmatch(value):
        raise _CannotTell
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _CannotTell from None
    if not _FIRST_YEAR <= moment.year <= _LAST_YEAR:
        raise _CannotTell
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_string(value: Any) -> str:
    if not isinstance(value, str):
        raise _CannotTell
    return value


def _json_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _CannotTell
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _CannotTell
    number = int(value)
    if abs(number) > _INT64:
        raise _CannotTell
    return number


def _json_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _CannotTell
    if isinstance(value, int) and abs(value) > _EXACT_FLOAT_INT:
        raise _CannotTell
    if not math.isfinite(value):
        raise _CannotTell
    return float(value)


def _json_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _CannotTell
    return value


_TEXT_READERS: dict[str, Reader] = {
    "string": str,
    "integer": _text_integer,
    "number": _text_number,
    "boolean": _text_boolean,
    "datetime": _datetime,
}
_JSON_READERS: dict[str, Reader] = {
    "string": _json_string,
    "integer": _json_integer,
    "number": _json_number,
    "boolean": _json_boolean,
    "datetime": _datetime,
}
