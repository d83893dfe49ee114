"""Train a classifier on a CSV and write ``model.joblib`` and ``metrics.json`` where Vertex AI says.

    python -m trainer.train --data gs://BUCKET/data/train.csv [--target label] [--model-dir gs://...]
        [--test-fraction 0.25] [--seed 42] [--c 1.0]

The CSV has a header; every column but ``--target`` is a numeric feature. The model directory defaults to
``$AIP_MODEL_DIR`` (which Vertex AI sets from the job's ``baseOutputDirectory``); ``gs://`` paths go
through the ``google-cloud-storage`` client, which reaches the storage emulator when
``STORAGE_EMULATOR_HOST`` is set. Exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


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


def load_csv(data: bytes, target: str) -> tuple[list[str], list[list[float]], list[str]]:
    reader = csv.DictReader(io.StringIO(data.decode()))
    if reader.fieldnames is None or target not in reader.fieldnames:
        raise ValueError(f"the CSV has no target column {target!r} (columns: {reader.fieldnames})")
    features = [name for name in reader.fieldnames if name != target]
    rows: list[list[float]] = []
    labels: list[str] = []
    for number, row in enumerate(reader, start=2):
        try:
            rows.append([float(row[name]) for name in features])
        except (TypeError, ValueError) as error:
            raise ValueError(f"line {number}: non-numeric feature value ({error})") from error
        labels.append(str(row[target]))
    if len(rows) < 10:
        raise ValueError(f"need at least 10 rows to train, got {len(rows)}")
    return features, rows, labels


def train(args: argparse.Namespace) -> dict[str, Any]:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.monotonic()
    features, rows, labels = load_csv(read_bytes(args.data), args.target)
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
        "data": args.data,
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
    parser.add_argument("--data", default=os.environ.get("DATA_URI"), help="CSV URI (gs:// or a path)")
    parser.add_argument("--target", default="label")
    parser.add_argument("--model-dir", default=os.environ.get("AIP_MODEL_DIR"))
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args(argv)
    if not args.data:
        print("trainer: no data: pass --data or set DATA_URI", file=sys.stderr)
        return 2
    if not args.model_dir:
        print("trainer: no model directory: pass --model-dir or set AIP_MODEL_DIR", file=sys.stderr)
        return 2
    try:
        metrics = train(args)
    except ValueError as error:
        print(f"trainer: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"message": "training finished", "model_dir": args.model_dir, **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
