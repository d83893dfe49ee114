"""Synthetic runs for the status page tests: a push run from cause to a promoted canary, in the step shapes
the chain records (ROLLOUT.md's ``rollout:step:<n>`` detail), and a run that has not reached a rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.ledger import InMemoryLedger, RunStatus, StepStatus

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PUSH_RUN = "push-acme-ml-0123456789ab"
DATA_RUN = "data-churn-batch-7"
STABLE = "churn-predictor-00003-stable"
CANDIDATE = "churn-predictor-push-acme-ml-0123456789ab"
#: A revision name that is markup: the page must show it as text.
HOSTILE = '<img src=x onerror="alert(1)">'


class Clock:
    """The ledger's clock, moved by the builder (seconds after T0)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


def canary_step(
    percent: int,
    verdict: str,
    stable: tuple[int, float | None, float | None],
    candidate: tuple[int, float | None, float | None],
    reasons: list[str] | None = None,
) -> dict[str, Any]:
    """A ``rollout:step:<n>`` detail: (requests, share_5xx, p95_ms) per revision."""

    def numbers(role: str, values: tuple[int, float | None, float | None]) -> dict[str, Any]:
        return {"role": role, "requests": values[0], "share_5xx": values[1], "p95_ms": values[2]}

    return {
        "key": f"rollout/churn-predictor/{PUSH_RUN}/{percent}",
        "result": {
            "strategy": "canary",
            "percent": percent,
            "revisions": {STABLE: numbers("stable", stable), CANDIDATE: numbers("candidate", candidate)},
            "verdict": verdict,
            "reasons": reasons or [],
        },
    }


def ledger_with_runs(clock: Clock | None = None) -> InMemoryLedger:
    """A push run that built, trained, passed its gate, was approved and canaried 10 → 50 → 100 (the 10% step
    inconclusive once, the candidate's p95 missing in it), promoted after an approval that waited 2 hours;
    and a data run still training."""
    clock = clock or Clock()
    ledger = InMemoryLedger(clock=clock)
    ledger.start_run(
        PUSH_RUN,
        cause={"cause": "push", "repo": "acme/ml", "commit": "0123456789ab" * 3, "branch": "main"},
        labels={"model": "churn", "repo": "acme-ml"},
    )

    def record(seconds: float, name: str, status: StepStatus, detail: dict[str, Any]) -> None:
        clock.at(seconds)
        ledger.record_step(PUSH_RUN, name, status, detail)

    record(1, "build:trainer", StepStatus.STARTED, {"result": {"build_id": "b-trainer"}})
    record(2, "build:server", StepStatus.STARTED, {"result": {"build_id": "b-server"}})
    record(38, "build:trainer", StepStatus.SUCCEEDED, {"result": {"status": "SUCCESS"}})
    record(44, "build:server", StepStatus.SUCCEEDED, {"result": {"status": "SUCCESS"}})
    record(45, "image:trainer", StepStatus.SUCCEEDED, {"result": {"image": "trainer@sha256:aaa"}})
    record(45.5, "image:server", StepStatus.SUCCEEDED, {"result": {"image": "server@sha256:bbb"}})
    record(
        46,
        "notify:build.succeeded:ml-team-slack:b-trainer:succeeded",
        StepStatus.SUCCEEDED,
        {"result": {"channel": "ml-team-slack"}},
    )
    record(47, "training:submitted", StepStatus.SUCCEEDED, {"result": {"job": "jobs/42"}})
    record(
        290,
        "training:state",
        StepStatus.SUCCEEDED,
        {"result": {"state": "JOB_STATE_SUCCEEDED", "output_dir": "gs://p-artifacts/runs/x/"}},
    )
    record(292, "gate", StepStatus.SUCCEEDED, {"result": {"passed": True, "metrics": {"auc": 0.91}}})
    record(
        293,
        "registry:version",
        StepStatus.SUCCEEDED,
        {"result": {"model": "churn", "version": "7", "aliases": ["candidate"]}},
    )
    record(
        294,
        "notify:approval.requested:ml-team-slack:approval-7",
        StepStatus.SUCCEEDED,
        {"result": {"channel": "ml-team-slack"}},
    )
    approved = 294 + 2 * 3600  # a human took two hours
    record(
        approved,
        "approval:decided",
        StepStatus.SUCCEEDED,
        {"result": {"decision": "approved", "approver": "alice@example.com", "channel": "slack"}},
    )
    record(approved + 2, "rollout:started", StepStatus.SUCCEEDED, {"result": {"service": "churn-predictor"}})
    record(
        approved + 9,
        "rollout:step:1",
        StepStatus.SUCCEEDED,
        canary_step(10, "inconclusive", (180, 0.0, 41.0), (12, 0.0, None), ["candidate: 12 requests < 20"]),
    )
    record(
        approved + 16,
        "rollout:step:2",
        StepStatus.SUCCEEDED,
        canary_step(10, "healthy", (190, 0.0, 42.5), (24, 0.0, 47.0)),
    )
    record(
        approved + 23,
        "rollout:step:3",
        StepStatus.SUCCEEDED,
        canary_step(50, "healthy", (104, 0.0096, 44.0), (101, 0.0198, 52.0)),
    )
    record(
        approved + 30,
        "rollout:step:4",
        StepStatus.SUCCEEDED,
        canary_step(100, "healthy", (0, None, None), (205, 0.0049, 49.5)),
    )
    record(
        approved + 31,
        "rollout:promoted",
        StepStatus.SUCCEEDED,
        {"result": {"revision": CANDIDATE, "traffic": {CANDIDATE: 100}, "champion": "7"}},
    )
    record(
        approved + 32,
        "notify:rollout.promoted:ml-team-slack:rollout-7",
        StepStatus.FAILED,
        {"error": "channel ml-team-slack: HTTP 404 from the webhook"},
    )
    clock.at(approved + 33)
    ledger.finish_run(PUSH_RUN, RunStatus.SUCCEEDED)

    clock.at(approved + 40)
    ledger.start_run(DATA_RUN, cause={"cause": "data", "dataset": "churn"}, labels={"model": "churn"})
    clock.at(approved + 41)
    ledger.record_step(DATA_RUN, "batch:closed", StepStatus.SUCCEEDED, {"result": {"members": 3}})
    clock.at(approved + 42)
    ledger.record_step(DATA_RUN, "training:submitted", StepStatus.SUCCEEDED, {"result": {"job": "jobs/43"}})
    clock.at(approved + 43)
    ledger.record_step(DATA_RUN, "training:state", StepStatus.STARTED, {"result": {"state": "RUNNING"}})
    return ledger


#: When the page is made: a little after the data run's last step.
NOW = T0 + timedelta(seconds=294 + 2 * 3600 + 100)
