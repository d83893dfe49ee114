"""Bounds on what one validation reads and reports, so a hostile or huge object cannot exhaust a function."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What :func:`shared.validation.validate` accepts and how much of each failure it reports.

    ``max_bytes`` bounds the object *and*, for ``.gz`` objects, what it decompresses to (a small gzip can
    expand a thousandfold). The caller should compare the object's size from the storage event with
    ``max_bytes`` before downloading it at all. Memory is roughly 10x ``max_bytes`` while a CSV is checked
    (pandas frames of text), so size the function's memory to match.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_rows: int = 5_000_000
    max_columns: int = 1000
    #: rows (and values) listed per failure; ``count`` still says how many there were
    rows_per_failure: int = 20
    #: failures listed per report; the rest are counted in ``omittedFailures``
    max_failures: int = 200

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_rows", "max_columns", "rows_per_failure", "max_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_LIMITS = Limits()
