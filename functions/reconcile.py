"""``reconcile`` (HTTP): Cloud Scheduler's tick — learn what events cannot tell, emit what is missing.

Cloud Scheduler (the local stack's ticker) POSTs here every minute (locally every 2 s). One tick walks the
unfinished runs through the stages' ``poll_run`` hooks and closes due data batches and drift windows
(:mod:`shared.chain.reconcile`). The answer is JSON: runs walked, what was emitted, failures, duration;
200, or 500 when something transient failed (after the tick did all it could), so Scheduler's retry and
error metrics see it. Overlapping ticks are safe: every emission is an idempotent step.

In the cloud the function is private (``--no-allow-unauthenticated``): Scheduler calls it with an OIDC token
of a service account holding ``roles/run.invoker`` on it (docs/wiring.md), so the function checks nothing
itself.
"""

from __future__ import annotations

import json
from typing import Any

import functions_framework

from shared.chain.reconcile import tick
from shared.runtime import get_runtime

_JSON = {"Content-Type": "application/json"}


@functions_framework.http
def reconcile(request: Any) -> tuple[str, int, dict[str, str]]:
    """Entry point: one reconcile tick per POST (the body is ignored)."""
    if request.method != "POST":
        return json.dumps({"error": "a tick is POSTed"}), 405, {**_JSON, "Allow": "POST"}
    report = tick(get_runtime())
    return json.dumps(report.to_json()), report.http_status, _JSON
