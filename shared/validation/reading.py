"""Reading an object before it is checked, shared by both checkers: the format its name or schema says, the
bounded (and decompressed) payload, the CSV header. Pure standard library: nothing here imports pandas."""

from __future__ import annotations

import csv
import gzip
import io
import zlib

from shared.validation.limits import Limits
from shared.validation.report import Failure
from shared.validation.schema import DataSchema

EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class Unreadable(Exception):
    """The object cannot be checked further; ``failures`` say why."""

    def __init__(self, *failures: Failure) -> None:
        super().__init__(failures[0].message if failures else "stopped")
        self.failures = failures


def format_for(name: str, schema: DataSchema) -> str | None:
    """The schema's format, else the one the object's name says (.csv, .jsonl, .ndjson, each + .gz)."""
    if schema.format:
        return schema.format
    lowered = name.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in EXTENSIONS.items() if lowered.endswith(suffix)), None)


def payload(data: bytes, name: str, limits: Limits) -> bytes:
    """``data`` as the text to check: bounded, and decompressed when the name ends in ``.gz``."""
    if len(data) > limits.max_bytes:
        raise Unreadable(Failure("size", None, f"{len(data)} bytes, at most {limits.max_bytes} are checked"))
    if not name.lower().endswith(".gz"):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            # One byte past the bound tells "too large" from "exactly the bound" without inflating more.
            inflated = stream.read(limits.max_bytes + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise Unreadable(Failure("format", None, f"not a readable gzip file: {error}")) from None
    if len(inflated) > limits.max_bytes:
        raise Unreadable(Failure("size", None, f"decompresses to more than {limits.max_bytes} bytes"))
    return inflated


def csv_header(payload: bytes, delimiter: str) -> list[str]:
    """The header line, or :class:`Unreadable` (not UTF-8, no header, a first row wider than it)."""
    try:
        text = io.TextIOWrapper(io.BytesIO(payload), encoding="utf-8", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        header = next(reader, None)
        first = next(reader, None)
    except UnicodeDecodeError as error:
        raise Unreadable(
            Failure("format", None, f"not UTF-8 text: {error.reason} at byte {error.start}")
        ) from None
    except csv.Error as error:
        raise Unreadable(Failure("format", None, f"not readable as CSV: {error}")) from None
    if not header or all(not column.strip() for column in header):
        raise Unreadable(Failure("format", None, "empty: a CSV object needs a header line"))
    if first is not None and len(first) > len(header):
        # pandas would silently take the extra leading fields as an index; later rows it refuses itself.
        raise Unreadable(
            Failure(
                "format",
                None,
                f"not readable as CSV: row 1 has {len(first)} fields, the header {len(header)}",
                rows=(1,),
            )
        )
    return header
