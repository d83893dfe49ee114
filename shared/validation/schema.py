"""The data schema language: a small YAML file kept beside the pipeline configuration.

It says what a valid data object of one dataset looks like, and maps one to one onto pandera checks
(``shared.validation.engine``). This module is pure: parsing a schema file never imports pandas.

.. code-block:: yaml

    apiVersion: mlops.dev/v1
    kind: DataSchema
    metadata: {name: churn}
    spec:
      format: csv                # csv | jsonl; omitted: from the object's name (.csv, .jsonl, .ndjson, + .gz)
      csv: {delimiter: ","}      # the first line is the header
      rows: {min: 20, max: 1000000}
      extraColumns: forbid       # forbid (default): a column the schema does not name fails; allow
      keys: [[customer_id]]      # each key's columns are unique together
      columns:
        - name: f1
          type: number           # string | integer | number | boolean | datetime
          min: -10               # inclusive bounds (integer and number columns)
          max: 10
        - name: label
          type: string
          allowed: ["yes", "no"] # quote yes/no/on/off: YAML reads them as booleans
        - name: comment
          type: string
          required: false        # the column may be absent (default: true)
          nullable: true         # empty cells allowed (default: false: no nulls)
          maxNullFraction: 0.1   # completeness: at most 10% empty (only with nullable: true)
          pattern: "^[a-z ]*$"   # a regular expression every value matches (string columns)
        - {name: customer_id, type: integer, unique: true}

How values are read. An empty CSV cell, a JSON ``null`` and a key absent from a JSONL line are empty values.

* ``string``: any text (JSONL: a JSON string);
* ``integer``: a whole number written without a fraction, ``12`` (JSONL: a number with no fractional part);
* ``number``: any decimal or exponent notation (JSONL: a number; ``true`` is not a number);
* ``boolean``: ``true``/``false``/``1``/``0`` in any case (JSONL: ``true``/``false``);
* ``datetime``: ISO 8601 / RFC 3339 text, UTC when it has no offset (JSONL: such a string).

``pattern`` must match from the start of the value (end it with ``$`` to match the whole value). A CSV object
has a header line; a JSONL object has one JSON object per line (blank lines are skipped and row numbers in
a report are line numbers). Every problem in a schema file is reported at once, each naming the file and
the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from shared.errors import ConfigError
from shared.problems import Problems, Reader, shown

API_VERSION = "mlops.dev/v1"
KIND = "DataSchema"

TYPES = ("string", "integer", "number", "boolean", "datetime")
FORMATS = ("csv", "jsonl")
NUMERIC_TYPES = ("integer", "number")

#: A schema is configuration, not data: these bounds only keep a hostile file from being unreasonable.
MAX_COLUMNS = 1000
MAX_ALLOWED_VALUES = 10_000
MAX_PATTERN_CHARS = 1000

Scalar = str | int | float | bool
ExtraColumns = Literal["forbid", "allow"]

_COLUMN_NAME = re.compile(r"^[^\x00-\x1f]{1,300}$")


@dataclass(frozen=True)
class ColumnSpec:
    """What every value of one column must satisfy."""

    name: str
    type: str
    required: bool = True
    nullable: bool = False
    max_null_fraction: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[Scalar, ...] | None = None
    pattern: str | None = None
    unique: bool = False


@dataclass(frozen=True)
class DataSchema:
    """A dataset's schema: its columns, keys, row-count bounds and file format."""

    name: str
    columns: tuple[ColumnSpec, ...]
    format: str | None = None
    delimiter: str = ","
    min_rows: int | None = None
    max_rows: int | None = None
    keys: tuple[tuple[str, ...], ...] = ()
    extra_columns: ExtraColumns = "forbid"
    source: str = "(schema)"

    def column(self, name: str) -> ColumnSpec | None:
        return next((column for column in self.columns if column.name == name), None)

    def to_document(self) -> dict[str, Any]:
        """The schema as a YAML-ready document (what :func:`parse_schema` reads back)."""
        spec: dict[str, Any] = {}
        if self.format:
            spec["format"] = self.format
        if self.delimiter != ",":
            spec["csv"] = {"delimiter": self.delimiter}
        rows = {
            key: value for key, value in (("min", self.min_rows), ("max", self.max_rows)) if value is not None
        }
        if rows:
            spec["rows"] = rows
        spec["extraColumns"] = self.extra_columns
        if self.keys:
            spec["keys"] = [list(key) for key in self.keys]
        spec["columns"] = [_column_document(column) for column in self.columns]
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": self.name}, "spec": spec}


def _column_document(column: ColumnSpec) -> dict[str, Any]:
    item: dict[str, Any] = {"name": column.name, "type": column.type}
    if not column.required:
        item["required"] = False
    if column.nullable:
        item["nullable"] = True
    if column.max_null_fraction is not None:
        item["maxNullFraction"] = column.max_null_fraction
    for key, value in (("min", column.minimum), ("max", column.maximum)):
        if value is not None:
            item[key] = int(value) if column.type == "integer" else value
    if column.allowed is not None:
        item["allowed"] = list(column.allowed)
    if column.pattern is not None:
        item["pattern"] = column.pattern
    if column.unique:
        item["unique"] = True
    return item


# ---------------------------------------------------------------------------------------------- parsing


def load_schema(path: str | Path) -> DataSchema:
    """Read and check a schema file; :class:`ConfigError` lists every problem, each naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{source}: cannot read the schema: {error.strerror}", [f"{source}: not readable"]
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML", [f"{source}: {error}"]) from None
    return parse_schema(document, source)


def parse_schema(document: Any, source: str = "(schema)") -> DataSchema:
    """Check a parsed schema document; :class:`ConfigError` lists every problem (``file: path: message``)."""
    problems = Problems(mapping_word="mapping", root="(document)")
    root = problems.reader(document)
    root.unknown({"apiVersion", "kind", "metadata", "spec"})
    if root.get("apiVersion") != API_VERSION:
        root.add("apiVersion", f"must be {API_VERSION!r}, got {shown(root.get('apiVersion'))}")
    if root.get("kind") != KIND:
        root.add("kind", f"must be {KIND!r}, got {shown(root.get('kind'))}")
    metadata = root.child("metadata", required=True)
    name = metadata.string("name", "", required=True)
    spec = root.child("spec", required=True)
    spec.unknown({"format", "csv", "rows", "extraColumns", "keys", "columns"})

    data_format = spec.string("format")
    if data_format is not None and data_format not in FORMATS:
        spec.add("format", f"{shown(data_format)} is not one of {', '.join(FORMATS)}")
        data_format = None
    csv = spec.child("csv")
    csv.unknown({"delimiter"})
    delimiter = csv.string("delimiter", ",")
    if len(delimiter) != 1 or delimiter in '\r\n"':
        csv.add(
            "delimiter", f"must be one character other than a quote or a line break, got {shown(delimiter)}"
        )
        delimiter = ","
    rows = spec.child("rows")
    rows.unknown({"min", "max"})
    min_rows = rows.integer("min", 0, minimum=0) if rows.has("min") else None
    max_rows = rows.integer("max", 0, minimum=0) if rows.has("max") else None
    if min_rows is not None and max_rows is not None and min_rows > max_rows:
        rows.add("max", f"must not be below rows.min ({min_rows}), got {max_rows}")
    extra = spec.string("extraColumns", "forbid")
    if extra not in ("forbid", "allow"):
        spec.add("extraColumns", f"must be forbid or allow, got {shown(extra)}")
        extra = "forbid"

    columns = _columns(spec)
    keys = _keys(spec, {column.name for column in columns})
    problems.raise_if_any(
        lambda items: ConfigError(
            f"{source}: invalid data schema ({len(items)} problem(s))",
            [f"{source}: {item}" for item in items],
        )
    )
    return DataSchema(
        name=name,
        columns=tuple(columns),
        format=data_format,
        delimiter=delimiter,
        min_rows=min_rows,
        max_rows=max_rows,
        keys=keys,
        extra_columns="allow" if extra == "allow" else "forbid",
        source=source,
    )


def _columns(spec: Reader) -> list[ColumnSpec]:
    items = spec.sequence("columns", required=True, max_items=MAX_COLUMNS)
    if spec.has("columns") and isinstance(spec.get("columns"), list) and not items:
        spec.add("columns", "must name at least one column")
    columns: list[ColumnSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        column = _column(Reader(item, f"{spec.at('columns')}[{index}]", spec.problems))
        if column is None:
            continue
        if column.name in seen:
            spec.problems.add(f"{spec.at('columns')}[{index}].name", f"duplicate column {column.name!r}")
            continue
        seen.add(column.name)
        columns.append(column)
    return columns


def _column(reader: Reader) -> ColumnSpec | None:
    reader.unknown(
        {
            "name",
            "type",
            "required",
            "nullable",
            "maxNullFraction",
            "min",
            "max",
            "allowed",
            "pattern",
            "unique",
        }
    )
    name = reader.string("name", required=True)
    if name is not None and not _COLUMN_NAME.match(name):
        reader.add("name", f"must be 1-300 characters without control characters, got {shown(name)}")
    column_type = reader.string("type", required=True)
    if column_type is not None and column_type not in TYPES:
        reader.add("type", f"{shown(column_type)} is not one of {', '.join(TYPES)}")
        column_type = None
    required = reader.boolean("required", True)
    nullable = reader.boolean("nullable", False)
    max_null_fraction: float | None = None
    if reader.has("maxNullFraction"):
        max_null_fraction = reader.number("maxNullFraction", 0.0, minimum=0.0, maximum=1.0)
        if not nullable:
            reader.add(
                "maxNullFraction", "only with nullable: true (a column that is not nullable has no nulls)"
            )
    minimum = _bound(reader, "min", column_type)
    maximum = _bound(reader, "max", column_type)
    if minimum is not None and maximum is not None and minimum > maximum:
        reader.add("max", f"must not be below min ({minimum:g}), got {maximum:g}")
    allowed = _allowed(reader, column_type)
    pattern = _pattern(reader, column_type)
    unique = reader.boolean("unique", False)
    if name is None or column_type is None:
        return None
    return ColumnSpec(
        name=name,
        type=column_type,
        required=required,
        nullable=nullable,
        max_null_fraction=max_null_fraction,
        minimum=minimum,
        maximum=maximum,
        allowed=allowed,
        pattern=pattern,
        unique=unique,
    )


def _bound(reader: Reader, key: str, column_type: str | None) -> float | None:
    if not reader.has(key):
        return None
    if column_type is not None and column_type not in NUMERIC_TYPES:
        reader.add(key, f"only for integer and number columns, not {column_type}")
        return None
    value = reader.number(key, math.nan)
    if math.isnan(value):
        return None
    if column_type == "integer" and not float(value).is_integer():
        reader.add(key, f"must be a whole number for an integer column, got {shown(reader.get(key))}")
    return value


def _allowed(reader: Reader, column_type: str | None) -> tuple[Scalar, ...] | None:
    if not reader.has("allowed"):
        return None
    values = reader.sequence("allowed", max_items=MAX_ALLOWED_VALUES)
    if not values:
        if isinstance(reader.get("allowed"), list):
            reader.add("allowed", "must list at least one value")
        return None
    good: list[Scalar] = []
    for index, value in enumerate(values):
        problem = _allowed_problem(value, column_type)
        if problem:
            reader.problems.add(f"{reader.at('allowed')}[{index}]", problem)
        else:
            good.append(value)
    return tuple(good) if len(good) == len(values) else None


def _allowed_problem(value: Any, column_type: str | None) -> str | None:
    if column_type == "string":
        if isinstance(value, bool):
            return (
                f"{value} is a boolean: quote it (YAML reads unquoted yes/no/on/off/true/false as booleans)"
            )
        return None if isinstance(value, str) else f"must be a string, got {shown(value)}"
    if column_type == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, got {shown(value)}"
    if column_type == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"must be a finite number, got {shown(value)}"
    if column_type == "boolean":
        return None if isinstance(value, bool) else f"must be true or false, got {shown(value)}"
    if column_type == "datetime":
        return "not supported for datetime columns"
    return None


def _pattern(reader: Reader, column_type: str | None) -> str | None:
    pattern = reader.string("pattern")
    if pattern is None:
        return None
    if column_type is not None and column_type != "string":
        reader.add("pattern", f"only for string columns, not {column_type}")
        return None
    if len(pattern) > MAX_PATTERN_CHARS:
        reader.add("pattern", f"at most {MAX_PATTERN_CHARS} characters, got {len(pattern)}")
        return None
    try:
        re.compile(pattern)
    except re.error as error:
        reader.add("pattern", f"not a regular expression: {error}")
        return None
    return pattern


def _keys(spec: Reader, names: set[str]) -> tuple[tuple[str, ...], ...]:
    keys: list[tuple[str, ...]] = []
    for index, item in enumerate(spec.sequence("keys")):
        where = f"{spec.at('keys')}[{index}]"
        if not isinstance(item, list) or not item or not all(isinstance(part, str) for part in item):
            spec.problems.add(where, f"must be a non-empty list of column names, got {shown(item)}")
            continue
        unknown = [part for part in item if part not in names]
        if unknown:
            spec.problems.add(where, f"names no column of the schema: {', '.join(unknown)}")
            continue
        if len(set(item)) != len(item):
            spec.problems.add(where, "names a column twice")
            continue
        keys.append(tuple(item))
    return tuple(keys)
