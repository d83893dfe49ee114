"""Item 4, end to end: a signed push of a server-only change → its candidate revision taking traffic, and a
bad candidate → traffic back on stable, on the whole local stack with the emulators' simulated work at zero
(Cloud Build queues 0 s and its steps take what the build takes; the Vertex AI emulator's job phases 0 s;
Cloud Monitoring reports after 0.2 s).

Prepared, not timed: a model artifact in the artifacts bucket registered as ``churn``'s ``champion``, and
the service created from it by the operator's ``start`` (the first deploy). Timed: the push answered by
``on_git_push`` → Cloud Build → ``on_build_status`` → ``rollout.requested`` → ``start_rollout`` deploys the
candidate at 0% → reconcile ticks (the bench calls ``reconcile`` itself every ``TICK_SECONDS``, counting them,
where Cloud Scheduler would call it every minute) → smoke checks → the first canary step's split served. Then
a push of a server that fails half its requests, under load: its own push → canary (the same path on warm
function instances) and the ticks from the one that recorded the failing analysis to the split served back
on stable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.servers import PROJECT
from emulators.stack import ROOT, Stack, applied_env

JsonObject = dict[str, Any]
#: How often the bench calls ``reconcile`` (the stack's ticker: every 2 s; Cloud Scheduler: every 60 s).
TICK_SECONDS = 0.25
SECRET = "bench-webhook-secret"
SERVICE = "churn-predictor"
COMPONENTS = ("pubsub", "firestore", "sink", "storage", "cloudbuild", "vertex", "run", "functions")
ZERO_WORK = {
    "cloudbuild": ["--queued-seconds", "0"],
    "vertex": ["--queued-seconds", "0", "--pending-seconds", "0", "--running-seconds", "0"],
    "run": ["--metrics-delay", "0.2"],
}
BODY = {"instances": [[0.1, -0.4, 0.3, 1.2]]}


def _model_bytes() -> bytes:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rows = [[0.0, 1.0, 0.0, 1.0], [0.1, 0.9, 0.2, 0.8], [0.9, 0.1, 0.8, 0.2], [1.0, 0.0, 1.0, 0.0]]
    model = LogisticRegression().fit(rows, ["stay", "stay", "churn", "churn"])
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": ["a", "b", "c", "d"]}, buffer)
    return buffer.getvalue()


class Ticker:
    """Calls ``reconcile`` like Cloud Scheduler would, every ``TICK_SECONDS``, counting the calls."""

    def __init__(self, functions_url: str) -> None:
        self.url = f"{functions_url}/reconcile"
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                self.count += 1
                with contextlib.suppress(requests.RequestException):  # the next tick again, as a scheduler
                    session.post(self.url, json={}, timeout=30)
                self.stop.wait(TICK_SECONDS)

    def __enter__(self) -> Ticker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


class Load:
    """Real requests to the service while the bad candidate is judged: one continuous stream (the demo's
    ``Load`` sends bounded rounds, which left the 10% candidate too few requests for an analysis in time)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    session.post(f"{self.url}/predict", json=BODY, timeout=10)
                except requests.RequestException:
                    time.sleep(0.05)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def _until(what: str, done: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"end to end: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.02)


def _push(functions_url: str, repo: Path, line: str) -> str:
    """Commit ``line`` to server/Dockerfile and send GitHub's signed push; the push's run id."""
    from emulators.demo.chain import _git, push_payload
    from shared.ingest.signatures import github_signature

    before = _git(repo, "rev-parse", "HEAD")
    with (repo / "server" / "Dockerfile").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    _git(repo, "commit", "-q", "-am", line)
    after = _git(repo, "rev-parse", "HEAD")
    body = json.dumps(push_payload(repo, before, after, ["server/Dockerfile"])).encode()
    answer = requests.post(
        f"{functions_url}/on_git_push",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": github_signature(body, SECRET),
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["run_id"])


def end_to_end(progress: Callable[[str], None]) -> JsonObject:
    os.environ["GITHUB_WEBHOOK_SECRET"] = SECRET  # the function host inherits it
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as run_dir:
        stack = Stack(
            Path(run_dir),
            project=PROJECT,
            config_path=ROOT / "pipeline.yaml",
            components=COMPONENTS,
            api_args=ZERO_WORK,
        )
        state = stack.up(progress=lambda _line: None)
        try:
            with applied_env(state.env):
                return _measure(state.env, Path(run_dir), progress)
        finally:
            stack.down(progress=lambda _line: None)


def _measure(env: dict[str, str], work: Path, progress: Callable[[str], None]) -> JsonObject:
    from emulators.demo.chain import _git
    from shared import clients
    from shared.config import load_config, reset_config_cache
    from shared.operator.cli import main as operator
    from shared.ports import production_ports
    from shared.ports.deployments import revision_name
    from shared.ports.registry import ModelUpload
    from shared.runtime import production_runtime, use

    clients.reset()
    config = load_config(env["PIPELINE_CONFIG"], env={**os.environ, **env})
    ports = production_ports(config)
    functions_url = env["FUNCTIONS_URL"]
    artifact = f"gs://{config.chain.artifacts_bucket}/bench/model/"
    ports.objects.write(config.chain.artifacts_bucket, "bench/model/model.joblib", _model_bytes())
    version = ports.registry.upload(ModelUpload("churn", "churn", artifact))
    ports.registry.merge_aliases("churn", version.version_id, add=["champion"])

    def serving() -> dict[str, int]:
        service = ports.deployments.get_service(SERVICE)
        return dict(service.serving()) if service is not None else {}

    with Ticker(functions_url) as ticker:
        progress("item 4: the first deploy of the champion (not timed)")
        # The operator command runs on this stack's runtime (not one cached from the hot-path stack).
        reset_config_cache()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), use(production_runtime()):
            code = operator(["start", SERVICE, "--by", "bench", "--run-id", "bench-first"])
        if code != 0:
            raise RuntimeError(f"end to end: `operator start {SERVICE}` exited {code}")
        first = revision_name(SERVICE, "bench-first")
        _until("the first deploy", lambda: serving() == {first: 100})

        repo = work / "repo"
        (repo / "server").mkdir(parents=True)
        for item in (ROOT / "examples" / "server").rglob("*"):
            if item.is_file() and "__pycache__" not in item.parts:
                target = repo / "server" / item.relative_to(ROOT / "examples" / "server")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.read_bytes())
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "the sample server")

        progress("item 4: a signed push of a server change → the candidate taking traffic")
        began, ticks, wall = time.perf_counter(), ticker.count, datetime.now(UTC)
        good_run = _push(functions_url, repo, "ENV BENCH_RELEASE=1")
        good = revision_name(SERVICE, good_run)
        _until("the candidate taking traffic", lambda: serving().get(good, 0) > 0)
        push_seconds, push_ticks = time.perf_counter() - began, ticker.count - ticks
        stages = _stages(config, good_run, wall, push_seconds)
        progress(f"item 4: push → canary {push_seconds:.1f}s, {push_ticks} ticks")

        progress("item 4: a push of a broken server under load → traffic back on stable")
        url = str(ports.deployments.get_service(SERVICE).uri)  # type: ignore[union-attr]
        with Load(url):
            # The second push meets warm function instances (clients made, libraries imported): its own
            # push → canary is the steady state, the first push's is a cold pipeline's.
            began, ticks, wall = time.perf_counter(), ticker.count, datetime.now(UTC)
            bad_run = _push(functions_url, repo, "ENV ERROR_RATE=0.5 ERROR_MODE=deterministic")
            bad = revision_name(SERVICE, bad_run)
            _until("the broken candidate taking traffic", lambda: serving().get(bad, 0) > 0)
            warm_seconds, warm_ticks = time.perf_counter() - began, ticker.count - ticks
            warm_stages = _stages(config, bad_run, wall, warm_seconds)
            progress(f"item 4: second push (warm functions) → canary {warm_seconds:.1f}s, {warm_ticks} ticks")
            judged = _until("the failing analysis", lambda: _step(ports, config, bad_run), timeout=60)
            judged_at, judged_tick = time.perf_counter(), ticker.count
            _until("traffic back on stable", lambda: bad not in serving())
            back_seconds, back_ticks = time.perf_counter() - judged_at, ticker.count - judged_tick
    progress(f"item 4: failing analysis → stable {back_seconds:.2f}s, {back_ticks} ticks ({judged})")
    return {
        "measured": True,
        "tick_seconds": TICK_SECONDS,
        "push_to_canary_seconds": push_seconds,
        "push_to_canary_ticks": push_ticks,
        "stages": stages,
        "warm_push_to_canary_seconds": warm_seconds,
        "warm_push_to_canary_ticks": warm_ticks,
        "warm_stages": warm_stages,
        "rollback_seconds": back_seconds,
        "rollback_ticks": back_ticks,
        "failing_analysis": judged,
    }


#: The push run's steps that mark each stage, in order (the last stage ends when the split is served).
STAGES = (
    ("build started", "build:"),
    ("image built", "image:server"),
    ("rollout requested", "approval:decided"),
    ("candidate at 0%", "rollout:started"),
    ("ready, smoke passed", "rollout:smoke"),
    ("split asked", "rollout:traffic:0"),
)


def _stages(config: Any, run_id: str, pushed: datetime, total: float) -> list[JsonObject]:
    """Seconds from one stage to the next, read from the run's steps (when each was recorded)."""
    from shared import clients
    from shared.ledger import FirestoreLedger

    run = FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix).get_run(run_id)
    if run is None:
        return []
    out: list[JsonObject] = []
    previous = 0.0
    for label, prefix in STAGES:
        step = next((item for item in run.steps if item.name.startswith(prefix)), None)
        if step is None:
            continue
        at = (step.updated_at - pushed).total_seconds()
        out.append({"name": label, "seconds": max(at - previous, 0.0), "at": at})
        previous = at
    out.append({"name": "split served", "seconds": max(total - previous, 0.0), "at": total})
    return out


def _step(ports: Any, config: Any, run_id: str) -> str:
    """The failing analysis's verdict text once the run records it ("" before)."""
    from shared import clients
    from shared.ledger import FirestoreLedger

    ledger = FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix)
    run = ledger.get_run(run_id)
    step = run.step("rollout:step:0") if run is not None else None
    if step is None:
        return ""
    result = step.detail.get("result", {})
    return "; ".join(result.get("reasons", [])) if result.get("verdict") == "unhealthy" else ""
