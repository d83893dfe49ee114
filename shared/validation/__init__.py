"""Data validation of a dataset object against its schema file (``schemas/<dataset>.yaml``).

* :func:`load_schema` reads a schema file (the language is documented in :mod:`shared.validation.schema`).
* :func:`validate` checks one object's bytes and returns a :class:`Report` that lists every failed check
  with its column, first rows and count; ``report.to_json()`` is what ``quarantine/<name>.report.json``
  holds.
* ``python -m shared.validation infer SAMPLE.csv > schemas/NAME.yaml`` writes a starting schema.

Importing this package is cheap: pandas and pandera are imported on the first :func:`validate` that needs
them or the first :func:`infer_schema` call, so nothing that ``main.py`` imports pays for them. A small object
that is valid is answered in plain Python (:mod:`shared.validation.fast`) and never loads them; every other
object, and every failure, is checked and described by pandera (:mod:`shared.validation.engine`).
"""

from __future__ import annotations

from shared.validation.limits import DEFAULT_LIMITS, Limits
from shared.validation.report import CHECKS, Failure, Report
from shared.validation.schema import ColumnSpec, DataSchema, load_schema, parse_schema

__all__ = [
    "CHECKS",
    "DEFAULT_LIMITS",
    "ColumnSpec",
    "DataSchema",
    "Failure",
    "Limits",
    "Report",
    "infer_schema",
    "load_schema",
    "parse_schema",
    "validate",
]


def validate(data: bytes, name: str, schema: DataSchema, limits: Limits = DEFAULT_LIMITS) -> Report:
    """Check the object ``name`` (its bytes ``data``) against ``schema``; bad data never raises.

    The format is the schema's ``format``, else the name's extension (``.csv``, ``.jsonl``, ``.ndjson``, each
    optionally ``.gz``). An object over ``limits`` is reported as a ``size`` failure without being parsed.
    """
    from shared.validation import fast

    clean = fast.clean_report(data, name, schema, limits)  # a small valid object: plain Python, no pandas
    if clean is not None:
        return clean
    from shared.validation import engine  # pandas + pandera: every other object, and every failure

    return engine.run(data, name, schema, limits)


def infer_schema(data: bytes, name: str) -> DataSchema:
    """A starting schema inferred from a sample object (options: :func:`shared.validation.infer.infer`)."""
    from shared.validation import infer

    return infer.infer(data, name)
