"""Validation of one data object with pandera (pandas backend), imported only on the data-validation path.

Why pandera: measured against Frictionless, pandera-polars, dataframely, pointblank and Great Expectations
(docs/decisions/data-validation-library.md), it validates 100k rows in about 0.1 s (Frictionless: 3.5-8 s),
reports every failed check with its column, row and value when run lazily, and is the most used of them.
pandas and pandera are imported inside the functions here, never when ``shared.validation`` is imported.

The object is read as text (CSV) or JSON values (JSONL), then checked in two passes:

1. *types*: every column is coerced to its type by pandera; each value that cannot be read is one ``type``
   failure at its row, and is blanked so that
2. *checks*: the full pandera schema (nullability, bounds, allowed values, pattern, uniqueness, keys,
   completeness, row counts, missing and unexpected columns) runs on what is left, and every other failure
   is still found. An empty-value failure where a value was unreadable is not reported twice.

pandera's failure cases are then grouped per check and column into the report's :class:`Failure` items.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.validation.limits import Limits
from shared.validation.reading import Unreadable, csv_header, format_for, payload
from shared.validation.report import Failure, Report, json_safe
from shared.validation.schema import ColumnSpec, DataSchema

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

#: pandas dtypes pandera coerces each schema type to (nullable extension types keep empty cells empty).
DTYPES = {
    "string": "string",
    "integer": "Int64",
    "number": "float64",
    "boolean": "boolean",
    "datetime": "datetime64[ns, UTC]",
}
_ARTICLE = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean"}
_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}
#: where each failure kind sits in a report: file-level first, then per column, then table-level checks
_ORDER = (
    "size",
    "format",
    "columns.duplicate",
    "columns.missing",
    "columns.unexpected",
    "type",
    "nullable",
    "completeness",
    "min",
    "max",
    "allowed",
    "pattern",
    "unique",
    "key",
    "rows.min",
    "rows.max",
)


@dataclass
class Table:
    """An object read into a frame: raw values, how to number its rows, and the values found unreadable."""

    frame: pd.DataFrame
    row_numbers: Callable[[int], int]  # frame index -> the row number a report shows
    json_values: bool = False  # JSONL: values keep their JSON types (CSV: all text)
    type_failures: dict[str, dict[int, Any]] = field(default_factory=dict)  # column -> {index: raw value}


def run(data: bytes, name: str, schema: DataSchema, limits: Limits) -> Report:
    """Validate ``data`` (the object ``name``) against ``schema``; never raises for bad data."""
    data_format = format_for(name, schema)
    columns: tuple[str, ...] = ()
    rows: int | None = None
    try:
        table = read_table(data, name, schema, limits)
        columns = tuple(str(column) for column in table.frame.columns)
        rows = len(table.frame)
        failures = _check(table, schema, limits)
    except Unreadable as stop:
        failures = list(stop.failures)
    kept = failures[: limits.max_failures]
    return Report(
        object_name=name,
        schema=schema.name,
        format=data_format,
        rows=rows,
        failures=tuple(kept),
        omitted_failures=len(failures) - len(kept),
        columns=columns,
    )


def read_table(data: bytes, name: str, schema: DataSchema, limits: Limits) -> Table:
    """The object as a frame of raw values (text for CSV, JSON values for JSONL), or :class:`Unreadable`."""
    data_format = format_for(name, schema)
    text = payload(data, name, limits)
    if data_format is None:
        raise Unreadable(
            Failure(
                "format",
                None,
                f"cannot tell the format of {name!r} from its name (.csv, .jsonl, .ndjson, optionally .gz); "
                "set spec.format in the schema",
            )
        )
    return _read_csv(text, schema, limits) if data_format == "csv" else _read_jsonl(text, limits)


# ---------------------------------------------------------------------------------------------- reading


def _read_csv(payload: bytes, schema: DataSchema, limits: Limits) -> Table:
    import pandas as pd

    header = csv_header(payload, schema.delimiter)
    if len(header) > limits.max_columns:
        raise Unreadable(
            Failure("size", None, f"{len(header)} columns, at most {limits.max_columns} are checked")
        )
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise Unreadable(
            *(
                Failure(
                    "columns.duplicate", column, f"the header names {column!r} {header.count(column)} times"
                )
                for column in repeated
            )
        )
    try:
        frame = pd.read_csv(
            io.BytesIO(payload),
            sep=schema.delimiter,
            dtype=str,  # every value as text: pandera decides what is a number, so it can say which are not
            keep_default_na=False,
            na_values=[""],
            nrows=limits.max_rows + 1,
            encoding="utf-8",
            engine="c",
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise Unreadable(Failure("format", None, f"not readable as CSV: {_first_line(error)}")) from None
    if len(frame) > limits.max_rows:
        raise Unreadable(Failure("size", None, f"more than {limits.max_rows} rows are not checked"))
    return Table(frame, lambda index: index + 1)


def _read_jsonl(payload: bytes, limits: Limits) -> Table:
    import pandas as pd

    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(
            Failure("format", None, f"not UTF-8 text: {error.reason} at byte {error.start}")
        ) from None
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # a trailing or blank line holds no record
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            bad.append((number, f"{error.msg} at column {error.colno}"))
            continue
        if not isinstance(value, dict):
            bad.append((number, f"a JSON {type(value).__name__}, not an object"))
            continue
        records.append(value)
        lines.append(number)
        if len(records) > limits.max_rows:
            raise Unreadable(Failure("size", None, f"more than {limits.max_rows} rows are not checked"))
    if bad:
        shown = bad[: limits.rows_per_failure]
        raise Unreadable(
            Failure(
                "format",
                None,
                f"{len(bad)} line(s) are not JSON objects; first: line {bad[0][0]}: {bad[0][1]}",
                count=len(bad),
                rows=tuple(number for number, _ in shown),
                values=tuple(reason for _, reason in shown),
            )
        )
    if not records:
        raise Unreadable(Failure("format", None, "empty: no JSON object in the file"))
    frame = pd.DataFrame.from_records(records)
    if len(frame.columns) > limits.max_columns:
        raise Unreadable(
            Failure("size", None, f"{len(frame.columns)} columns, at most {limits.max_columns} are checked")
        )
    return Table(frame.astype(object), lines.__getitem__, json_values=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


# --------------------------------------------------------------------------------------------- checking


def _check(table: Table, schema: DataSchema, limits: Limits) -> list[Failure]:
    present = [column for column in schema.columns if column.name in table.frame.columns]
    for column in present:
        prepare_column(table, column)
    untyped = coerce_types(table, present)
    results = _pandera_failures(table, schema, untyped)
    failures = [*_type_failures(table, schema, limits, untyped), *_group(results, table, limits)]
    order = {name: rank for rank, name in enumerate(_ORDER)}
    position = {column.name: rank for rank, column in enumerate(schema.columns)}
    failures.sort(key=lambda item: _sort_key(item, order, position))
    return failures


def _sort_key(failure: Failure, order: dict[str, int], position: dict[str, int]) -> tuple[int, int, int]:
    rank = order.get(failure.check, len(order))
    if failure.check in ("size", "format") or failure.check.startswith("columns."):
        return (0, rank, position.get(failure.column or "", 0))
    if failure.column is not None and failure.column in position:
        return (1, position[failure.column], rank)
    return (2, rank, 0)


def prepare_column(table: Table, column: ColumnSpec) -> None:
    """Turn what pandas coercion would misread into values it reads right, and catch JSON type mismatches."""
    import pandas as pd

    series = table.frame[column.name]
    if table.json_values:
        wrong = series.map(lambda value: not _json_type_ok(value, column.type))
        for index in series.index[wrong.to_numpy(dtype=bool)]:
            table.type_failures.setdefault(column.name, {})[int(index)] = series[index]
        if wrong.any():
            series = series.where(~wrong, None)
    if column.type == "boolean":
        # pandas reads any non-empty text as True; accept only the spellings that mean a boolean.
        series = series.map(
            lambda value: _BOOLEAN_TEXT.get(value.strip().lower(), value) if isinstance(value, str) else value
        ).astype(object)
    elif column.type == "datetime":
        # pandas guesses one format from the first value and then fails the whole column on a second format;
        # read ISO 8601 value by value, and leave anything else as text for pandera to accept or name.
        parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
        series = parsed.astype(object).where(parsed.notna(), series.astype(object))
    table.frame[column.name] = series.where(pd.notna(series), None) if series.dtype == object else series


def _json_type_ok(value: Any, column_type: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if column_type in ("string", "datetime"):
        return isinstance(value, str)
    if column_type == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return column_type == "number" or float(value).is_integer()


def coerce_types(table: Table, present: Sequence[ColumnSpec]) -> set[str]:
    """Pass 1: pandera coerces each column; unreadable values become type failures and are blanked.

    Returns the columns pandera could not coerce at all (no row to blame): their other checks are skipped.
    """
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    types_only = pa.DataFrameSchema(
        {column.name: pa.Column(DTYPES[column.type], coerce=True, nullable=True) for column in present},
        strict=False,
    )
    untyped: set[str] = set()
    try:
        types_only.validate(table.frame, lazy=True)
        return untyped
    except SchemaErrors as errors:
        cases = errors.failure_cases
    for case in cases.itertuples(index=False):
        check = str(case.check)
        if not check.startswith("coerce_dtype"):
            continue  # the dtype('...') twin of a coercion failure says the same thing
        column = str(case.column)
        if _missing(case.index):
            untyped.add(column)
            continue
        index = int(case.index)
        table.type_failures.setdefault(column, {})[index] = case.failure_case
    for column, cells in table.type_failures.items():
        table.frame.loc[list(cells), column] = None
    return untyped


@dataclass(frozen=True)
class _Planned:
    """One check we asked pandera to run, so its failure cases map back to our check names."""

    check: str
    column: str | None
    describe: Callable[[int], str]
    key: tuple[str, ...] = ()


def _pandera_failures(table: Table, schema: DataSchema, untyped: set[str]) -> list[tuple[_Planned, Any]]:
    """Pass 2: the full schema; returns (planned check, pandera failure case) pairs."""
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    frame = table.frame
    column_plans: dict[str, list[_Planned]] = {}
    columns: dict[str, pa.Column] = {}
    for spec in schema.columns:
        if spec.name in untyped:
            columns[spec.name] = pa.Column(None, nullable=True, required=False)
            continue
        plans, checks = _column_checks(spec, frame)
        column_plans[spec.name] = plans
        columns[spec.name] = pa.Column(
            DTYPES[spec.type],
            checks=checks,
            coerce=True,
            nullable=spec.nullable,
            unique=spec.unique,
            required=spec.required,
        )
    frame_plans, frame_checks = _table_checks(schema, frame)
    full = pa.DataFrameSchema(columns, checks=frame_checks, strict=schema.extra_columns == "forbid")
    try:
        full.validate(frame, lazy=True)
        return []
    except SchemaErrors as errors:
        cases = errors.failure_cases
    found: list[tuple[_Planned, Any]] = []
    for case in cases.itertuples(index=False):
        planned = _classify(case, column_plans, frame_plans, schema)
        if planned is not None:
            found.append((planned, case))
    return found


def _column_checks(spec: ColumnSpec, frame: pd.DataFrame) -> tuple[list[_Planned], list[Any]]:
    import pandera.pandas as pa

    plans: list[_Planned] = []
    checks: list[Any] = []

    def add(check: str, describe: Callable[[int], str], pandera_check: Any) -> None:
        plans.append(_Planned(check, spec.name, describe))
        checks.append(pandera_check)

    if spec.minimum is not None:
        minimum = spec.minimum
        add("min", lambda count: f"{count} value(s) below {minimum:g}", pa.Check.ge(minimum))
    if spec.maximum is not None:
        maximum = spec.maximum
        add("max", lambda count: f"{count} value(s) above {maximum:g}", pa.Check.le(maximum))
    if spec.allowed is not None:
        allowed = list(spec.allowed)
        listed = ", ".join(map(str, allowed[:10])) + (", …" if len(allowed) > 10 else "")
        add("allowed", lambda count: f"{count} value(s) not among: {listed}", pa.Check.isin(allowed))
    if spec.pattern is not None:
        pattern = spec.pattern
        add(
            "pattern",
            lambda count: f"{count} value(s) do not match {pattern!r}",
            pa.Check.str_matches(pattern),
        )
    if spec.max_null_fraction is not None:
        limit = spec.max_null_fraction
        series = frame[spec.name] if spec.name in frame.columns else None
        fraction = float(series.isna().mean()) if series is not None and len(series) else 0.0
        add(
            "completeness",
            lambda _count: (
                f"{fraction:.1%} of the values are empty or unreadable, at most {limit:.1%} allowed"
            ),
            pa.Check(lambda values: len(values) == 0 or bool(values.isna().mean() <= limit), ignore_na=False),
        )
    return plans, checks


def _table_checks(schema: DataSchema, frame: pd.DataFrame) -> tuple[list[_Planned], list[Any]]:
    import pandera.pandas as pa

    plans: list[_Planned] = []
    checks: list[Any] = []
    rows = len(frame)
    if schema.min_rows is not None:
        minimum = schema.min_rows
        plans.append(_Planned("rows.min", None, lambda _count: f"{rows} row(s), at least {minimum} required"))
        checks.append(pa.Check(lambda data: len(data) >= minimum))
    if schema.max_rows is not None:
        maximum = schema.max_rows
        plans.append(_Planned("rows.max", None, lambda _count: f"{rows} row(s), at most {maximum} allowed"))
        checks.append(pa.Check(lambda data: len(data) <= maximum))
    for key in schema.keys:
        if not all(column in frame.columns for column in key):
            continue  # the missing column is reported; a key over it cannot be checked
        plans.append(_Planned("key", ", ".join(key), _repeats(key), key))
        checks.append(pa.Check(_no_repeats(key)))
    return plans, checks


def _repeats(key: tuple[str, ...]) -> Callable[[int], str]:
    names = ", ".join(key)
    return lambda count: f"{count} row(s) repeat the key ({names})"


def _no_repeats(key: tuple[str, ...]) -> Callable[[pd.DataFrame], pd.Series]:
    columns = list(key)
    return lambda data: ~data.duplicated(subset=columns, keep=False)


_BUILTIN = {
    "not_nullable": "nullable",
    "field_uniqueness": "unique",
    "column_in_dataframe": "columns.missing",
    "column_in_schema": "columns.unexpected",
}


def _classify(
    case: Any, column_plans: dict[str, list[_Planned]], frame_plans: list[_Planned], schema: DataSchema
) -> _Planned | None:
    check = str(case.check)
    number = None if _missing(case.check_number) else int(case.check_number)
    if case.schema_context == "Column":
        column = str(case.column)
        if number is not None and number < len(column_plans.get(column, [])):
            return column_plans[column][number]
        kind = _BUILTIN.get(check) or ("type" if check.startswith(("coerce_dtype", "dtype(")) else check)
        return _Planned(kind, column, _describe(kind, schema.column(column)))
    if check in ("column_in_dataframe", "column_in_schema"):
        kind = _BUILTIN[check]
        name = str(case.failure_case)
        return _Planned(kind, name, _describe(kind, schema.column(name), name))
    if number is not None and number < len(frame_plans):
        return frame_plans[number]
    where = None if _missing(case.column) else str(case.column)
    return _Planned(check, where, lambda count: f"{count} failure(s) of {check}")


def _describe(kind: str, spec: ColumnSpec | None, name: str = "") -> Callable[[int], str]:
    if kind == "nullable":
        return lambda count: f"{count} empty value(s); the column allows none"
    if kind == "unique":
        return lambda count: f"{count} row(s) repeat a value of a unique column"
    if kind == "columns.missing":
        return lambda _count: f"required column {name!r} is absent"
    if kind == "columns.unexpected":
        return lambda _count: f"column {name!r} is not in the schema (extraColumns: forbid)"
    if kind == "type" and spec is not None:
        return lambda count: f"{count} value(s) are not {_ARTICLE.get(spec.type, spec.type)}"
    return lambda count: f"{count} failure(s) of {kind}"


def _group(found: Iterable[tuple[_Planned, Any]], table: Table, limits: Limits) -> list[Failure]:
    groups: dict[tuple[str, str | None], tuple[_Planned, dict[int, Any], int]] = {}
    for planned, case in found:
        key = (planned.check, planned.column)
        _, cells, loose = groups.get(key, (planned, {}, 0))
        if _missing(case.index):
            loose += 1
        else:
            index = int(case.index)
            if planned.check == "nullable" and index in table.type_failures.get(planned.column or "", {}):
                continue  # unreadable, reported as a type failure already
            if planned.key:  # a key failure comes as one case per column of the row: keep the key's
                parts = cells.setdefault(index, {})
                if str(case.column) in planned.key:
                    parts[str(case.column)] = case.failure_case
            else:
                cells.setdefault(index, case.failure_case)
        groups[key] = (planned, cells, loose)
    failures = []
    for planned, cells, loose in groups.values():
        if not cells and not loose:
            continue
        ordered = sorted(cells)[: limits.rows_per_failure]
        count = len(cells) or loose
        failures.append(
            Failure(
                planned.check,
                planned.column,
                planned.describe(count),
                count=count,
                rows=tuple(table.row_numbers(index) for index in ordered),
                values=tuple(_plain(_key_values(cells[index], planned.key)) for index in ordered),
            )
        )
    return failures


def _key_values(value: Any, key: tuple[str, ...]) -> Any:
    return [value.get(part) for part in key] if key and isinstance(value, dict) else value


def _type_failures(table: Table, schema: DataSchema, limits: Limits, untyped: set[str]) -> list[Failure]:
    failures = []
    for column, cells in table.type_failures.items():
        spec = schema.column(column)
        ordered = sorted(cells)[: limits.rows_per_failure]
        failures.append(
            Failure(
                "type",
                column,
                _describe("type", spec)(len(cells)),
                count=len(cells),
                rows=tuple(table.row_numbers(index) for index in ordered),
                values=tuple(_plain(cells[index]) for index in ordered),
            )
        )
    for column in sorted(untyped - set(table.type_failures)):
        spec = schema.column(column)
        kind = spec.type if spec else "its type"
        failures.append(
            Failure("type", column, f"the column cannot be read as {kind}; its other checks were skipped")
        )
    return failures


def _plain(value: Any) -> Any:
    """A failure value for the report: missing values as None, the rest JSON-safe."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if _missing(value):
        return None
    return json_safe(value)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes: not a single missing value
        return False
