"""Stages for reconcile tests, written the way the chain's stages are: they read a port, decide, and emit
only through idempotent steps — so the tests exercise the reconciler against real fakes, not mocks.

A run that started a build records a step ``build:started`` whose result holds ``build_id``
(:func:`start_build`); :func:`poll_run` asks the ``Builds`` port about it and, once the build is terminal,
runs the step ``build-status/<id>/<status>`` that publishes one notification and records ``build:finished``.
"""

from __future__ import annotations

import threading
from datetime import datetime

from shared import deadline as deadlines
from shared.chain.notices import notice
from shared.errors import InvalidInput, TransientError
from shared.ledger import Run, StepStatus
from shared.ports.builds import BuildRequest, BuildStep
from shared.runtime import Runtime
from shared.steps import Effect, Outcome, Step, StepContext, raise_for_retries

#: Set by a test to make both of two overlapping ticks read the build before either emits.
rendezvous: threading.Barrier | None = None


def start_build(runtime: Runtime, run_id: str) -> str:
    """What a push stage does: start a build and record it on the run."""
    build_id = runtime.ports.builds.start(
        BuildRequest(steps=(BuildStep("gcr.io/cloud-builders/docker", ("build", ".")),), tags=("trainer",))
    )
    runtime.ledger.start_run(run_id, cause={"cause": "push"})
    runtime.ledger.record_step(
        run_id, "build:started", StepStatus.SUCCEEDED, {"result": {"build_id": build_id}}
    )
    return build_id


def poll_run(runtime: Runtime, run: Run) -> list[str]:
    started = run.step("build:started")
    if started is None or run.step("build:finished") is not None:
        return []  # not ours, or already learned: no port call, nothing re-published
    build_id = str(started.detail["result"]["build_id"])
    build = runtime.ports.builds.get(build_id, timeout=deadlines.current().timeout(10))
    if rendezvous is not None:
        rendezvous.wait(timeout=10)
    if not build.status.terminal:
        return []
    status = build.status.value

    def announce(_context: StepContext) -> Effect:
        kind = "build.succeeded" if status == "SUCCESS" else "build.failed"
        return Effect({"build_id": build_id, "status": status}, [notice(kind, f"build {build_id} {status}")])

    result = runtime.steps().run(
        Step(
            key=f"build-status/{build_id}/{status}",
            payload={"build_id": build_id, "status": status},
            effect=announce,
            name="build:finished",
            run_id=run.run_id,
        )
    )
    if result.outcome is Outcome.RETRY:
        raise_for_retries([result], f"build {build_id}")
    # BUSY: an overlapping tick holds the step right now and will emit; nothing to report, nothing failed.
    return (
        [f"build {build_id} {status}: {event}" for event in result.published]
        if result.outcome is Outcome.DONE
        else []
    )


def close_due(runtime: Runtime, now: datetime) -> list[str]:
    """A due-work stage: says which instant it was given."""
    return [f"closed at {now.isoformat()}"]


def echo_run(runtime: Runtime, run: Run) -> list[str]:
    """Names the run it was given and how long its own deadline is."""
    return [f"saw {run.run_id} within {deadlines.current().remaining():.0f}s"]


def fail_on_flaky(runtime: Runtime, run: Run) -> list[str]:
    if run.run_id.startswith("flaky"):
        raise TransientError(f"the port did not answer for {run.run_id}")
    if run.run_id.startswith("broken"):
        raise InvalidInput("run cause", ["no model in the cause"])
    return [f"ok {run.run_id}"]


#: Not a function: a stage that exists but exposes no hook under this name.
not_a_hook = 42
