"""Smoke checks: the configured requests sent to a candidate's tag URL before any user is routed to it.

Each :class:`~shared.rolloutconfig.SmokeCheck` is one request (JSON body when given); it passes when the
status is the expected one, the answer is a JSON object holding every ``expectJson`` field, and it came
within ``maxLatency``. A transport error is a failed check with its reason, never an exception: the rollout
decides on the outcome (:class:`~shared.rollout.machine.SmokeOutcome`), and no answer is not a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from shared.rollout.machine import SmokeOutcome
from shared.rolloutconfig import SmokeCheck

#: The most one smoke request may take when its check sets no ``maxLatency``.
DEFAULT_TIMEOUT_SECONDS = 10.0

Send = Callable[..., Any]  # requests.request-like: (method, url, json=, timeout=) -> response


def run_checks(base_url: str, checks: Sequence[SmokeCheck], send: Send | None = None) -> SmokeOutcome:
    """Every check against ``base_url`` (the tag URL); passed only when each check passed."""
    if send is None:
        import requests

        send = requests.request
    results = [_run(base_url.rstrip("/"), check, send) for check in checks]
    return SmokeOutcome(passed=all(result["ok"] for result in results), checks=tuple(results))


def _run(base: str, check: SmokeCheck, send: Send) -> dict[str, Any]:
    url = base + check.path
    timeout = check.max_latency_seconds or DEFAULT_TIMEOUT_SECONDS
    began = time.monotonic()
    try:
        response = send(
            check.method, url, json=check.body, timeout=max(timeout * 2, 1.0), allow_redirects=False
        )
    except Exception as error:  # any transport failure is the check's failure, with its reason
        return _result(check, url, None, None, f"{check.method} {url}: no answer ({type(error).__name__})")
    latency_ms = (time.monotonic() - began) * 1000.0
    status = int(response.status_code)
    if status != check.expect_status:
        return _result(
            check, url, status, latency_ms, f"{check.path} answered {status}, not {check.expect_status}"
        )
    if check.expect_json:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _result(check, url, status, latency_ms, f"{check.path} did not answer a JSON object")
        missing = [name for name in check.expect_json if name not in body]
        if missing:
            return _result(check, url, status, latency_ms, f"{check.path} answer lacks {', '.join(missing)}")
    if check.max_latency_seconds is not None and latency_ms > check.max_latency_seconds * 1000.0:
        limit = check.max_latency_seconds * 1000.0
        return _result(
            check, url, status, latency_ms, f"{check.path} took {latency_ms:.0f} ms > {limit:.0f} ms"
        )
    return _result(check, url, status, latency_ms, "", ok=True)


def _result(
    check: SmokeCheck,
    url: str,
    status: int | None,
    latency_ms: float | None,
    reason: str,
    *,
    ok: bool = False,
) -> dict[str, Any]:
    return {
        "path": check.path,
        "method": check.method,
        "url": url,
        "status": status,
        "latency_ms": round(latency_ms, 1) if latency_ms is not None else None,
        "ok": ok,
        "reason": reason or f"{check.path} answered {status} in {latency_ms or 0:.0f} ms",
    }
