"""The sample trainer: several data files (flags, a manifest, the environment) trained as one table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

TRAINER = Path(__file__).resolve().parents[4] / "examples" / "trainer"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load("sample_trainer_train", TRAINER / "trainer" / "train.py")
make_data = _load("sample_trainer_make_data", TRAINER / "make_data.py")


def test_data_uris_come_from_repeated_flags_in_order_and_are_never_split_on_commas() -> None:
    uris = train.data_uris(["gs://b/churn/a.csv", "gs://b/churn/with,comma.csv"], None, {"DATA_URI": "x"})
    assert uris == ["gs://b/churn/a.csv", "gs://b/churn/with,comma.csv"]


def test_a_manifest_adds_its_lines_after_the_flags() -> None:
    listed = {"gs://b/m.txt": b"gs://b/churn/b.csv\n\n  gs://b/churn/c.csv  \n"}
    uris = train.data_uris(["gs://b/churn/a.csv"], "gs://b/m.txt", {}, read=listed.__getitem__)
    assert uris == ["gs://b/churn/a.csv", "gs://b/churn/b.csv", "gs://b/churn/c.csv"]


def test_without_flags_the_environment_names_the_data() -> None:
    assert train.data_uris(None, None, {"DATA_URIS": "gs://b/1.csv\ngs://b/2.csv\n"}) == [
        "gs://b/1.csv",
        "gs://b/2.csv",
    ]
    assert train.data_uris(None, None, {"DATA_URI": "gs://b/only.csv"}) == ["gs://b/only.csv"]
    assert train.data_uris(None, None, {}) == []


def test_files_are_concatenated_by_column_name() -> None:
    first = b"f1,f2,label\n" + b"".join(f"{i},{-i},yes\n".encode() for i in range(6))
    second = b"label,f2,f1\n" + b"".join(f"no,{i},{10 + i}\n".encode() for i in range(6))
    features, rows, labels = train.load_rows([("a.csv", first), ("b.csv", second)], "label")
    assert features == ["f1", "f2"]
    assert len(rows) == 12 and rows[6] == [10.0, 0.0]
    assert labels[:6] == ["yes"] * 6 and labels[6:] == ["no"] * 6


def test_json_lines_files_are_read_too() -> None:
    lines = "".join(json.dumps({"f1": i, "label": "yes" if i % 2 else "no"}) + "\n" for i in range(10))
    features, rows, labels = train.load_rows([("part.jsonl", lines.encode())], "label")
    assert features == ["f1"] and len(rows) == 10 and labels[1] == "yes"


def test_files_with_different_features_are_refused_naming_the_file() -> None:
    first = b"f1,label\n" + b"1,yes\n" * 10
    with pytest.raises(ValueError, match=r"b\.csv has features"):
        train.load_rows([("a.csv", first), ("b.csv", b"f9,label\n1,no\n")], "label")


def test_too_few_rows_in_all_files_together_is_refused() -> None:
    part = b"f1,label\n1,yes\n2,no\n"
    with pytest.raises(ValueError, match="at least 10 rows"):
        train.load_rows([("a.csv", part), ("b.csv", part)], "label")


def test_trains_on_several_files_and_writes_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(make_data.make_csv(rows=150, seed=1))
    second.write_text(make_data.make_csv(rows=150, seed=2))
    model_dir = tmp_path / "model"
    code = train.main(["--data", str(first), "--data", str(second), "--model-dir", str(model_dir)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["rows_train"] + metrics["rows_test"] == 300
    assert metrics["data_files"] == 2 and metrics["data"] == f"{first},{second}"
    assert metrics["accuracy"] > 0.8
    assert (model_dir / "model.joblib").stat().st_size > 100


def test_the_single_uri_forms_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text(make_data.make_csv(rows=120))
    assert train.main(["--data", str(data), "--model-dir", str(tmp_path / "one")]) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["data"] == str(data)
    monkeypatch.setenv("DATA_URI", str(data))
    monkeypatch.setenv("AIP_MODEL_DIR", str(tmp_path / "env"))
    monkeypatch.delenv("DATA_URIS", raising=False)
    assert train.main([]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "env" / "metrics.json").read_text())["data_files"] == 1


def test_no_data_at_all_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_URI", raising=False)
    monkeypatch.delenv("DATA_URIS", raising=False)
    assert train.main(["--model-dir", str(tmp_path)]) == 2
