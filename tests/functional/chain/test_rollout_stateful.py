"""Property: whatever the sequence of requests, ticks (duplicated), faults and operator commands, the
service's traffic always sums to 100 over at most two revisions, and only one rollout per service is live."""

from __future__ import annotations

import contextlib
import json
from contextlib import ExitStack

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shared.chain import rollout
from shared.errors import InvalidInput, TransientError
from shared.ledger import RunStatus
from shared.ports.deployments import revision_name
from shared.ports.errors import Conflict, NotFound
from shared.rollout.machine import CommandAction
from shared.rolloutconfig import SHADOW_METRIC
from tests.functional.chain.rollout_support import (
    PROJECT,
    SERVICE,
    Behaviour,
    World,
    candidate_request,
    world,
)

CONTROL = f"rollouts/{SERVICE}/shadow.json"

pytestmark = pytest.mark.functional

FAULTS = {
    "unavailable": TransientError("UNAVAILABLE: try again"),
    "aborted": Conflict("ABORTED: the etag is stale"),
}


class Rollouts(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.env: World = self.stack.enter_context(world())
        self.runs: list[str] = []
        self.strategies: dict[str, str] = {}

    @initialize()
    def first(self) -> None:
        self.request(2)

    def request(self, version: int, strategy: str = "") -> None:
        run_id = f"run-{version}"
        self.runs.append(run_id)
        self.strategies[run_id] = strategy
        with contextlib.suppress(TransientError):
            rollout.start(self.env.runtime, run_id, candidate_request(str(version), strategy=strategy))

    @rule(strategy=st.sampled_from(["", "shadow", "blue_green"]))
    def newer_candidate(self, strategy: str) -> None:
        self.request(len(self.runs) + 2, strategy)

    @rule(which=st.integers(min_value=0, max_value=10))
    def redelivered_request(self, which: int) -> None:
        run_id = self.runs[which % len(self.runs)]
        request = candidate_request(run_id.removeprefix("run-"), strategy=self.strategies[run_id])
        with contextlib.suppress(TransientError):
            rollout.start(self.env.runtime, run_id, request)

    @rule(agree=st.booleans())
    def shadow_copies(self, agree: bool) -> None:
        """What a stable serving image does while the mirror is on: copies answered, their comparison."""
        control = self.mirror()
        if control is None:
            return
        at = self.env.clock.now
        self.env.ports.metrics.record_many(SERVICE, control["candidate"], 30, at=at)
        labels = {"candidate": control["candidate"], "outcome": "agree" if agree else "disagree"}
        self.env.ports.metrics.write_point(SHADOW_METRIC, labels, 30, at=at)

    def mirror(self) -> dict[str, str] | None:
        try:
            return dict(json.loads(self.env.ports.objects.read_text(f"{PROJECT}-artifacts", CONTROL)))
        except NotFound:
            return None

    @rule(seconds=st.sampled_from([0.0, 1.0, 3.0, 6.0]), requests=st.sampled_from([0, 10, 60]))
    def tick(self, seconds: float, requests: int) -> None:
        with contextlib.suppress(TransientError):
            self.env.tick(seconds, requests)

    @rule()
    def duplicate_tick(self) -> None:
        with contextlib.suppress(TransientError):
            rollout.tick(self.env.runtime, self.env.clock.now)

    @rule(method=st.sampled_from(["set_traffic", "deploy_revision"]), fault=st.sampled_from(list(FAULTS)))
    def fault(self, method: str, fault: str) -> None:
        self.env.ports.deployments.faults.fail_next(method, FAULTS[fault])

    @rule()
    def metrics_unavailable(self) -> None:
        self.env.ports.metrics.faults.fail_next("revision_metrics", TransientError("UNAVAILABLE"))

    @rule(bad=st.booleans())
    def candidate_behaviour(self, bad: bool) -> None:
        candidate = revision_name(SERVICE, self.runs[-1])
        self.env.behaviour[candidate] = Behaviour(errors=0.4) if bad else Behaviour()

    @rule(action=st.sampled_from(list(CommandAction)))
    def operator(self, action: CommandAction) -> None:
        with contextlib.suppress(InvalidInput, TransientError):
            rollout.command(self.env.runtime, SERVICE, action, "ada")

    @invariant()
    def traffic_sums_to_100_over_at_most_two_revisions(self) -> None:
        service = self.env.ports.deployments.get_service(SERVICE)
        if service is None:
            return
        assert sum(target.percent for target in service.traffic) == 100
        assert len({target.revision for target in service.traffic if target.percent}) <= 2
        if service.traffic_statuses:
            assert sum(status.percent for status in service.traffic_statuses) == 100

    @invariant()
    def one_live_rollout_per_service(self) -> None:
        lease = rollout.read_lease(self.env.runtime, SERVICE)
        current = lease.rollout.run_id if lease.rollout is not None and lease.rollout.active else ""
        for run_id in lease.history:
            if run_id == current:
                continue
            run = self.env.ledger.get_run(run_id)
            assert run is None or run.status is not RunStatus.RUNNING, f"{run_id} still live beside {current}"

    @invariant()
    def the_mirror_copies_only_to_a_live_shadow_comparison(self) -> None:
        control = self.mirror()
        if control is None:
            return
        current = rollout.read_lease(self.env.runtime, SERVICE).rollout
        assert current is not None and current.active, f"mirror on with no live rollout: {control}"
        assert current.strategy == "shadow" and control["candidate"] == current.candidate, (control, current)

    def teardown(self) -> None:
        self.stack.close()


TestRollouts = Rollouts.TestCase
TestRollouts.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
