"""The Approve / Reject buttons of an ``approval.requested`` notification, and reading a clicked one back.

A notification carries ``actions`` (docs/events.md): ``[{"name": "approve" | "reject", "title", "style",
"parameters": {"run_id", "model", "version"}}]``. Slack renders each as a block-kit button whose ``value`` is
the parameters as compact JSON; Google Chat as a cardsV2 button whose ``onClick.action`` names the function
and lists the parameters. Both come back to ``on_chat_approval`` carrying exactly what the decision needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidInput

APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)
#: What a button carries: exactly the fields that name the candidate.
PARAMETERS = ("run_id", "model", "version")
#: Slack's limit for a button's ``value``.
MAX_VALUE_CHARS = 2000


def approval_actions(run_id: str, model: str, version: str) -> list[dict[str, Any]]:
    """The ``actions`` of an ``approval.requested`` notification for one candidate."""
    parameters = {"run_id": run_id, "model": model, "version": version}
    return [
        {"name": APPROVE, "title": "Approve", "style": "primary", "parameters": dict(parameters)},
        {"name": REJECT, "title": "Reject", "style": "danger", "parameters": dict(parameters)},
    ]


def button_value(parameters: Mapping[str, str]) -> str:
    """A Slack button's ``value``: the parameters as compact JSON, keys sorted (stable)."""
    return json.dumps(dict(parameters), separators=(",", ":"), sort_keys=True)


def candidate_parameters(raw: Mapping[str, Any], where: str) -> dict[str, str]:
    """The candidate's ``run_id``, ``model`` and ``version`` from a clicked button (all missing named)."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for key in PARAMETERS:
        value = raw.get(key)
        if isinstance(value, str) and value and len(value) <= 512:
            found[key] = value
        else:
            problems.append(f"{where}.{key}: required (a non-empty string of at most 512 characters)")
    if problems:
        raise InvalidInput("approval button", problems)
    return found


def parse_button_value(text: str, where: str) -> dict[str, str]:
    """A Slack button's ``value`` back into the candidate's parameters."""
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidInput("approval button", [f"{where}: over {MAX_VALUE_CHARS} characters"])
    try:
        raw = json.loads(text)
    except ValueError:
        raise InvalidInput("approval button", [f"{where}: not JSON"]) from None
    if not isinstance(raw, dict):
        raise InvalidInput("approval button", [f"{where}: must be a JSON object"])
    return candidate_parameters(raw, where)
