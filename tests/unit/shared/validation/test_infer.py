"""Schema inference from a sample, and the `python -m shared.validation` command."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from shared.errors import InvalidInput
from shared.validation import DataSchema, infer_schema, parse_schema, validate
from shared.validation.__main__ import main
from shared.validation.infer import infer, to_yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]


def test_the_churn_sample_yields_its_schema_and_passes_it(make_csv: Callable[..., str]) -> None:
    sample = make_csv(400).encode()
    schema = infer_schema(sample, "churn-sample.csv")
    assert schema.name == "churn-sample"
    assert [(column.name, column.type) for column in schema.columns] == [
        ("f1", "number"),
        ("f2", "number"),
        ("f3", "number"),
        ("f4", "number"),
        ("label", "string"),
    ]
    label = schema.columns[4]
    assert (label.allowed, label.nullable, label.unique) == (("no", "yes"), False, False)
    f1 = schema.columns[0]
    assert f1.minimum is not None and f1.maximum is not None
    assert -4 < f1.minimum < 0 < f1.maximum < 4  # observed bounds of a unit normal sample
    assert not any(column.nullable or column.unique for column in schema.columns)
    assert schema.min_rows == 20  # 5% of 400
    assert schema.format is None

    # What the command prints reads back as the same schema, and the sample passes it.
    reread = parse_schema(yaml.safe_load(to_yaml(schema)), "inferred.yaml")
    assert reread.columns == schema.columns
    assert validate(sample, "churn/next.csv", reread).valid


def test_types_nulls_keys_and_margins_are_inferred() -> None:
    lines = ["id,count,ratio,flag,seen,note,city"]
    for index in range(1, 41):
        note = "" if index % 10 == 0 else f"note {index}"
        seen = f"2026-11-{index % 28 + 1:02d}T10:00:00Z" if index % 2 else f"2026-11-{index % 28 + 1:02d}"
        lines.append(
            f"{index},{index % 7},{index / 4},{'true' if index % 2 else 'false'},{seen},{note},c{index % 3}"
        )
    sample = ("\n".join(lines) + "\n").encode()
    schema = infer(sample, "s.csv", schema_name="shops", margin=0.5, max_allowed=3, min_rows=7)
    columns = {column.name: column for column in schema.columns}
    assert {name: column.type for name, column in columns.items()} == {
        "id": "integer",
        "count": "integer",
        "ratio": "number",
        "flag": "boolean",
        "seen": "datetime",
        "note": "string",
        "city": "string",
    }
    assert columns["id"].unique and not columns["count"].unique  # all distinct over >= 20 rows
    assert (columns["count"].minimum, columns["count"].maximum) == (-3, 9)  # 0..6 widened by half the span
    assert (columns["ratio"].minimum, columns["ratio"].maximum) == (0.25 - 4.875, 10 + 4.875)
    assert columns["note"].nullable and columns["note"].allowed is None  # many distinct values: no list
    assert columns["city"].allowed == ("c0", "c1", "c2")
    assert (schema.name, schema.min_rows) == ("shops", 7)
    assert validate(sample, "s.csv", schema).valid


def test_a_jsonl_sample_and_an_unreadable_one() -> None:
    records = [{"user": f"u{index}", "score": index * 1.5, "active": index % 2 == 0} for index in range(30)]
    sample = gzip.compress("\n".join(json.dumps(record) for record in records).encode())
    schema = infer(sample, "events.jsonl.gz")
    assert [(column.name, column.type) for column in schema.columns] == [
        ("user", "string"),
        ("score", "number"),
        ("active", "boolean"),
    ]
    assert schema.name == "events"
    assert schema.columns[0].unique
    assert validate(sample, "events.jsonl.gz", schema).valid
    with pytest.raises(InvalidInput, match="not a readable gzip file"):
        infer(b"junk", "x.csv.gz")
    with pytest.raises(ValueError, match="margin"):
        infer(sample, "events.jsonl.gz", margin=-1)


def test_infer_command_prints_a_schema_and_check_command_exits_by_verdict(
    tmp_path: Path, make_csv: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_text(make_csv(400))
    assert main(["infer", str(sample), "--name", "churn", "--margin", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Inferred from sample.csv")
    schema_file = tmp_path / "churn.yaml"
    schema_file.write_text(printed)

    assert main(["check", str(schema_file), str(sample)]) == 0
    assert capsys.readouterr().out == "sample.csv: valid (400 rows, schema churn)\n"

    bad = tmp_path / "bad.csv"
    bad.write_text(make_csv(5))
    assert main(["check", str(schema_file), str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [failure["check"] for failure in report["failures"]] == ["rows.min"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: x\n")
    assert main(["check", str(broken), str(sample)]) == 2
    assert "broken.yaml: apiVersion: must be 'mlops.dev/v1'" in capsys.readouterr().err

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["infer", str(empty)]) == 2
    assert "empty: a CSV object needs a header line" in capsys.readouterr().err


def test_the_shipped_schema_accepts_what_the_demo_writes(
    make_csv: Callable[..., str], churn: DataSchema
) -> None:
    # The demo drops several files of the sample; the drift demo shifts the features by up to 2.
    for seed, shift in ((1, 0.0), (2, 1.0), (3, 2.0)):
        assert validate(make_csv(60, seed=seed, shift=shift).encode(), f"churn/{seed}.csv", churn).valid
