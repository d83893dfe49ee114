"""Demo part 3: rollouts, driven by events only.

The push's candidate is approved (the operator command publishes the approval decision): the first deploy
creates the service (smoke checks on the candidate's tag URL, then 100%). The data run's candidate is
approved next and canaried 10 → 50 → 100 while the load generator sends real requests; each step's numbers
come from Cloud Monitoring. Then a push that changes only the server image, and breaks it, is rolled out
automatically (server-image changes need no approval) and rolled back at its first step, with the
notification. Then two rollouts started with the operator's ``start`` command under other strategies than
the service's canary: the champion blue/green (smoke checks on the tag URL, the switch to 100%, the
post-switch analysis) and an older version in shadow (stable's serving image copies every answered request
to the candidate; the agreement of their predictions, the candidate's errors and latency decide). Every
move is the rollout engine's, on the stack's reconcile ticks; the demo only watches.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from emulators.demo.chain import DEMO_SECRET, _git, push_payload
from emulators.demo.common import say, sink
from emulators.stack import ROOT

ROLLOUT_TIMEOUT_SECONDS = 150.0
ENDS = ("rollout:promoted", "rollout:rolled_back", "rollout:aborted")
BODY = {"instances": [[0.1, -0.4, 0.3, 1.2], [-1.0, 0.8, 0.0, 0.5]]}


class Load:
    """Real requests to the service while a rollout runs (bounded: loopback only, stops when told)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.sent = 0
        self.statuses: dict[str, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        from emulators.loadgen import run_load

        deadline = time.monotonic() + ROLLOUT_TIMEOUT_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            result = run_load(self.url, 40, concurrency=2, max_seconds=10, json_body=BODY)
            self.sent += 40
            for status, count in result.summary()["byStatus"].items():
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + int(count)


def _approve(run_id: str) -> None:
    from shared.operator.cli import main as operator

    say(f"    $ python -m shared.operator approve {run_id} --by demo@example.com")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = operator(["approve", run_id, "--by", "demo@example.com", "--reason", "looks good in the demo"])
    if code != 0:
        raise RuntimeError(f"approve {run_id} exited {code}: {printed.getvalue()[-500:]}")
    answer = json.loads(printed.getvalue())
    say(f"    published the approval decision on {answer['topic']} (message {answer['message_id']})")


def _describe(step: Any) -> str:
    result = step.detail.get("result", {}) if isinstance(step.detail, dict) else {}
    if step.name.startswith("rollout:step:"):
        parts = []
        for _revision, numbers in sorted(result.get("revisions", {}).items()):
            share = numbers.get("share_5xx")
            p95 = numbers.get("p95_ms")
            errors = "n/a" if share is None else f"{share:.1%}"
            latency = "n/a" if p95 is None else f"{p95:.0f} ms"
            parts.append(
                f"{numbers.get('role', '?')} {numbers.get('requests', 0)} req, 5xx {errors}, p95 {latency}"
            )
        verdict = result.get("verdict", "?")
        return f"{result.get('percent', '?')}% → {verdict}: " + "; ".join(parts)
    if step.name == "rollout:rolled_back":
        return str(result.get("reason", ""))[:140]
    if step.name == "rollout:smoke":
        checks = result.get("checks") or []
        shown = [
            f"{check.get('path', '?')} → {check.get('status', '?')} in {check.get('latency_ms', 0):.0f} ms"
            + ("" if check.get("ok") else f" ✗ {check.get('reason', '')}")
            for check in checks
        ]
        return ("passed: " if result.get("passed") else "FAILED: ") + "; ".join(shown)
    if step.name in ("rollout:promoted", "rollout:paused", "rollout:aborted"):
        return str(result.get("reason", ""))[:140]
    return ""


def _shadow_summary(step: Any) -> str:
    result = step.detail.get("result", {}) if isinstance(step.detail, dict) else {}
    shadow = result.get("shadow") or {}
    if not shadow:
        return "no comparison recorded"
    agreement = shadow.get("agreement")
    shown = "n/a" if agreement is None else f"{agreement:.1%}"
    return (
        f"{shadow.get('total', 0)} copies compared: {shadow.get('agree', 0)} agree, "
        f"{shadow.get('disagree', 0)} differ, {shadow.get('error', 0)} errors (agreement {shown})"
    )


def _watch(ledger: Any, run_id: str, began: float) -> Any:
    """Print the run's approval and rollout steps as they are recorded, until the rollout ends."""
    printed: set[str] = set()
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        run = ledger.get_run(run_id)
        if run is not None:
            for step in run.steps:
                if step.name.startswith(("approval:", "rollout:")) and step.name not in printed:
                    printed.add(step.name)
                    say(f"    {time.monotonic() - began:6.1f}s  {step.name:<22} {_describe(step)}")
            if any(run.step(name) for name in ENDS):
                return run
        time.sleep(0.5)
    raise RuntimeError(f"the rollout of {run_id} did not end within {ROLLOUT_TIMEOUT_SECONDS:.0f}s")


def _newest_candidate(ledger: Any, runs: dict[str, str]) -> str:
    """The run whose registered version is the newest: the only candidate an approval may still take."""
    versions: dict[str, int] = {}
    for run_id in runs.values():
        run = ledger.get_run(run_id)
        step = run.step("registry:version") if run is not None else None
        if step is not None:
            versions[run_id] = int(str(step.detail.get("result", {}).get("version", "0")) or 0)
    if not versions:
        raise RuntimeError(f"no run registered a candidate: {runs}")
    return max(versions, key=lambda run_id: versions[run_id])


def _new_data_candidate(config: Any, ledger: Any, ports: Any, began: float) -> str:
    """Three more data files → one more data run; returns it once its candidate is registered."""
    from emulators.demo.chain import _make_csv

    dataset = config.chain.datasets[0]
    known = {run.run_id for run in ledger.list_runs(limit=100)}
    for index in range(3):
        name = f"{dataset.prefix}more-{index:02d}.csv"
        ports.objects.write(
            dataset.bucket, name, _make_csv(rows=60, seed=500 + index), content_type="text/csv"
        )
    say(f"    3 more files in gs://{dataset.bucket}/{dataset.prefix}; waiting for their run's candidate")
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for run in ledger.list_runs(limit=100):
            if (
                run.run_id in known
                or not run.run_id.startswith(f"data-{dataset.name}-")
                or "-q-" in run.run_id
            ):
                continue
            if run.step("registry:version") is not None:
                say(f"    {time.monotonic() - began:6.1f}s  {run.run_id} registered its candidate")
                return str(run.run_id)
            if run.status.value != "RUNNING":
                raise RuntimeError(
                    f"the new data run ended {run.status.value}: {[s.name for s in run.steps]}"
                )
        time.sleep(0.5)
    raise RuntimeError("the new data produced no candidate in time")


def _service_url(ports: Any, name: str) -> str:
    service = ports.deployments.get_service(name)
    if service is None or not service.uri:
        raise RuntimeError(f"service {name} has no URL")
    return str(service.uri)


def run_rollouts(
    env: dict[str, str], config: Any, ledger: Any, ports: Any, runs: dict[str, str], repo: Path
) -> None:
    service = config.services[0].name
    began = time.monotonic()

    newest = _newest_candidate(ledger, runs)
    say(
        f"▶ 10. approve the newest candidate ({newest}; older ones are superseded and would be refused)"
        f" → the first deploy creates {service}: smoke checks on its tag URL, then 100%"
    )
    _approve(newest)
    first = _watch(ledger, newest, began)
    if first.step("rollout:promoted") is None:
        raise RuntimeError(f"the first deploy did not promote: {[s.name for s in first.steps]}")
    url = _service_url(ports, service)
    say(f"    {url} serves {newest}'s model")

    say("▶ 11. new data → a new candidate, approved → canary 10 → 50 → 100 under real traffic, then promoted")
    candidate = _new_data_candidate(config, ledger, ports, began)
    with Load(f"{url}/predict") as load:
        _approve(candidate)
        data = _watch(ledger, candidate, began)
    say(f"    load: {load.sent} requests, answers {load.statuses}")
    if data.step("rollout:promoted") is None:
        raise RuntimeError(f"the canary did not promote: {[s.name for s in data.steps]}")

    say("▶ 12. a push breaking only the server image → rolled out by itself, rolled back at its 10% step")
    broken = _push_broken_server(env, repo)
    with Load(f"{url}/predict") as load:
        run = _watch(ledger, broken, began)
    say(f"    load: {load.sent} requests, answers {load.statuses}")
    if run.step("rollout:rolled_back") is None:
        raise RuntimeError(f"the broken image was not rolled back: {[s.name for s in run.steps]}")
    traffic = [(t.revision, t.percent) for t in ports.deployments.get_traffic(service)]
    say(f"    traffic read back: {traffic}")
    notes = [r for r in sink(env, "/hook/") if "rolled back" in json.dumps(r.get("body", {})).lower()]
    say(f"    rollback notifications delivered: {len(notes)}")

    _other_strategies(env, config, ledger, ports, runs, url, began)

    page = ROOT / ".run" / "demo-rollout.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    from shared.operator.cli import main as operator

    if operator(["status", candidate, "--html", str(page)]) == 0:
        say(f"    the canary's page: {page} (python -m shared.operator status RUN_ID --html FILE)")


def _start(service: str, *args: str) -> str:
    """``python -m shared.operator start SERVICE ARGS``; the new run's id."""
    from shared.operator.cli import main as operator

    say(f"    $ python -m shared.operator start {service} {' '.join(args)} --by demo@example.com")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = operator(["start", service, *args, "--by", "demo@example.com"])
    if code != 0:
        raise RuntimeError(f"start {service} exited {code}: {printed.getvalue()[-500:]}")
    answer = json.loads(printed.getvalue())
    say(f"    run {answer['run_id']}: version {answer['version']} as {answer['strategy']}")
    return str(answer["run_id"])


def _other_strategies(
    env: dict[str, str], config: Any, ledger: Any, ports: Any, runs: dict[str, str], url: str, began: float
) -> None:
    service = config.services[0].name
    say(
        "▶ 13. blue/green: the champion again, 0% behind its tag URL → smoke checks → 100% at once → analysed"
    )
    with Load(f"{url}/predict") as load:
        green = _watch(ledger, _start(service, "--strategy", "blue_green"), began)
    say(f"    load: {load.sent} requests, answers {load.statuses}")
    if green.step("rollout:promoted") is None:
        raise RuntimeError(f"the blue/green rollout did not promote: {[s.name for s in green.steps]}")
    say(f"    traffic read back: {[(t.revision, t.percent) for t in ports.deployments.get_traffic(service)]}")

    older = _older_version(ledger, runs)
    say(
        f"▶ 14. shadow: version {older} answers copies of live requests, never users; "
        "the predictions are compared with the champion's"
    )
    with Load(f"{url}/predict") as load:
        shadow = _watch(ledger, _start(service, "--strategy", "shadow", "--version", older), began)
    say(f"    load: {load.sent} requests to the service, answers {load.statuses}")
    step = shadow.step("rollout:step:0")
    if step is None:
        raise RuntimeError(f"the shadow comparison recorded no analysis: {[s.name for s in shadow.steps]}")
    say(f"    shadow comparison: {_shadow_summary(step)}")
    end = next(shadow.step(name) for name in ENDS if shadow.step(name) is not None)
    say(f"    → {end.name.removeprefix('rollout:')}: {_describe(end) or end.detail.get('result', {})}")


def _older_version(ledger: Any, runs: dict[str, str]) -> str:
    """The oldest registered candidate version of the chain's runs (the push's): the shadow's subject."""
    versions = []
    for run_id in runs.values():
        run = ledger.get_run(run_id)
        step = run.step("registry:version") if run is not None else None
        if step is not None:
            versions.append(int(str(step.detail.get("result", {}).get("version", "0")) or 0))
    if not versions:
        raise RuntimeError(f"no run registered a version: {runs}")
    return str(min(versions))


def _push_broken_server(env: dict[str, str], repo: Path) -> str:
    """Commit a server image that fails half its requests and push it; returns the push's run id."""
    from shared.ingest.signatures import github_signature

    before = _git(repo, "rev-parse", "HEAD")
    with (repo / "server" / "Dockerfile").open("a", encoding="utf-8") as handle:
        handle.write("ENV ERROR_RATE=0.5 ERROR_MODE=deterministic\n")
    _git(repo, "commit", "-q", "-am", "server: a broken release")
    after = _git(repo, "rev-parse", "HEAD")
    body = json.dumps(push_payload(repo, before, after, ["server/Dockerfile"])).encode()
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET", DEMO_SECRET)
    response = requests.post(
        f"{env['FUNCTIONS_URL']}/on_git_push",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": github_signature(body, secret),
        },
        timeout=30,
    )
    answer = response.json()
    say(f"    push {after[:12]}: HTTP {response.status_code}, builds {answer.get('started')}")
    return str(answer["run_id"])
