"""The published JSON Schema: valid draft 2020-12, accepts the shipped and example configurations, refuses
mistakes, covers every key the parsers accept, and docs/config-reference.md is generated from it."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.deploy.reference import REFERENCE, SCHEMA, reference
from tests.unit.shared.deploy.support import ROOT

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (requirements-dev.txt) is not installed")

pytestmark = pytest.mark.unit

# Every pipeline config the repository ships (the demo's, the tests', the benchmark's).
CONFIGS = [
    ROOT / "pipeline.yaml",
    *sorted((ROOT / "tests").glob("**/pipeline.yaml")),
    *sorted(ROOT.glob("bench/*.yaml")),
]
PARSERS = ["shared/config.py", "shared/chainconfig.py", "shared/rolloutconfig.py", "shared/training/gates.py"]


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, document: Any) -> list[str]:
    return [f"{'.'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(document)]


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.is_file()], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_and_example_configurations_are_valid(validator: Any, path: Path) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_pipeline_yaml_points_editors_at_the_schema() -> None:
    first = (ROOT / "pipeline.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema/pipeline.schema.json"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["spec"]["services"][0].update(strategy="linear"), "'linear' is not one of"),
        (lambda d: d["spec"].update(triggerz=[]), "Additional properties are not allowed ('triggerz'"),
        (
            lambda d: d["spec"]["services"][0].update(ab={"split": 100}),
            "100 is greater than the maximum of 99",
        ),
        (lambda d: d["spec"]["services"][0].update(shadow={"then": "wait"}), "'wait' is not one of"),
        (
            lambda d: d["spec"]["eventing"].update(ackDeadline="30 seconds"),
            "is not valid under any of the given",
        ),
        (lambda d: d["spec"]["http"][0].update(access="open"), "'open' is not one of ['public', 'private']"),
    ],
)
def test_mistakes_are_refused_as_they_are_typed(validator: Any, change: Any, expected: str) -> None:
    document = copy.deepcopy(yaml.safe_load((ROOT / "pipeline.yaml").read_text(encoding="utf-8")))
    change(document)
    assert any(expected in error for error in _errors(validator, document)), _errors(validator, document)


def _object_keys(node: Any, found: list[frozenset[str]]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.append(frozenset(node["properties"]))
        for value in node.values():
            _object_keys(value, found)
    elif isinstance(node, list):
        for value in node:
            _object_keys(value, found)


def test_every_key_set_a_parser_accepts_is_an_object_of_the_schema() -> None:
    """A key added to a parser's ``unknown({...})`` and not to the schema fails here (and the reverse)."""
    schema_sets: list[frozenset[str]] = []
    _object_keys(json.loads(SCHEMA.read_text(encoding="utf-8")), schema_sets)
    parser_sets: list[frozenset[str]] = []
    for path in PARSERS:
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "unknown"
                and node.args
                and isinstance(node.args[0], ast.Set)
            ):
                parser_sets.append(frozenset(ast.literal_eval(node.args[0])))
    assert len(parser_sets) > 20
    missing = [sorted(keys) for keys in parser_sets if keys not in schema_sets]
    assert missing == []


def test_the_committed_config_reference_is_generated_from_the_schema() -> None:
    expected = reference(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert REFERENCE.read_text(encoding="utf-8") == expected, "stale: run python -m shared.deploy.reference"
