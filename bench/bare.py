"""The baseline: a functions-framework HTTP function that does nothing but count what it answered.

Served by the same function host as ``main.py`` (and started alone for the cold-start baseline), so the
ratios compare the product with the host and transport it runs on, not with a different server. ``GET``
answers how many ``POST`` s it has seen (the push-subscription baseline counts its deliveries that way).
"""

from __future__ import annotations

import itertools
from typing import Any

import functions_framework

_answered = itertools.count()
_seen = [0]


@functions_framework.http
def bare(request: Any) -> tuple[str, int]:
    if request.method == "GET":
        return str(_seen[0]), 200
    _seen[0] = next(_answered) + 1  # itertools.count is atomic under the GIL: no lock on the hot path
    return "ok", 200


__all__ = ["bare"]
