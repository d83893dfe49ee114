"""The step runner's fault suite: a crash between any two stages, duplicate concurrent deliveries, and a lease
that lapses while the effect still runs. Run against every ledger backend (in-memory and Firestore).

A "crash" is a :class:`Crash` (a BaseException, like the SystemExit of a killed process) raised at a stage
boundary: nothing in the runner may catch it, so the ledger is left exactly as a dead process leaves it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.config import PipelineConfig, parse_config
from shared.deadline import Deadline
from shared.ledger import KeyReuseError, Ledger, StepStatus
from shared.publisher import InMemoryPublisher
from shared.steps import Effect, Emit, Outcome, Step, StepContext, StepRunner
from tests.contract.ledger import FakeClock, run_concurrently

LEASE = 60.0


class Crash(BaseException):
    """The process died here."""


def config() -> PipelineConfig:
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "p",
                "ledger": {"lease": f"{int(LEASE)}s", "idempotencyTtl": "1h"},
                "topics": {"build.requested": "builds"},
            },
        },
        "steps-contract.yaml",
        env={},
    )


class CrashingLedger:
    """The ledger, dying once right after (or before) a chosen call."""

    def __init__(self, inner: Ledger, after: str = "", before: str = "") -> None:
        self.inner, self.after, self.before = inner, after, before

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == self.before:
                self.before = ""
                raise Crash(f"before {name}")
            result = method(*args, **kwargs)
            if name == self.after:
                self.after = ""
                raise Crash(f"after {name}")
            return result

        return call


class CrashingPublisher(InMemoryPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.crash_after_publish = False

    def publish(self, topic_id: str, envelope: Any, ordering_key: str = "") -> str:
        message_id = super().publish(topic_id, envelope, ordering_key)
        if self.crash_after_publish:
            self.crash_after_publish = False
            raise Crash("after publish")
        return message_id


class SideEffects:
    """A service whose side effect can be looked up (like a build found by its tag)."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.lock = threading.Lock()

    def effect(self, crash_after: bool = False) -> Callable[[StepContext], Effect]:
        def run(context: StepContext) -> Effect:
            with self.lock:
                if context.attempt > 1 and context.key in self.made:
                    return Effect({"found": context.key}, [Emit("build.requested", {"key": context.key})])
                self.made.append(context.key)
            if crash_after:
                raise Crash("after the effect")
            return Effect({"made": context.key}, [Emit("build.requested", {"key": context.key})])

        return run


def step(effect: Callable[[StepContext], Effect], key: str = "build/acme/abc/trainer") -> Step:
    return Step(key=key, payload={"commit": "abc"}, effect=effect, name=f"step {key}", run_id="run-1")


class StepRunnerContract:
    """Subclasses provide ``ledger`` (built on the ``clock`` fixture)."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))

    def runner(self, ledger: Any, publisher: InMemoryPublisher | None = None) -> StepRunner:
        return StepRunner(ledger, publisher or InMemoryPublisher(), config(), Deadline(20))

    def test_first_delivery_runs_records_and_publishes(self, ledger: Ledger) -> None:
        effects, publisher = SideEffects(), InMemoryPublisher()
        result = self.runner(ledger, publisher).run(step(effects.effect()))
        assert result.outcome is Outcome.DONE and result.result == {"made": "build/acme/abc/trainer"}
        assert effects.made == ["build/acme/abc/trainer"]
        run = ledger.get_run("run-1")
        assert run is not None and [(s.name, s.status) for s in run.steps] == [
            ("step build/acme/abc/trainer", StepStatus.SUCCEEDED)
        ]
        [message] = publisher.messages
        assert message.topic_id == "builds" and message.attributes["event_id"] == result.published[0]

    def test_redelivery_is_a_duplicate_with_the_same_event_ids(self, ledger: Ledger) -> None:
        effects, publisher = SideEffects(), InMemoryPublisher()
        runner = self.runner(ledger, publisher)
        first = runner.run(step(effects.effect()))
        second = runner.run(step(effects.effect()))
        assert second.outcome is Outcome.DUPLICATE and second.published == first.published
        assert len(effects.made) == 1
        run = ledger.get_run("run-1")
        assert run is not None and len(run.steps) == 1

    @pytest.mark.parametrize(
        ("where", "effects_made"),
        [
            ({"after": "claim"}, 1),  # died before the effect: the redelivery does it
            ({"before": "complete"}, 1),  # died after the effect: the redelivery finds it (attempt 2)
            ({"after": "complete"}, 1),  # died before recording: the redelivery records and publishes
            ({"after": "record_step"}, 1),  # died before publishing: the redelivery publishes
        ],
    )
    def test_crash_between_stages_never_doubles_the_effect_nor_loses_the_step(
        self, ledger: Ledger, clock: FakeClock, where: dict[str, str], effects_made: int
    ) -> None:
        effects, publisher = SideEffects(), InMemoryPublisher()
        with pytest.raises(Crash):
            self.runner(CrashingLedger(ledger, **where), publisher).run(step(effects.effect()))
        clock.advance(LEASE + 31)  # any lease left behind has lapsed
        result = self.runner(ledger, publisher).run(step(effects.effect()))
        assert result.outcome in (Outcome.DONE, Outcome.DUPLICATE)
        assert len(effects.made) == effects_made
        run = ledger.get_run("run-1")
        assert run is not None and [s.status for s in run.steps] == [StepStatus.SUCCEEDED]
        assert {m.attributes["event_id"] for m in publisher.messages} == set(result.published)
        assert len(result.published) == 1

    def test_crash_inside_the_effect_is_retried_after_the_lease(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        effects = SideEffects()
        with pytest.raises(Crash):
            self.runner(ledger).run(step(effects.effect(crash_after=True)))
        assert self.runner(ledger).run(step(effects.effect())).outcome is Outcome.BUSY  # lease still live
        clock.advance(LEASE + 31)
        result = self.runner(ledger).run(step(effects.effect()))
        assert result.outcome is Outcome.DONE and result.result == {"found": "build/acme/abc/trainer"}
        assert len(effects.made) == 1

    def test_crash_after_publish_republishes_the_same_event(self, ledger: Ledger) -> None:
        effects, publisher = SideEffects(), CrashingPublisher()
        publisher.crash_after_publish = True
        with pytest.raises(Crash):
            self.runner(ledger, publisher).run(step(effects.effect()))
        result = self.runner(ledger, publisher).run(step(effects.effect()))
        assert result.outcome is Outcome.DUPLICATE
        ids = [m.attributes["event_id"] for m in publisher.messages]
        assert len(ids) == 2 and len(set(ids)) == 1  # the consumer's own claim makes the second a duplicate

    def test_concurrent_duplicate_deliveries_run_the_effect_once(self, ledger: Ledger) -> None:
        effects, publisher = SideEffects(), InMemoryPublisher()
        runner = self.runner(ledger, publisher)
        results = run_concurrently(10, lambda _i: runner.run(step(effects.effect())))
        outcomes = sorted(result.outcome.value for result in results)
        assert outcomes.count("done") == 1
        assert set(outcomes) <= {"done", "busy", "duplicate"}
        assert len(effects.made) == 1
        run = ledger.get_run("run-1")
        assert run is not None and len(run.steps) == 1

    def test_lease_lapsing_while_the_effect_runs_keeps_one_outcome(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        started, release = threading.Event(), threading.Event()
        calls: list[str] = []

        def slow(context: StepContext) -> Effect:
            calls.append(f"slow attempt {context.attempt}")
            started.set()
            release.wait(10)
            return Effect({"by": "slow"})

        def fast(context: StepContext) -> Effect:
            calls.append(f"fast attempt {context.attempt}")
            return Effect({"by": "fast"})

        outcome: list[Any] = []
        worker = threading.Thread(target=lambda: outcome.append(self.runner(ledger).run(step(slow))))
        worker.start()
        assert started.wait(10)
        clock.advance(LEASE + 60)  # the slow holder's lease lapses while it still works
        taken_over = self.runner(ledger).run(step(fast))
        release.set()
        worker.join(10)
        assert taken_over.outcome is Outcome.DONE and taken_over.result == {"by": "fast"}
        assert outcome[0].outcome is Outcome.BUSY  # its late completion is refused, not recorded
        record = ledger.get("build/acme/abc/trainer")
        assert record is not None and record.result is not None and record.result["result"] == {"by": "fast"}
        run = ledger.get_run("run-1")
        assert run is not None and len(run.steps) == 1 and run.steps[0].detail["result"] == {"by": "fast"}

    def test_permanent_failure_is_recorded_and_not_retried(self, ledger: Ledger) -> None:
        from shared.errors import PermanentError

        calls: list[int] = []

        def refuse(context: StepContext) -> Effect:
            calls.append(context.attempt)
            raise PermanentError("the webhook answered 404")

        first = self.runner(ledger).run(step(refuse))
        second = self.runner(ledger).run(step(refuse))
        assert first.outcome is Outcome.FAILED and "404" in first.error
        assert second.outcome is Outcome.DUPLICATE and calls == [1]
        run = ledger.get_run("run-1")
        assert run is not None and run.steps[0].status is StepStatus.FAILED

    def test_a_handled_failure_is_shown_failed_yet_completed_and_announced(self, ledger: Ledger) -> None:
        from shared.steps import Emit

        def handled(_context: StepContext) -> Effect:
            return Effect({"status": "FAILURE"}, [Emit("build.requested", {"x": 1})], failed=True)

        publisher = InMemoryPublisher()
        first = self.runner(ledger, publisher).run(step(handled))
        again = self.runner(ledger, publisher).run(step(handled))
        assert first.outcome is Outcome.DONE and first.result == {"status": "FAILURE"} and not first.error
        assert again.outcome is Outcome.DUPLICATE and again.published == first.published
        run = ledger.get_run("run-1")
        assert run is not None and [(s.status, s.detail["result"]) for s in run.steps] == [
            (StepStatus.FAILED, {"status": "FAILURE"})
        ]
        assert len({message.attributes["event_id"] for message in publisher.messages}) == 1

    def test_transient_failure_releases_for_the_next_delivery(self, ledger: Ledger) -> None:
        from shared.errors import TransientError

        attempts: list[int] = []

        def flaky(context: StepContext) -> Effect:
            attempts.append(context.attempt)
            if len(attempts) == 1:
                raise TransientError("HTTP 503")
            return Effect({"ok": True})

        assert self.runner(ledger).run(step(flaky)).outcome is Outcome.RETRY
        assert self.runner(ledger).run(step(flaky)).outcome is Outcome.DONE
        assert attempts == [1, 2]

    def test_same_key_with_another_payload_is_refused(self, ledger: Ledger) -> None:
        effects = SideEffects()
        self.runner(ledger).run(step(effects.effect()))
        other = Step(key="build/acme/abc/trainer", payload={"commit": "def"}, effect=effects.effect())
        with pytest.raises(KeyReuseError):
            self.runner(ledger).run(other)

    def test_expired_deadline_starts_nothing(self, ledger: Ledger) -> None:
        from shared.errors import DeadlineExceeded

        effects = SideEffects()
        runner = StepRunner(ledger, InMemoryPublisher(), config(), Deadline(0))
        with pytest.raises(DeadlineExceeded):
            runner.run(step(effects.effect()))
        assert effects.made == [] and ledger.get("build/acme/abc/trainer") is None
