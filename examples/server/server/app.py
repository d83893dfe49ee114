"""A minimal prediction server for the model the sample trainer writes.

    MODEL_URI=gs://BUCKET/.../model/ PORT=8080 python -m server.app

- ``GET /healthz`` → 200 ``{"status": "ok", "model": MODEL_URI}`` once the model is loaded.
- ``POST /predict`` with ``{"instances": [[f1, f2, ...], ...]}`` or ``{"instances": [{"f1": ..}, ..]}`` →
  ``{"predictions": [...], "model": MODEL_URI}``.
- ``MODEL_URI``: a ``gs://`` folder holding ``model.joblib`` (or the file itself), or a local path; read
  through ``google-cloud-storage`` (the storage emulator when ``STORAGE_EMULATOR_HOST`` is set).
- ``ERROR_RATE`` (0..1): share of ``/predict`` requests answered 500 on purpose; ``EXTRA_LATENCY_MS``: delay
  added to each ``/predict`` — knobs for canary analysis tests. ``MODEL_VERSION`` is echoed in responses.
- ``ERROR_MODE``: ``random`` (default: each request fails with probability ERROR_RATE) or ``deterministic``
  (failures spread evenly, exactly ERROR_RATE·N of N requests — for tests that assert a share tightly).
- ``K_REVISION`` (set by Cloud Run) is echoed as ``revision`` in ``/predict`` and ``/healthz`` answers.
- ``SHADOW_CONTROL_URI``: where a shadow rollout's mirror control object appears; while it names another
  revision, a sample of the ``/predict`` requests answered 200 is copied to it and the comparisons are written
  to Cloud Monitoring (``server/shadow.py``).
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server import shadow


def load_model(uri: str) -> dict[str, Any]:
    import joblib

    if not uri.endswith(".joblib"):
        uri = uri.rstrip("/") + "/model.joblib"
    if uri.startswith("gs://"):
        from google.cloud import storage

        bucket, _, path = uri[len("gs://") :].partition("/")
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"), credentials=AnonymousCredentials()
            )
        else:
            client = storage.Client()
        data = client.bucket(bucket).blob(path).download_as_bytes()
    else:
        with open(uri, "rb") as handle:
            data = handle.read()
    loaded: dict[str, Any] = joblib.load(io.BytesIO(data))
    return loaded


class Predictor:
    def __init__(self, bundle: dict[str, Any], model_uri: str) -> None:
        self.model = bundle["model"]
        self.features: list[str] = list(bundle["features"])
        self.model_uri = model_uri
        self.version = os.environ.get("MODEL_VERSION", "")
        self.error_rate = float(os.environ.get("ERROR_RATE", "0") or 0)
        self.extra_latency = float(os.environ.get("EXTRA_LATENCY_MS", "0") or 0) / 1000.0
        self.error_mode = os.environ.get("ERROR_MODE", "random") or "random"
        if self.error_mode not in ("random", "deterministic"):
            raise ValueError(f"ERROR_MODE must be random or deterministic, not {self.error_mode!r}")
        self.revision = os.environ.get("K_REVISION", "")
        self._error_credit = 0.0
        self._error_lock = threading.Lock()

    def should_fail(self) -> bool:
        """Whether this /predict request is one of the ERROR_RATE share answered 500 on purpose."""
        if self.error_rate <= 0:
            return False
        if self.error_mode == "random":
            return random.random() < self.error_rate
        with self._error_lock:
            self._error_credit += self.error_rate
            if self._error_credit >= 1.0 - 1e-9:
                self._error_credit -= 1.0
                return True
            return False

    def rows(self, instances: Any) -> list[list[float]]:
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list')
        rows = []
        for instance in instances:
            if isinstance(instance, dict):
                rows.append([float(instance[name]) for name in self.features])
            elif isinstance(instance, list) and len(instance) == len(self.features):
                rows.append([float(value) for value in instance])
            else:
                raise ValueError(
                    f"each instance needs {len(self.features)} values ({', '.join(self.features)})"
                )
        return rows

    def predict(self, instances: Any) -> list[Any]:
        return [str(label) for label in self.model.predict(self.rows(instances))]


def make_handler(predictor: Predictor, mirror: shadow.Mirror | None = None) -> type[BaseHTTPRequestHandler]:
    """The request handler; ``mirror`` (a ``shadow.Mirror``) is offered every /predict answered 200."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/healthz":
                self._send(
                    200,
                    {
                        "status": "ok",
                        "model": predictor.model_uri,
                        "version": predictor.version,
                        "revision": predictor.revision,
                    },
                )
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/predict":
                self._send(404, {"error": f"no route {self.path}"})
                return
            if predictor.extra_latency:
                time.sleep(predictor.extra_latency)
            if predictor.should_fail():
                self._send(500, {"error": "injected error (ERROR_RATE)", "revision": predictor.revision})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                request = json.loads(raw or b"{}")
                predictions = predictor.predict(request.get("instances"))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                self._send(400, {"error": str(error)})
                return
            self._send(
                200,
                {
                    "predictions": predictions,
                    "model": predictor.model_uri,
                    "version": predictor.version,
                    "revision": predictor.revision,
                },
            )
            # After the answer is sent: a copy never delays the user. Copies are not copied again.
            if mirror is not None and not self.headers.get(shadow.MIRROR_HEADER):
                mirror.offer(raw, predictions)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def main() -> int:
    model_uri = os.environ.get("MODEL_URI", "")
    if not model_uri:
        print("server: MODEL_URI is not set", file=sys.stderr)
        return 2
    try:
        predictor = Predictor(load_model(model_uri), model_uri)
    except Exception as error:
        print(f"server: cannot load the model from {model_uri}: {error}", file=sys.stderr)
        return 1
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "0.0.0.0")
    mirror = shadow.from_env()
    if mirror is not None:
        mirror.start()
    server = ThreadingHTTPServer((host, port), make_handler(predictor, mirror))
    print(json.dumps({"message": "serving", "port": port, "model": model_uri}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
