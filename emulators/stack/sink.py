"""A local webhook sink: records every request it receives, so tests and the demo can see what was sent.

* any path records the request and answers 200 ``{"ok": true}``;
* ``/status/CODE/...`` records it and answers ``CODE`` (e.g. ``/status/500/slack`` for a failing webhook);
* ``GET /_sink/requests[?prefix=/hook/slack]`` lists what was recorded, oldest first;
* ``DELETE /_sink/requests`` forgets everything; ``GET /_emulator/health`` is the readiness check.

Run: ``python -m emulators.stack.sink --host 127.0.0.1 --port PORT``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

_records: list[dict[str, Any]] = []
_lock = threading.Lock()


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


@Request.application
def app(request: Request) -> Response:
    path = request.path
    if path == "/_emulator/health":
        return _json({"status": "ok"})
    if path == "/_sink/requests":
        if request.method == "DELETE":
            with _lock:
                _records.clear()
            return _json({"cleared": True})
        prefix = request.args.get("prefix", "")
        with _lock:
            selected = [record for record in _records if record["path"].startswith(prefix)]
        return _json(selected)
    body_bytes = request.get_data()
    body: Any
    try:
        body = json.loads(body_bytes) if body_bytes else None
    except ValueError:
        body = body_bytes.decode("utf-8", errors="replace")
    status = 200
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "status" and parts[1].isdigit():
        status = int(parts[1])
    with _lock:
        _records.append(
            {
                "seq": len(_records) + 1,
                "time": time.time(),
                "method": request.method,
                "path": path,
                "headers": dict(request.headers),
                "body": body,
                "answered": status,
            }
        )
    return _json({"ok": status < 400}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.stack.sink", description="local webhook sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = make_server(args.host, args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"webhook sink listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
