"""The sample trainer's data generator and the shipped churn schema, shared by the validation tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.validation import DataSchema, load_schema

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def make_csv() -> Callable[..., str]:
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate: Callable[..., str] = module.make_csv
    return generate


@pytest.fixture(scope="session")
def churn() -> DataSchema:
    return load_schema(ROOT / "schemas" / "churn.yaml")
