"""``approve RUN_ID --by WHO [--reason ...]`` and ``reject RUN_ID --by WHO [--reason ...]``.

The command does not decide: it publishes the approval decision contract (``shared.events.approval``) on
the approvals topic, with ``"channel": "cli"`` and a fresh nonce, so ``on_approval`` applies it exactly as
it applies a Pub/Sub or automatic decision (allow-list, superseded, already decided: one path). The model
and version come from the run's ``registry:version`` step.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from shared.chain.evaluation import APPROVAL_DECISION, REGISTERED, BareMessage
from shared.events import approval_decision
from shared.runtime import Runtime

#: How long one ledger read or the publication may take.
CALL_SECONDS = 15.0


def decision_body(runtime: Runtime, run_id: str, decision: str, approver: str, reason: str) -> dict[str, Any]:
    """The contract JSON for the run's candidate; ``OperatorError`` when the run has none."""
    from shared.operator.cli import OperatorError  # cli imports this module

    run = runtime.ledger.get_run(run_id, timeout=CALL_SECONDS)
    if run is None:
        raise OperatorError(
            f"no run {run_id!r} in the ledger (`python -m shared.operator runs` lists the latest)"
        )
    step = run.step(REGISTERED)
    result = step.detail.get("result") if step is not None else None
    if not isinstance(result, dict) or not result.get("version"):
        raise OperatorError(f"run {run_id} registered no candidate model version: nothing to {decision}")
    model = str(result.get("model", "")).rsplit("/", 1)[-1]
    body: dict[str, Any] = {
        "run_id": run_id,
        "model": model,
        "version": str(result["version"]),
        "decision": decision,
        "approver": approver,
        "reason": reason,
        "nonce": f"cli-{uuid.uuid4().hex}",
        "decided_at": runtime.clock().isoformat().replace("+00:00", "Z"),
        "channel": "cli",
    }
    approval_decision(body)  # the contract's own check: what we publish is what on_approval accepts
    return body


def _decide(args: argparse.Namespace, runtime: Runtime) -> int:
    body = decision_body(runtime, args.run_id, args.decision, args.by, args.reason)
    topic = runtime.config.topic_for(APPROVAL_DECISION)
    message = BareMessage(
        type=APPROVAL_DECISION, run_id=args.run_id, event_id=body["nonce"], data={}, body=body
    )
    message_id = runtime.publisher.publish(topic, message)
    print(json.dumps({"published": body, "topic": topic, "message_id": message_id}, indent=2))
    return 0


def _register(commands: Any, decision: str, help_text: str) -> None:
    parser = commands.add_parser(decision, help=help_text)
    parser.add_argument("run_id", help="the run whose candidate model version is decided on")
    parser.add_argument("--by", required=True, help="who decides (checked against the model's approvers)")
    parser.add_argument("--reason", default="", help="why (shown in the notification)")
    parser.set_defaults(handler=_decide, decision=decision)


def register_approve(commands: Any) -> None:
    _register(commands, "approve", "approve a run's candidate (published on the approvals topic)")


def register_reject(commands: Any) -> None:
    _register(commands, "reject", "reject a run's candidate (published on the approvals topic)")
