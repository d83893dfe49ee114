"""The ledger contract's second half: hostile input, limits and timeouts (:mod:`shared.ledger.protocol`).

Whatever arrives, the ledger answers with a permanent error naming the problem (so the event is recorded
as rejected, not retried into the dead-letter topic) or stores it bounded; it never fails with anything
else. A concrete test class inherits both :class:`tests.contract.ledger.LedgerContract` (which provides the
fixtures) and :class:`LedgerInputContract`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.errors import RejectionReason, is_permanent
from shared.ledger import (
    MAX_JSON_BYTES,
    MAX_LABEL_KEY_BYTES,
    MAX_LABEL_VALUE_BYTES,
    MAX_LABELS,
    MAX_NAME_BYTES,
    MAX_PROBLEM_BYTES,
    MAX_REJECTED_ID_BYTES,
    MAX_REJECTED_PAYLOAD_BYTES,
    MAX_REJECTED_PROBLEMS,
    InvalidLedgerInput,
    Ledger,
    RecordState,
    RunStatus,
    StepStatus,
)
from tests.contract.ledger import H1, LEASE, TTL


class LedgerInputContract:
    """Hostile input, limits and timeouts; the ``ledger`` fixture comes from the concrete test class."""

    # Hostile input: refused as permanent errors, or stored bounded --------------------------------------

    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("", "must not be empty"),
            ("e" * 1_100_000, "1,100,000 bytes"),  # the event id that once made Firestore refuse the key
            ("é" * (MAX_NAME_BYTES // 2) + "x", f"over the ledger's limit of {MAX_NAME_BYTES:,}"),
            ("a\ud800b", "lone surrogate"),  # JSON's "\ud800" escape parses to one
        ],
        ids=["empty", "1.1MB", "one-byte-over", "lone-surrogate"],
    )
    def test_unusable_keys_run_ids_and_step_names_are_permanent_errors(
        self, ledger: Ledger, name: str, problem: str
    ) -> None:
        ledger.start_run("run-1", {})
        calls: dict[str, Callable[[], object]] = {
            "idempotency key": lambda: ledger.claim(name, H1, LEASE, TTL),
            "run id": lambda: ledger.start_run(name, {}),
            "step name": lambda: ledger.record_step("run-1", name, StepStatus.STARTED),
        }
        for what, call in calls.items():
            with pytest.raises(InvalidLedgerInput) as raised:
                call()
            assert is_permanent(raised.value) and raised.value.reason is RejectionReason.INVALID
            assert what in str(raised.value) and problem in str(raised.value)
            assert len(str(raised.value)) < 500  # the message names the problem, not the value
        for call in (
            lambda: ledger.complete(name, "token", {}),
            lambda: ledger.release(name, "token"),
            lambda: ledger.get(name),
            lambda: ledger.get_run(name),
            lambda: ledger.finish_run(name, RunStatus.FAILED),
            lambda: ledger.record_step(name, "build", StepStatus.STARTED),
        ):
            with pytest.raises(InvalidLedgerInput):
                call()
        assert [run.run_id for run in ledger.list_runs()] == ["run-1"]
        run = ledger.get_run("run-1")
        assert run is not None and run.steps == ()

    def test_objects_that_cannot_be_stored_are_permanent_errors(self, ledger: Ledger) -> None:
        deep: dict[str, object] = {}
        for _ in range(10_000):
            deep = {"d": deep}
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        ledger.start_run("run-1", {})
        calls: list[Callable[[], object]] = [
            lambda: ledger.complete("k", str(claim.token), {"blob": "x" * MAX_JSON_BYTES}),
            lambda: ledger.complete("k", str(claim.token), {"score": float("nan")}),
            lambda: ledger.complete("k", str(claim.token), deep),
            lambda: ledger.complete("k", str(claim.token), {"text": "\udfff"}),
            lambda: ledger.start_run("run-2", {"blob": "x" * MAX_JSON_BYTES}),
            lambda: ledger.record_step("run-1", "s", StepStatus.STARTED, {"blob": "x" * MAX_JSON_BYTES}),
        ]
        for call in calls:
            with pytest.raises(InvalidLedgerInput):
                call()
        record = ledger.get("k")
        assert record is not None and record.state is RecordState.IN_PROGRESS
        assert [run.run_id for run in ledger.list_runs()] == ["run-1"]

    def test_merged_step_detail_over_the_limit_is_refused_and_the_step_kept(self, ledger: Ledger) -> None:
        ledger.start_run("run-1", {})
        half = "x" * (MAX_JSON_BYTES // 2)
        first = ledger.record_step("run-1", "s", StepStatus.STARTED, {"a": half})

        with pytest.raises(InvalidLedgerInput, match="merged"):
            ledger.record_step("run-1", "s", StepStatus.SUCCEEDED, {"b": half})

        run = ledger.get_run("run-1")
        assert run is not None and run.steps == (first,)

    @pytest.mark.parametrize(
        ("labels", "problem"),
        [
            ({f"k{i}": "v" for i in range(MAX_LABELS + 1)}, f"at most {MAX_LABELS} labels"),
            ({"": "v"}, "must not be empty"),
            ({"__name__": "v"}, "reserved"),
            ({"k" * (MAX_LABEL_KEY_BYTES + 1): "v"}, "key is over"),
            ({"k": "v" * (MAX_LABEL_VALUE_BYTES + 1)}, "value is over"),
            ({"k": "\ud800"}, "lone surrogate"),
        ],
    )
    def test_unusable_labels_are_permanent_errors(
        self, ledger: Ledger, labels: dict[str, str], problem: str
    ) -> None:
        with pytest.raises(InvalidLedgerInput, match=problem):
            ledger.start_run("run-1", {}, labels)
        assert ledger.get_run("run-1") is None

    def test_the_largest_records_the_limits_allow_are_stored(self, ledger: Ledger) -> None:
        # Four bytes a character everywhere: each record is as large as the limits let it be, and must still
        # fit one Firestore document (1 MiB).
        wide = "𝄞"
        key = wide * (MAX_NAME_BYTES // 4)
        result = {"r": wide * ((MAX_JSON_BYTES - 16) // 4)}
        labels = {
            f"{i:02d}" + wide * ((MAX_LABEL_KEY_BYTES - 2) // 4): wide * (MAX_LABEL_VALUE_BYTES // 4)
            for i in range(MAX_LABELS)
        }
        claim = ledger.claim(key, H1, LEASE, TTL)
        assert claim.token is not None
        ledger.complete(key, claim.token, result)
        ledger.start_run(key, result, labels)
        ledger.record_step(key, key, StepStatus.SUCCEEDED, result)

        record = ledger.get(key)
        run = ledger.get_run(key)

        assert record is not None and record.result == result
        assert run is not None and run.cause == result and run.labels == labels
        assert run.steps[0].name == key and run.steps[0].detail == result

    def test_a_hostile_rejected_event_is_recorded_bounded(self, ledger: Ledger) -> None:
        wide = "𝄞"
        event_id = "e" * 1_100_000
        problems = [wide * 5_000] * 10_000
        payload = {"blob": wide * 1_000_000}

        assert ledger.record_rejected(event_id, wide * 5_000, problems, wide * 500_000, payload) is True

        [event] = ledger.list_rejected()
        assert len(event.event_id.encode()) <= MAX_REJECTED_ID_BYTES
        assert event.event_id.startswith("eeee") and event.event_id.endswith("…")
        assert len(event.reason.encode()) <= MAX_REJECTED_ID_BYTES and event.reason.endswith("…")
        assert len(event.source.encode()) <= MAX_REJECTED_ID_BYTES and event.source.startswith(wide)
        assert len(event.problems) == MAX_REJECTED_PROBLEMS
        assert all(len(problem.encode()) <= MAX_PROBLEM_BYTES for problem in event.problems)
        assert (
            event.problems[-1] == f"... and {10_000 - MAX_REJECTED_PROBLEMS + 1:,} more problems, not stored"
        )
        assert event.payload_truncated is True and isinstance(event.payload, str)
        assert 0 < len(event.payload.encode()) <= MAX_REJECTED_PAYLOAD_BYTES
        assert event.payload.startswith('{"blob":"' + wide)
        # Idempotent on the whole event id: the same id again is a duplicate, a neighbour is not.
        assert ledger.record_rejected(event_id, "invalid", [], "s", "again") is False
        assert ledger.record_rejected(event_id + "2", "invalid", [], "s", "other") is True
        assert len(ledger.list_rejected()) == 2

    def test_a_rejected_event_with_lone_surrogates_and_nul_is_recorded(self, ledger: Ledger) -> None:
        payload = {"title": "bad \udfff text", "nul": "a\x00b"}

        assert ledger.record_rejected("id-\ud800\x00", "invalid", ["at \ud800"], "src \udc00", payload)

        [event] = ledger.list_rejected()
        assert event.event_id == "id-\\ud800\x00"
        assert event.problems == ("at \\ud800",)
        assert event.source == "src \\udc00"
        assert event.payload == payload  # JSON escapes keep the exact value
        assert ledger.record_rejected("id-\ud800\x00", "invalid", [], "s", "again") is False

    def test_a_rejected_payload_that_is_not_json_is_kept_as_text(self, ledger: Ledger) -> None:
        deep: dict[str, object] = {}
        for _ in range(10_000):
            deep = {"d": deep}
        payloads: list[object] = [deep, {"score": float("nan")}, {"tags": {"a"}}]

        for i, payload in enumerate(payloads):
            assert ledger.record_rejected(f"evt-{i}", "invalid", [], "s", payload) is True  # type: ignore[arg-type]

        events = {event.event_id: event for event in ledger.list_rejected()}
        assert set(events) == {"evt-0", "evt-1", "evt-2"}
        assert all(isinstance(event.payload, str) and event.payload for event in events.values())
        assert events["evt-0"].payload.startswith("{'d': {'d':")
        assert "nan" in str(events["evt-1"].payload) and "{'a'}" in str(events["evt-2"].payload)
        assert all(len(str(event.payload)) < 100_000 for event in events.values())

    def test_an_empty_rejected_event_id_is_refused(self, ledger: Ledger) -> None:
        with pytest.raises(InvalidLedgerInput, match="rejected event id"):
            ledger.record_rejected("", "invalid", [], "s", "p")
        assert ledger.list_rejected() == []

    # Timeouts -----------------------------------------------------------------------------------------------

    def test_every_method_takes_a_timeout(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL, timeout=5.0)
        assert claim.token is not None
        ledger.complete("k", claim.token, {"ok": True}, timeout=5.0)
        other = ledger.claim("k2", H1, LEASE, TTL, timeout=5.0)
        assert other.token is not None
        ledger.release("k2", other.token, timeout=5.0)
        ledger.start_run("run-1", {}, {"a": "b"}, timeout=5.0)
        ledger.record_step("run-1", "s", StepStatus.SUCCEEDED, {"x": 1}, timeout=5.0)
        ledger.finish_run("run-1", RunStatus.SUCCEEDED, timeout=5.0)
        ledger.record_rejected("evt-1", "invalid", [], "s", "p", timeout=5.0)

        record = ledger.get("k", timeout=5.0)
        run = ledger.get_run("run-1", timeout=5.0)

        assert record is not None and record.result == {"ok": True}
        assert run is not None and run.status is RunStatus.SUCCEEDED and len(run.steps) == 1
        assert [r.run_id for r in ledger.list_runs(RunStatus.SUCCEEDED, timeout=5.0)] == ["run-1"]
        assert [e.event_id for e in ledger.list_rejected(timeout=5.0)] == ["evt-1"]
