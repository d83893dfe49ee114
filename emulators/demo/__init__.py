"""``make demo``: a fresh local stack, the whole chain driven by events, live progress, a clean teardown.

1. **Notifications** (:mod:`emulators.demo.tour`): events on Pub/Sub reach ``notify`` through a push
   subscription and the local webhook sink stands in for Slack, Chat and a webhook; a duplicate is delivered
   once; a malformed message is recorded in the ledger, never lost.
2. **The chain** (:mod:`emulators.demo.chain`), only through events: a signed GitHub push of a local git
   repository (three times, plus a forged one), a burst of data files with one invalid, a drift incident
   published twice. The functions build the images (Cloud Build emulator), train (Vertex AI emulator, the
   sample trainer really trains), gate, register candidate versions in the Model Registry and ask for
   approval; the reconciler (called every few seconds by the stack) learns when jobs end and closes the data
   batch. The demo prints every step as the run ledger records it, then each run's timeline.
3. **Rollouts** (:mod:`emulators.demo.rollouts`), again only through events: the push's candidate approved
   with the operator command → the first deploy creates the service (smoke checks, then 100%); the data
   run's candidate approved → canary 10 → 50 → 100 under real load, promoted; a push breaking the server
   image alone → rolled out automatically and rolled back at its first step, with the notification.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from emulators.common.proc import group_alive
from emulators.demo.chain import DEMO_SECRET
from emulators.demo.common import say
from emulators.stack import ROOT, Stack, applied_env

__all__ = ["run_demo"]


def run_demo(config_path: Path | None = None) -> int:
    began = time.monotonic()
    # The function host inherits the environment: the demo signs its pushes with this secret.
    os.environ.setdefault("GITHUB_WEBHOOK_SECRET", DEMO_SECRET)
    with tempfile.TemporaryDirectory(prefix="mlops-demo-") as run_dir:
        stack = Stack(Path(run_dir), config_path=config_path or ROOT / "pipeline.yaml")
        say("▶ starting the local stack")
        state = stack.up(progress=say)
        try:
            with applied_env(state.env):
                _scenario(state.env, state.project, Path(run_dir))
        except Exception:
            _show_failures(Path(run_dir))
            raise
        finally:
            say("▶ tearing the stack down")
            stack.down(progress=say)
        alive = [c.name for c in state.components.values() if group_alive(c.pid)]
        if alive:
            say(f"✗ still running: {', '.join(alive)}")
            return 1
    say(f"✔ demo finished in {time.monotonic() - began:.1f}s; no process left running")
    return 0


def _show_failures(run_dir: Path) -> None:
    """The functions' error entries (the logs go away with the demo's folder): what a user needs to see."""
    for log in sorted(run_dir.glob("**/functions.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [line for line in lines if '"ERROR"' in line or '"WARNING"' in line or "Traceback" in line]
        say(f"✗ the demo failed; the last warnings and errors of {log.name}:")
        for line in errors[-25:]:
            say(f"    {line[:400]}")


def _scenario(env: dict[str, str], project: str, workdir: Path) -> None:
    from emulators.demo.chain import run_chain
    from emulators.demo.rollouts import run_rollouts
    from emulators.demo.tour import notifications
    from shared import clients
    from shared.config import load_config
    from shared.ledger import FirestoreLedger
    from shared.operator.views import status_lines
    from shared.ports import production_ports

    clients.reset()
    config = load_config(env["PIPELINE_CONFIG"], env={**os.environ, **env})
    ledger = FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix)
    ports = production_ports(config)
    tour_run = f"demo-{int(time.time())}"

    notifications(env, project, config, ledger, tour_run)
    outcome = run_chain(env, project, config, ledger, ports, workdir)

    say("▶ 9. each run's timeline (python -m shared.operator status RUN_ID)")
    now = datetime.now(UTC)
    for cause, run_id in outcome.runs.items():
        run = ledger.get_run(run_id)
        if run is None:
            continue
        say(f"  [{cause}]")
        for line in status_lines(run, now):
            say(f"    {line}")

    if outcome.repo is None or "data" not in outcome.runs:
        raise RuntimeError(f"the chain left nothing to roll out: {outcome.runs}")
    run_rollouts(env, config, ledger, ports, outcome.runs, outcome.repo)
