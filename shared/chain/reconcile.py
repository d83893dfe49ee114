"""One reconcile tick: read the real state of what unfinished runs wait for, and emit what is missing.

Vertex AI publishes no completion event and a Pub/Sub message can be lost for good (dead-lettered, or
published before its subscription existed), so the chain cannot rely on events alone. Cloud Scheduler (the
local stack's ticker, every few seconds) calls ``reconcile``, which runs :func:`tick`:

1. take ``now`` once (every decision of the tick uses the same instant);
2. walk the unfinished runs — ``ledger.list_runs(status=RUNNING)``, newest first, at most
   :attr:`TickLimits.max_runs`, so the walk never grows with finished runs — and give each run to every
   per-run hook (:data:`RUN_HOOKS`: the build stage and the training stage ask their ports what became of
   the run's builds and jobs);
3. give ``now`` to every due-work hook (:data:`DUE_HOOKS`: close the data batches and drift windows whose time
   has come).

Every hook runs its side effects as :class:`shared.steps.Step` s with domain keys, so two overlapping ticks
(Cloud Scheduler does not wait for the previous one) emit each event once: the loser of a claim sees BUSY or
DUPLICATE. The reconciler itself publishes nothing. Each hook returns a short description of what it
emitted, which the tick reports.

Hooks are found by module path and imported on first use: a stage whose module or function is not there
(yet) is reported as missing and logged once per process, never an error, so the reconciler works while
the stages land one by one. A hook that fails does not stop the others: the failure is logged with the run
id and reported; the tick's HTTP status is 500 only when a failure was transient (or unexpected), after
the tick did everything else it could, so Cloud Scheduler's retry and error metrics see it.

Time: the tick runs inside one :class:`~shared.deadline.Deadline` (the function's budget); each hook call gets
its own shorter deadline so one slow run cannot starve the rest, and the walk stops — saying so — when too
little is left to start another run while keeping time for the due-work hooks.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.errors import is_permanent
from shared.ledger import Run, RunStatus
from shared.runtime import Runtime

RunHook = Callable[[Runtime, Run], Sequence[str]]
DueHook = Callable[[Runtime, datetime], Sequence[str]]

#: How many characters of an error a tick report keeps (the log has the rest).
_ERROR_CHARS = 500


@dataclass(frozen=True)
class Hook:
    """A stage's entry point, by module path: ``shared.chain.builds`` + ``poll_run``."""

    stage: str  # short name in reports: builds, training, batches, windows
    module: str
    function: str

    @property
    def path(self) -> str:
        return f"{self.module}.{self.function}"


#: Called once per unfinished run: ``poll_run(runtime, run) -> [what was emitted]``.
RUN_HOOKS: tuple[Hook, ...] = (
    Hook("builds", "shared.chain.builds", "poll_run"),
    Hook("training", "shared.chain.training", "poll_run"),
)
#: Called once per tick: ``close_due_...(runtime, now) -> [what was emitted]``.
DUE_HOOKS: tuple[Hook, ...] = (
    Hook("batches", "shared.chain.data", "close_due_batches"),
    Hook("windows", "shared.chain.drift", "close_due_windows"),
    Hook("rollouts", "shared.chain.rollout", "tick"),  # advance each service's active rollout
)


@dataclass(frozen=True)
class TickLimits:
    """The time and size bounds of one tick."""

    #: The whole tick: inside Cloud Functions' default 60 s timeout (and Cloud Scheduler's attempt deadline).
    budget_seconds: float = 50.0
    #: Runs walked per tick at most (newest first); more are reported as ``more_runs``.
    max_runs: int = 200
    #: One hook call on one run at most, so a hung port call cannot eat the whole tick.
    hook_seconds: float = 15.0
    #: Kept back from the walk for the due-work hooks.
    due_reserve_seconds: float = 10.0
    #: The walk starts another run only with at least this much left beyond the reserve.
    min_hook_seconds: float = 2.0
    #: One ledger listing at most.
    list_seconds: float = 10.0


@dataclass(frozen=True)
class Emitted:
    stage: str
    what: tuple[str, ...]
    run_id: str = ""  # empty for due-work hooks

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "run_id": self.run_id, "emitted": list(self.what)}


@dataclass(frozen=True)
class Failure:
    stage: str
    error: str
    transient: bool  # transient or unexpected: the tick answers 500
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "run_id": self.run_id, "error": self.error, "transient": self.transient}


@dataclass
class TickReport:
    """What one tick did; :meth:`to_json` is the function's response body."""

    now: datetime
    runs_found: int = 0
    runs_walked: int = 0
    more_runs: bool = False  # more unfinished runs than max_runs: the oldest were not walked this tick
    emitted: list[Emitted] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    missing_hooks: list[str] = field(default_factory=list)
    stopped_early: str = ""  # why the walk (or the due work) stopped before the end
    duration_seconds: float = 0.0

    @property
    def retry(self) -> bool:
        """Whether a failure may go away by itself: the tick answers 500 then."""
        return any(failure.transient for failure in self.failures)

    @property
    def http_status(self) -> int:
        return 500 if self.retry else 200

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "retry" if self.retry else "ok",
            "now": self.now.isoformat(),
            "runs_found": self.runs_found,
            "runs_walked": self.runs_walked,
            "more_runs": self.more_runs,
            "emitted": [item.to_json() for item in self.emitted],
            "failures": [failure.to_json() for failure in self.failures],
            "missing_hooks": list(self.missing_hooks),
            "stopped_early": self.stopped_early or None,
            "duration_seconds": round(self.duration_seconds, 3),
        }


#: Missing hooks already logged by this process (each is logged once, then only reported per tick).
_logged_missing: set[str] = set()
_logged_lock = threading.Lock()


class _Resolver:
    """Imports a tick's hooks lazily, once per tick; a missing one is reported (and logged once)."""

    def __init__(self, report: TickReport) -> None:
        self.report = report
        self.cache: dict[Hook, Callable[..., Any] | None] = {}

    def __call__(self, hook: Hook) -> Callable[..., Any] | None:
        """The hook's function, or None when it is not there (recorded as missing). Any other import failure
        (a syntax error, a missing dependency of the stage) propagates: that is a bug, not a stage to come."""
        if hook in self.cache:
            return self.cache[hook]
        function: Callable[..., Any] | None = None
        try:
            module = importlib.import_module(hook.module)
        except ModuleNotFoundError as error:
            if error.name != hook.module:
                raise
        else:
            candidate = getattr(module, hook.function, None)
            function = candidate if callable(candidate) else None
        if function is None:
            self.report.missing_hooks.append(hook.path)
            with _logged_lock:
                first = hook.path not in _logged_missing
                _logged_missing.add(hook.path)
            if first:
                log.warning("reconcile hook not there yet; skipped until it is", hook=hook.path)
        self.cache[hook] = function
        return function


def tick(
    runtime: Runtime,
    *,
    limits: TickLimits | None = None,
    deadline: deadlines.Deadline | None = None,
    run_hooks: Iterable[Hook] | None = None,
    due_hooks: Iterable[Hook] | None = None,
) -> TickReport:
    """Run one reconcile tick (see the module docstring); never raises for a hook's failure.

    ``run_hooks`` / ``due_hooks`` default to :data:`RUN_HOOKS` / :data:`DUE_HOOKS`, read at call time.
    """
    limits = limits or TickLimits()
    deadline = deadline or deadlines.Deadline(limits.budget_seconds)
    began = time.monotonic()
    report = TickReport(now=runtime.clock())
    resolve = _Resolver(report)
    with deadlines.bounded(deadline):
        _walk_runs(
            runtime, report, resolve, tuple(RUN_HOOKS if run_hooks is None else run_hooks), limits, deadline
        )
        _due_work(
            runtime, report, resolve, tuple(DUE_HOOKS if due_hooks is None else due_hooks), limits, deadline
        )
    report.duration_seconds = time.monotonic() - began
    _log_tick(report)
    return report


def _walk_runs(
    runtime: Runtime,
    report: TickReport,
    resolve: _Resolver,
    hooks: tuple[Hook, ...],
    limits: TickLimits,
    deadline: deadlines.Deadline,
) -> None:
    functions = _resolved(resolve, hooks, report)
    if not functions:
        return  # nothing would look at the runs: do not read them
    try:
        # One more than walked, to know whether some were left over. The ledger lists newest first, so under
        # a backlog the newest runs (the ones someone is waiting for) are walked first.
        runs = runtime.ledger.list_runs(
            status=RunStatus.RUNNING,
            limit=limits.max_runs + 1,
            timeout=deadline.timeout(limits.list_seconds),
        )
    except Exception as error:
        _failed(report, "runs", error)
        return
    report.more_runs = len(runs) > limits.max_runs
    runs = runs[: limits.max_runs]
    report.runs_found = len(runs)
    if report.more_runs:
        log.warning(
            "more unfinished runs than one reconcile tick walks; the oldest wait",
            walked_at_most=limits.max_runs,
        )
    for index, run in enumerate(runs):
        left = deadline.remaining() - limits.due_reserve_seconds
        if left < limits.min_hook_seconds:
            report.stopped_early = (
                f"the deadline is near: walked {index} of {len(runs)} unfinished runs "
                f"({deadline.remaining():.1f}s left of {deadline.budget:.1f}s)"
            )
            return
        report.runs_walked += 1
        for hook, function in functions:
            budget = min(limits.hook_seconds, max(left, 0.0))
            if not _call(report, hook, functools.partial(function, runtime, run), budget, run.run_id):
                return  # the tick's own deadline passed: nothing more can start


def _due_work(
    runtime: Runtime,
    report: TickReport,
    resolve: _Resolver,
    hooks: tuple[Hook, ...],
    limits: TickLimits,
    deadline: deadlines.Deadline,
) -> None:
    for hook, function in _resolved(resolve, hooks, report):
        if deadline.remaining() < limits.min_hook_seconds:
            skipped = f"the deadline is near: {hook.stage} not closed this tick"
            report.stopped_early = "; ".join(filter(None, (report.stopped_early, skipped)))
            return
        budget = min(limits.hook_seconds, deadline.remaining())
        if not _call(report, hook, functools.partial(function, runtime, report.now), budget):
            return


def _resolved(
    resolve: _Resolver, hooks: tuple[Hook, ...], report: TickReport
) -> list[tuple[Hook, Callable[..., Any]]]:
    found: list[tuple[Hook, Callable[..., Any]]] = []
    for hook in hooks:
        try:
            function = resolve(hook)
        except Exception as error:  # the stage's module is there but does not import: report, go on
            _failed(report, hook.stage, error)
            continue
        if function is not None:
            found.append((hook, function))
    return found


def _call(
    report: TickReport,
    hook: Hook,
    call: Callable[[], Any],
    budget: float,
    run_id: str = "",
) -> bool:
    """Run one hook call inside its own deadline; False when the tick's deadline has passed."""
    outer = deadlines.current()
    try:
        with deadlines.bounded(deadlines.Deadline(budget)):
            emitted = _descriptions(call())
    except Exception as error:
        _failed(report, hook.stage, error, run_id)
    else:
        if emitted:
            report.emitted.append(Emitted(hook.stage, emitted, run_id))
    if outer.expired:
        where = f" ({hook.stage} on {run_id})" if run_id else f" ({hook.stage})"
        report.stopped_early = report.stopped_early or f"the tick's deadline passed during a hook{where}"
        return False
    return True


def _descriptions(result: Any) -> tuple[str, ...]:
    """What a hook says it emitted: a list of short strings (None or empty: nothing)."""
    if not result:
        return ()
    if isinstance(result, str):
        return (result,)
    return tuple(str(item) for item in result)


def _failed(report: TickReport, stage: str, error: Exception, run_id: str = "") -> None:
    transient = not is_permanent(error)
    text = f"{type(error).__name__}: {error}"
    report.failures.append(Failure(stage, text[:_ERROR_CHARS], transient, run_id))
    log.log(
        "WARNING" if transient else "ERROR",
        "reconcile hook failed; the other runs and stages go on",
        stage=stage,
        run_id=run_id,
        error=text,
        transient=transient,
    )


def _log_tick(report: TickReport) -> None:
    # A quiet tick every few seconds is noise at INFO; anything done or failed is not.
    busy = bool(report.emitted or report.failures or report.stopped_early or report.more_runs)
    log.log(
        "INFO" if busy else "DEBUG",
        "reconcile tick",
        runs_walked=report.runs_walked,
        emitted=sum(len(item.what) for item in report.emitted),
        failures=len(report.failures),
        missing_hooks=report.missing_hooks,
        stopped_early=report.stopped_early,
        duration_seconds=round(report.duration_seconds, 3),
    )
