"""The function host: every entry point of ``main.py`` served through functions-framework in one process.

Each entry point ``NAME`` is mounted at ``/NAME`` (so ``FUNCTIONS_URL/NAME``); the rest of the path is passed
on, which is how a push subscription's endpoint ``.../NAME/projects/P/topics/T`` gives functions-framework the
topic for the CloudEvent source. ``--extra-source FILE`` mounts the entry points listed in that file's
``__all__`` too (test targets). ``GET /_emulator/health`` lists what is mounted.

``EMULATORS_DUPLICATE_DELIVERIES=N`` (or ``--duplicate-deliveries N``) makes the host run every request to a
function N more times, concurrently with the one it answers: at-least-once delivery made certain, so tests can
show that every handler is idempotent (the duplicates' answers are logged, not returned).

Run: ``python -m emulators.stack.function_host --host 127.0.0.1 --port PORT [--source main.py]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import functions_framework
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def entry_points(source: Path) -> list[str]:
    """The names in ``__all__`` of the source file (``main.py`` exports every entry point there)."""
    spec = importlib.util.spec_from_file_location(f"_entry_points_{source.stem}", source)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(source.parent.resolve()))
    spec.loader.exec_module(module)
    names = getattr(module, "__all__", None)
    if not names:
        raise SystemExit(f"{source} has no __all__ listing its entry points")
    return [str(name) for name in names]


def build_app(sources: list[Path]) -> tuple[_Dispatcher, list[str]]:
    mounts: dict[str, Any] = {}
    for source in sources:
        for name in entry_points(source):
            if name in mounts:
                raise SystemExit(f"entry point {name!r} defined twice")
            mounts[f"/{name}"] = functions_framework.create_app(  # type: ignore[no-untyped-call]
                target=name, source=str(source)
            )
    names = sorted(mount.lstrip("/") for mount in mounts)

    @Request.application
    def root(request: Request) -> Response:
        if request.path == "/_emulator/health":
            return Response(json.dumps({"status": "ok", "entry_points": names}), mimetype="application/json")
        return Response(
            json.dumps({"error": f"no entry point at {request.path}", "entry_points": names}),
            status=404,
            mimetype="application/json",
        )

    return _Dispatcher(root, mounts), names


class _Dispatcher:
    """Route ``/NAME[/rest]`` to the app mounted at ``/NAME`` with ``PATH_INFO`` = ``/rest`` (or ``/``).

    werkzeug's DispatcherMiddleware leaves ``PATH_INFO`` empty for ``/NAME`` itself, and Flask answers that
    with a 308 redirect, which a push subscription or Eventarc would count as a failed delivery.
    """

    def __init__(self, root: Any, mounts: dict[str, Any], duplicates: int = 0) -> None:
        self.root = root
        self.mounts = mounts
        self.duplicates = duplicates

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") or "/"
        head, _, rest = path.lstrip("/").partition("/")
        app = self.mounts.get(f"/{head}")
        if app is None:
            return self.root(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/{head}"
        environ["PATH_INFO"] = f"/{rest}"
        if self.duplicates and environ.get("REQUEST_METHOD") == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            for copy in range(self.duplicates):
                twin = dict(environ, **{"wsgi.input": io.BytesIO(body)})
                threading.Thread(
                    target=_run_twin, args=(app, twin, f"/{head}", copy + 1), daemon=True
                ).start()
        return app(environ, start_response)


def _run_twin(app: Any, environ: dict[str, Any], mount: str, copy: int) -> None:
    """Run a duplicate delivery to completion and log its status (its answer goes nowhere)."""
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc_info: Any = None) -> Any:
        status.append(line)
        return lambda _data: None

    try:
        for _chunk in app(environ, start_response):
            pass
    except Exception as error:  # the twin's failure is the point of the exercise: log it, never raise
        status.append(f"raised {type(error).__name__}: {error}")
    print(json.dumps({"duplicate_delivery": mount, "copy": copy, "status": status[:1]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.stack.function_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="main.py", type=Path)
    parser.add_argument("--extra-source", action="append", default=[], type=Path)
    parser.add_argument(
        "--duplicate-deliveries",
        type=int,
        default=int(os.environ.get("EMULATORS_DUPLICATE_DELIVERIES", "0") or 0),
        help="run every POST to a function this many more times, concurrently (idempotency tests)",
    )
    args = parser.parse_args()
    app, names = build_app([args.source, *args.extra_source])
    app.duplicates = max(0, args.duplicate_deliveries)
    server = make_server(args.host, args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"function host on http://{args.host}:{args.port}: {', '.join(names)}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
