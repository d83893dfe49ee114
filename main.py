"""Every Cloud Functions entry point of this source tree (deploy each with ``--entry-point NAME``).

Importing this module is cheap by design: an entry point's module is imported when the entry point is first
asked for (``main.notify``, or functions-framework's ``getattr(main, target)``), so a deployed function loads
its own path and never the other ten (PEP 562 module ``__getattr__``); heavy clients (Vertex AI, Cloud Run,
Cloud Build) are imported on first use inside ``shared.clients``. The pipeline configuration is validated
here, at cold start: a broken config fails the instance start with an error naming the file and every bad
field, instead of failing (and being retried) event by event.

``ENTRY_POINTS`` is the one list: the name each function is deployed and mounted under and the module that
defines it (``deploy plan`` reads it statically, the function host and tests through ``__all__``).
"""

# ruff: noqa: F822 -- the names in __all__ are provided by the module __getattr__ below (imported lazily)
from __future__ import annotations

import importlib
from typing import Any

from shared.config import get_config

#: entry point -> the module defining it (a function of that name in ``functions/<module>.py``).
ENTRY_POINTS = {
    "notify": "functions.notify",
    "on_approval": "functions.on_approval",
    "on_build_status": "functions.on_build_status",
    "on_chat_approval": "functions.on_chat_approval",
    "on_data_object": "functions.on_data_object",
    "on_drift_alert": "functions.on_drift_alert",
    "on_git_push": "functions.on_git_push",
    "on_training_state": "functions.on_training_state",
    "reconcile": "functions.reconcile",
    "start_rollout": "functions.start_rollout",
    "start_training": "functions.start_training",
}

__all__ = [
    "notify",
    "on_approval",
    "on_build_status",
    "on_chat_approval",
    "on_data_object",
    "on_drift_alert",
    "on_git_push",
    "on_training_state",
    "reconcile",
    "start_rollout",
    "start_training",
]

get_config()


def __getattr__(name: str) -> Any:
    """The entry point ``name``, its module imported now (once: it is kept as a module attribute)."""
    module = ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'main' has no entry point {name!r} (main.__all__ lists them)")
    function = getattr(importlib.import_module(module), name)
    globals()[name] = function
    return function


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
