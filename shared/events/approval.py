"""An approval decision on a candidate model version (Pub/Sub, a Slack interaction or the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.common import identifier, invalid
from shared.problems import Problems


@dataclass(frozen=True)
class ApprovalDecision:
    """A human decision on a candidate model version, from Pub/Sub, a Slack interaction or the CLI."""

    run_id: str
    model: str
    version: str
    decision: str
    approver: str
    reason: str
    nonce: str
    decided_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


def approval_decision(body: Any) -> ApprovalDecision:
    problems = Problems()
    payload = problems.reader(body)
    decision = payload.string("decision", "", required=True).lower()
    if decision and decision not in ("approve", "reject"):
        payload.add("decision", f"expected approve or reject, got {decision[:40]!r}")
    result = ApprovalDecision(
        run_id=identifier(payload, "run_id"),
        model=payload.string("model", "", required=True),
        version=payload.string("version", "", required=True),
        decision=decision,
        approver=payload.string("approver", "", required=True),
        reason=payload.string("reason", ""),
        nonce=identifier(payload, "nonce", required=False),
        decided_at=payload.timestamp("decided_at"),
        raw=body,
    )
    problems.raise_if_any(invalid("approval decision"))
    return result
