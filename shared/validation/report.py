"""The validation report: every failed check, JSON-serialisable (``quarantine/<name>.report.json``)."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

#: Failure kinds (the ``check`` of a :class:`Failure`), stable names a reader of a report can rely on.
CHECKS = {
    "size": "the object is larger than the configured bounds (bytes or rows)",
    "format": "the object cannot be read as its format (bad CSV/JSON, encoding, compression, empty)",
    "columns.missing": "a required column is absent",
    "columns.unexpected": "a column the schema does not name (extraColumns: forbid)",
    "columns.duplicate": "the header names a column twice",
    "type": "a value cannot be read as the column's type",
    "nullable": "an empty value in a column that allows none",
    "completeness": "more empty values than maxNullFraction allows",
    "min": "a value below the column's min",
    "max": "a value above the column's max",
    "allowed": "a value not among the column's allowed values",
    "pattern": "a value that does not match the column's pattern",
    "unique": "a value repeated in a unique column",
    "key": "a key (several columns together) repeated",
    "rows.min": "fewer rows than rows.min",
    "rows.max": "more rows than rows.max",
}


@dataclass(frozen=True)
class Failure:
    """One failed check: which, where, how often, and the first offending rows and values.

    ``rows`` are 1-based record numbers: the first data row of a CSV (after its header) is row 1, the first
    line of a JSONL file is row 1.
    """

    check: str
    column: str | None
    message: str
    count: int = 1
    rows: tuple[int, ...] = ()
    values: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "column": self.column,
            "message": self.message,
            "count": self.count,
            "rows": list(self.rows),
            "values": [json_safe(value) for value in self.values],
        }

    def line(self) -> str:
        """One line for a notification: ``f2: max: 3 value(s) above 10 (rows 5, 9, 12)``."""
        where = f"{self.column}: " if self.column else ""
        rows = ""
        if self.rows:
            more = ", …" if self.count > len(self.rows) else ""
            rows = f" (row{'s' if len(self.rows) > 1 else ''} {', '.join(map(str, self.rows))}{more})"
        return f"{where}{self.check}: {self.message}{rows}"


@dataclass(frozen=True)
class Report:
    """The outcome of validating one object against one schema."""

    object_name: str
    schema: str
    format: str | None
    rows: int | None
    failures: tuple[Failure, ...] = ()
    omitted_failures: int = 0
    columns: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return not self.failures and not self.omitted_failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object_name,
            "schema": self.schema,
            "valid": self.valid,
            "format": self.format,
            "rows": self.rows,
            "columns": list(self.columns),
            "failureCount": len(self.failures) + self.omitted_failures,
            "failures": [failure.to_dict() for failure in self.failures],
            "omittedFailures": self.omitted_failures,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def summary(self, limit: int = 10) -> str:
        """A few lines for a notification text: the verdict, then one line per failure."""
        if self.valid:
            return f"{self.object_name}: valid ({self.rows} rows, schema {self.schema})"
        total = len(self.failures) + self.omitted_failures
        lines = [f"{self.object_name}: {total} failed check(s) against schema {self.schema}"]
        lines += [f"- {failure.line()}" for failure in self.failures[:limit]]
        if total > limit:
            lines.append(f"- … and {total - limit} more (see the report)")
        return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """A value as JSON can carry it: numpy/pandas scalars unwrapped, non-finite floats and dates as text."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):  # e.g. a numpy array: not one scalar
            value = item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)
