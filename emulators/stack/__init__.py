"""The local stack: the official Pub/Sub and Firestore emulators, our API emulators, a webhook sink, the
function host, and the eventing that connects them — started on free loopback ports, stopped by PID.

- :mod:`.components`: the table of what can run (how to start it, its readiness check, the variables it
  exports, what it waits for) and the start order derived from it;
- :mod:`.launcher`: :class:`Stack`, the one launcher (``python -m emulators up|down|status|env``, the demo,
  the tests' fixtures); :mod:`.state`: what ``stack.json`` in the run folder records;
- :mod:`.official`: the Cloud CLI's emulator launchers; :mod:`.eventing`: topics and push subscriptions from
  the pipeline config (Eventarc's part); :mod:`.function_host`: every entry point of ``main.py`` behind one
  port; :mod:`.sink`: the webhook stand-in that records what it receives.

State lives in a run folder (default ``.run/`` in the checkout, ``EMULATORS_RUN_DIR`` overrides):
``stack.json`` records every process (PID = process-group id), port and log file; logs go to ``logs/``.
"""

from __future__ import annotations

from emulators.common.proc import StackError
from emulators.stack.components import (
    API_EMULATORS,
    COMPONENTS,
    HOST,
    ROOT,
    TABLE,
    ComponentSpec,
    ExtraPort,
    Launch,
    Progress,
)
from emulators.stack.launcher import DEFAULT_PROJECT, Stack, applied_env, default_run_dir
from emulators.stack.state import Component, StackState

__all__ = [
    "API_EMULATORS",
    "COMPONENTS",
    "DEFAULT_PROJECT",
    "HOST",
    "ROOT",
    "TABLE",
    "Component",
    "ComponentSpec",
    "ExtraPort",
    "Launch",
    "Progress",
    "Stack",
    "StackError",
    "StackState",
    "applied_env",
    "default_run_dir",
]
