"""Train a classifier on one or more data files and write ``model.joblib`` and ``metrics.json`` where Vertex
AI says.

    python -m trainer.train --data gs://BUCKET/data/train.csv [--data gs://BUCKET/data/more.csv ...]
        [--data-list gs://BUCKET/runs/RUN/data-uris.txt] [--target label] [--model-dir gs://...]
        [--test-fraction 0.25] [--seed 42] [--c 1.0]

Data: every ``--data`` names one object (repeat it for several), ``--data-list`` names a text object listing
URIs one per line (for batches too long for a command line); without either, ``$DATA_URIS`` (one URI per
line) or ``$DATA_URI`` (one). The model is trained on the concatenation of every file, in the order given.
Lists are split on newlines, never on commas: a Cloud Storage object name may hold a comma but no newline.
A file is CSV with a header, or JSON Lines when its name ends in ``.jsonl``/``.ndjson``; every file must have
the same columns, and every column but ``--target`` is a numeric feature. The model directory defaults to
``$AIP_MODEL_DIR`` (which Vertex AI sets from the job's ``baseOutputDirectory``); ``gs://`` paths go through
the ``google-cloud-storage`` client, which reaches the storage emulator when ``STORAGE_EMULATOR_HOST`` is set.
Exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def _split_gs(uri: str) -> tuple[str, str]:
    bucket, _, path = uri[len("gs://") :].partition("/")
    if not bucket:
        raise ValueError(f"invalid gs:// URI {uri!r}")
    return bucket, path


def _storage_client() -> Any:
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("CLOUD_ML_PROJECT_ID", "local"), credentials=AnonymousCredentials()
        )
    return storage.Client()


def read_bytes(uri: str) -> bytes:
    if uri.startswith("gs://"):
        bucket, path = _split_gs(uri)
        data: bytes = _storage_client().bucket(bucket).blob(path).download_as_bytes()
        return data
    return Path(uri).read_bytes()


def write_bytes(uri: str, data: bytes, content_type: str) -> None:
    if uri.startswith("gs://"):
        bucket, path = _split_gs(uri)
        _storage_client().bucket(bucket).blob(path).upload_from_string(data, content_type=content_type)
        return
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    Path(uri).write_bytes(data)


def uri_lines(text: str) -> list[str]:
    """URIs listed one per line (blank lines and surrounding spaces ignored)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def data_uris(
    data: Sequence[str] | None, data_list: str | None, env: Mapping[str, str], read: Any = read_bytes
) -> list[str]:
    """The files to train on: ``--data`` values, then the ``--data-list`` entries; else the environment."""
    uris = list(data or [])
    if data_list:
        uris += uri_lines(read(data_list).decode())
    if not uris and not data_list:
        uris = uri_lines(env.get("DATA_URIS", "")) or uri_lines(env.get("DATA_URI", ""))
    return uris


def read_records(data: bytes, uri: str) -> tuple[list[str], list[Mapping[str, Any]]]:
    """The columns and rows of one file (CSV with a header, or JSON Lines)."""
    text = data.decode()
    if uri.lower().endswith(JSON_LINES_SUFFIXES):
        records: list[Mapping[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{uri} line {number}: not JSON ({error})") from error
            if not isinstance(record, dict):
                raise ValueError(f"{uri} line {number}: not a JSON object")
            records.append(record)
        return (list(records[0]) if records else []), records
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def load_rows(
    files: Sequence[tuple[str, bytes]], target: str
) -> tuple[list[str], list[list[float]], list[str]]:
    """Features, feature rows and labels of every file concatenated; the first file sets the column order."""
    features: list[str] = []
    rows: list[list[float]] = []
    labels: list[str] = []
    for index, (uri, data) in enumerate(files):
        columns, records = read_records(data, uri)
        if target not in columns:
            raise ValueError(f"{uri} has no target column {target!r} (columns: {columns})")
        names = [name for name in columns if name != target]
        if index == 0:
            features = names
        elif sorted(names) != sorted(features):
            raise ValueError(f"{uri} has features {names}, the first file has {features}")
        for number, record in enumerate(records, start=2):
            try:
                rows.append([float(record[name]) for name in features])
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{uri} row {number}: missing or non-numeric feature ({error})") from error
            labels.append(str(record.get(target)))
    if len(rows) < 10:
        raise ValueError(f"need at least 10 rows to train, got {len(rows)}")
    return features, rows, labels


def load_csv(data: bytes, target: str) -> tuple[list[str], list[list[float]], list[str]]:
    """One CSV file (the single-file form)."""
    return load_rows([("data.csv", data)], target)


def train(args: argparse.Namespace) -> dict[str, Any]:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.monotonic()
    uris: list[str] = args.data
    features, rows, labels = load_rows([(uri, read_bytes(uri)) for uri in uris], args.target)
    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels)
    if len(set(labels)) < 2:
        raise ValueError("the target column has a single class; nothing to learn")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_fraction, random_state=args.seed, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=1000))
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 6),
        "rows_train": len(y_train),
        "rows_test": len(y_test),
        "features": features,
        "classes": sorted(set(labels)),
        # One URI as before; several joined by commas (the list itself is in the job's arguments).
        "data": args.data_list or ",".join(uris),
        "data_files": len(uris),
        "train_seconds": round(time.monotonic() - started, 3),
    }
    model_dir = args.model_dir.rstrip("/")
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": features}, buffer)
    write_bytes(f"{model_dir}/model.joblib", buffer.getvalue(), "application/octet-stream")
    write_bytes(f"{model_dir}/metrics.json", json.dumps(metrics, indent=2).encode(), "application/json")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", action="append", help="a data file URI (gs:// or a path); repeat for several"
    )
    parser.add_argument("--data-list", help="a text file (gs:// or a path) listing data URIs, one per line")
    parser.add_argument("--target", default="label")
    parser.add_argument("--model-dir", default=os.environ.get("AIP_MODEL_DIR"))
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args(argv)
    if not args.model_dir:
        print("trainer: no model directory: pass --model-dir or set AIP_MODEL_DIR", file=sys.stderr)
        return 2
    try:
        args.data = data_uris(args.data, args.data_list, os.environ)
        if not args.data:
            print(
                "trainer: no data: pass --data or --data-list, or set DATA_URIS or DATA_URI", file=sys.stderr
            )
            return 2
        metrics = train(args)
    except ValueError as error:
        print(f"trainer: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"message": "training finished", "model_dir": args.model_dir, **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
