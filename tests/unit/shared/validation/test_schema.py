"""The data schema language: the shipped churn schema, every problem reported at once, round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.errors import ConfigError
from shared.validation import DataSchema, load_schema, parse_schema

pytestmark = pytest.mark.unit


def _document(columns: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1",
        "kind": "DataSchema",
        "metadata": {"name": "t"},
        "spec": {"columns": columns, **spec},
    }


def test_the_shipped_churn_schema_says_what_the_issue_says(churn: DataSchema) -> None:
    assert churn.name == "churn"
    assert [column.name for column in churn.columns] == ["f1", "f2", "f3", "f4", "label"]
    for feature in churn.columns[:4]:
        assert (feature.type, feature.minimum, feature.maximum, feature.nullable) == (
            "number",
            -10,
            10,
            False,
        )
    label = churn.columns[4]
    assert (label.type, label.allowed, label.nullable) == ("string", ("yes", "no"), False)
    assert churn.min_rows == 20
    assert churn.extra_columns == "forbid"
    assert churn.format is None  # each object's name says csv or jsonl


def test_every_problem_is_reported_at_once_naming_file_and_field() -> None:
    document = {
        "apiVersion": "v0",
        "kind": "DataSchema",
        "metadata": {"name": "t"},
        "spec": {
            "format": "xlsx",
            "rows": {"min": 10, "max": 5},
            "extraColumns": "sometimes",
            "keys": [["nope"], "id"],
            "surprise": 1,
            "columns": [
                {"name": "id", "type": "integer", "min": 1.5},
                {"name": "label", "type": "string", "allowed": [True, False]},  # unquoted yes/no in YAML
                {"name": "score", "type": "float"},
                {"name": "amount", "type": "number", "min": 10, "max": 1},
                {"name": "when", "type": "datetime", "min": 3},
                {"name": "code", "type": "string", "pattern": "(unclosed"},
                {"name": "flag", "type": "boolean", "pattern": "x", "maxNullFraction": 0.5},
                {"name": "id", "type": "string"},
                {"type": "string"},
            ],
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_schema(document, "schemas/t.yaml")
    problems = caught.value.problems
    assert all(problem.startswith("schemas/t.yaml: ") for problem in problems)
    text = "\n".join(problems)
    for expected in (
        "apiVersion: must be 'mlops.dev/v1'",
        "spec.format: 'xlsx' is not one of csv, jsonl",
        "spec.rows.max: must not be below rows.min (10), got 5",
        "spec.extraColumns: must be forbid or allow",
        "spec.surprise: unknown field",
        "spec.columns[0].min: must be a whole number for an integer column",
        "spec.columns[1].allowed[0]: True is a boolean: quote it",
        "spec.columns[1].allowed[1]: False is a boolean: quote it",
        "spec.columns[2].type: 'float' is not one of string, integer, number, boolean, datetime",
        "spec.columns[3].max: must not be below min (10), got 1",
        "spec.columns[4].min: only for integer and number columns, not datetime",
        "spec.columns[5].pattern: not a regular expression",
        "spec.columns[6].pattern: only for string columns, not boolean",
        "spec.columns[6].maxNullFraction: only with nullable: true",
        "spec.columns[7].name: duplicate column 'id'",
        "spec.columns[8].name: required",
        "spec.keys[0]: names no column of the schema: nope",
        "spec.keys[1]: must be a non-empty list of column names",
    ):
        assert expected in text, f"missing problem: {expected}\n{text}"


def test_a_document_without_columns_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_schema(_document([]), "s.yaml")
    assert any("spec.columns: must name at least one column" in problem for problem in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        parse_schema(["not", "a", "mapping"], "s.yaml")
    assert any("(document): must be a mapping" in problem for problem in caught.value.problems)


def test_allowed_values_must_match_the_column_type() -> None:
    document = _document(
        [
            {"name": "n", "type": "integer", "allowed": [1, "2", True]},
            {"name": "x", "type": "number", "allowed": [0.5, 1]},
            {"name": "b", "type": "boolean", "allowed": [True, "no"]},
            {"name": "d", "type": "datetime", "allowed": ["2026-01-01"]},
            {"name": "e", "type": "string", "allowed": []},
        ]
    )
    with pytest.raises(ConfigError) as caught:
        parse_schema(document, "s.yaml")
    text = "\n".join(caught.value.problems)
    assert "columns[0].allowed[1]: must be an integer, got '2'" in text
    assert "columns[0].allowed[2]: must be an integer, got True" in text
    assert "columns[1]" not in text  # ints are numbers
    assert "columns[2].allowed[1]: must be true or false, got 'no'" in text
    assert "columns[3].allowed[0]: not supported for datetime columns" in text
    assert "columns[4].allowed: must list at least one value" in text


def test_load_schema_reports_unreadable_and_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the schema"):
        load_schema(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_schema(bad)


def test_to_document_round_trips_through_yaml(churn: DataSchema) -> None:
    document = _document(
        [
            {"name": "id", "type": "integer", "min": 1, "unique": True},
            {"name": "note", "type": "string", "required": False, "nullable": True, "maxNullFraction": 0.25},
            {"name": "code", "type": "string", "pattern": "^[A-Z]{3}$", "allowed": ["ABC", "XYZ"]},
            {"name": "ok", "type": "boolean"},
            {"name": "at", "type": "datetime", "nullable": True},
        ],
        format="jsonl",
        csv={"delimiter": ";"},
        rows={"min": 1, "max": 10},
        extraColumns="allow",
        keys=[["id", "code"]],
    )
    for schema in (parse_schema(document, "a.yaml"), churn):
        text = yaml.safe_dump(schema.to_document(), sort_keys=False)
        again = parse_schema(yaml.safe_load(text), schema.source)
        assert again == schema
