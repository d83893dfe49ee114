"""Infer a starting schema from a sample object: ``python -m shared.validation infer SAMPLE.csv``.

Per column: the narrowest type every value reads as (integer, number, boolean, datetime, else string, read
exactly as :func:`shared.validation.validate` reads it, so the sample always passes its inferred schema);
min/max of numbers (optionally widened by ``margin`` x the observed span); the allowed values of a
low-cardinality string column; ``nullable`` only where the sample has empty values; ``unique`` for an
integer or string column whose values are all distinct over at least :data:`MIN_ROWS_FOR_UNIQUE` rows. The
row-count lower bound is 5% of the sample's rows (at least 1) unless given.

The result is a start, not a verdict: review the bounds and allowed values before shipping it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import yaml

from shared.errors import InvalidInput
from shared.validation import engine
from shared.validation.limits import DEFAULT_LIMITS, Limits
from shared.validation.reading import Unreadable
from shared.validation.schema import API_VERSION, ColumnSpec, DataSchema

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

#: candidate types, narrowest first; string always fits
CANDIDATE_TYPES = ("integer", "number", "boolean", "datetime")
MIN_ROWS_FOR_UNIQUE = 20
DEFAULT_MAX_ALLOWED = 10


def infer(
    data: bytes,
    name: str,
    *,
    schema_name: str | None = None,
    data_format: str | None = None,
    delimiter: str = ",",
    max_allowed: int = DEFAULT_MAX_ALLOWED,
    min_rows: int | None = None,
    margin: float = 0.0,
    limits: Limits = DEFAULT_LIMITS,
) -> DataSchema:
    """A schema the sample ``data`` (object ``name``) satisfies; :class:`InvalidInput` if it is unreadable."""
    if margin < 0 or not math.isfinite(margin):
        raise ValueError("margin must be a finite number >= 0")
    reading = DataSchema(name="sample", columns=(), format=data_format, delimiter=delimiter)
    try:
        table = engine.read_table(data, name, reading, limits)
    except Unreadable as unreadable:
        raise InvalidInput(f"sample {name}", [failure.line() for failure in unreadable.failures]) from None
    frame = table.frame
    columns = tuple(
        _infer_column(table, str(column), max_allowed=max_allowed, margin=margin) for column in frame.columns
    )
    rows = len(frame)
    return DataSchema(
        name=schema_name or _stem(name),
        columns=columns,
        format=data_format,  # omitted: each object's name says its format
        delimiter=delimiter,
        min_rows=min_rows if min_rows is not None else max(1, rows // 20),
        source=name,
    )


def _infer_column(table: engine.Table, column: str, *, max_allowed: int, margin: float) -> ColumnSpec:
    raw = table.frame[column]
    nullable = bool(raw.isna().any())
    for candidate in CANDIDATE_TYPES:
        trial = engine.Table(table.frame[[column]].copy(), table.row_numbers, table.json_values)
        spec = ColumnSpec(name=column, type=candidate, nullable=True)
        engine.prepare_column(trial, spec)
        untyped = engine.coerce_types(trial, [spec])
        if not untyped and not trial.type_failures and bool(trial.frame[column].notna().any()):
            return _describe(spec, raw, nullable=nullable, max_allowed=max_allowed, margin=margin)
    spec = ColumnSpec(name=column, type="string", nullable=True)
    return _describe(spec, raw, nullable=nullable, max_allowed=max_allowed, margin=margin)


def _describe(
    spec: ColumnSpec, raw: pd.Series, *, nullable: bool, max_allowed: int, margin: float
) -> ColumnSpec:
    import pandas as pd

    values = raw.dropna()
    spec = replace(spec, nullable=nullable)
    if spec.type in ("integer", "number"):
        numbers = pd.to_numeric(values, errors="coerce").dropna()
        if len(numbers):
            low, high = float(numbers.min()), float(numbers.max())
            widen = (high - low) * margin
            low, high = low - widen, high + widen
            if spec.type == "integer":
                low, high = float(math.floor(low)), float(math.ceil(high))
            spec = replace(spec, minimum=low, maximum=high)
    distinct = values.astype(str).nunique() if len(values) else 0
    if spec.type == "string" and 0 < distinct <= max_allowed and distinct * 2 <= len(values):
        spec = replace(spec, allowed=tuple(sorted(str(value) for value in values.astype(str).unique())))
    elif (
        spec.type in ("integer", "string") and len(values) >= MIN_ROWS_FOR_UNIQUE and distinct == len(values)
    ):
        spec = replace(spec, unique=True)
    return spec


def _stem(name: str) -> str:
    stem = PurePosixPath(name.removesuffix(".gz")).stem
    return stem or "dataset"


def to_yaml(schema: DataSchema) -> str:
    """The schema as a YAML file, with a header saying where it came from and what to review."""
    header = (
        f"# Inferred from {schema.source} by `python -m shared.validation infer` ({API_VERSION}).\n"
        "# A starting point: widen min/max and review allowed values and row bounds before shipping it.\n"
    )
    return header + yaml.safe_dump(schema.to_document(), sort_keys=False, allow_unicode=True, width=110)
