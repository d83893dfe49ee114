"""Demo part 2: the chain, driven only through events.

A local git repository holds the sample ``trainer/`` and ``server/``; a signed GitHub push reaches
``on_git_push``; a burst of data files (one of them invalid) lands in the dataset's bucket; a drift incident
is published twice. From there the functions do everything (builds, training, gates, Model Registry, approval
requests) while this module only watches the run ledger and prints each step as it is recorded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from emulators.common.proc import wait_for
from emulators.demo.common import say
from emulators.stack import ROOT

#: The demo's webhook secret when the user has not set one (the function host inherits it).
DEMO_SECRET = "local-demo-webhook-secret"
REPOSITORY = "acme/churn-model"
#: The step after which a run waits for a human (or has ended): the demo's finish line for each run.
REGISTERED = "registry:version"
CHAIN_TIMEOUT_SECONDS = 300.0


@dataclass
class ChainOutcome:
    runs: dict[str, str] = field(default_factory=dict)  # cause -> run id
    candidate_uri: str = ""  # the push run's registered model version (artifact URI)
    server_image: str = ""  # the server image the push built
    repo: Path | None = None  # the local repository the pushes come from


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repository(base: Path) -> tuple[Path, str, str, list[str]]:
    """A repository with the sample trainer and server; a second commit touches both."""
    repo = base / "churn-model"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "examples" / "trainer", repo / "trainer", ignore=ignore)
    shutil.copytree(ROOT / "examples" / "server", repo / "server", ignore=ignore)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "sample trainer and server")
    before = _git(repo, "rev-parse", "HEAD")
    changed = ["trainer/Dockerfile", "server/Dockerfile"]
    for path in changed:
        with (repo / path).open("a", encoding="utf-8") as handle:
            handle.write("# demo: a change that touches this image\n")
    _git(repo, "commit", "-q", "-am", "touch the trainer and the server")
    return repo, before, _git(repo, "rev-parse", "HEAD"), changed


def push_payload(repo: Path, before: str, after: str, changed: list[str]) -> dict[str, Any]:
    """A GitHub ``push`` webhook body for the local repository (the fields GitHub sends that we read)."""
    now = datetime.now(UTC).isoformat()
    commit = {
        "id": after,
        "tree_id": after,
        "distinct": True,
        "message": "touch the trainer and the server",
        "timestamp": now,
        "url": f"https://github.com/{REPOSITORY}/commit/{after}",
        "author": {"name": "Demo", "email": "demo@example.com", "username": "demo"},
        "committer": {"name": "Demo", "email": "demo@example.com", "username": "demo"},
        "added": [],
        "removed": [],
        "modified": changed,
    }
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{REPOSITORY}/compare/{before[:12]}...{after[:12]}",
        "repository": {
            "id": 1,
            "name": REPOSITORY.split("/")[1],
            "full_name": REPOSITORY,
            "private": False,
            "owner": {"login": REPOSITORY.split("/")[0], "name": REPOSITORY.split("/")[0]},
            "html_url": f"https://github.com/{REPOSITORY}",
            "clone_url": repo.as_uri(),
            "default_branch": "main",
        },
        "pusher": {"name": "demo", "email": "demo@example.com"},
        "sender": {"login": "demo"},
        "commits": [commit],
        "head_commit": commit,
    }


def _make_csv(rows: int, seed: int) -> str:
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.make_csv(rows=rows, seed=seed)
    return text


def _drift_incident(incident_id: str) -> dict[str, Any]:
    """A Cloud Monitoring incident notification (schema 1.2) naming the model in the policy's labels."""
    return {
        "version": "1.2",
        "incident": {
            "incident_id": incident_id,
            "state": "open",
            "started_at": int(time.time()),
            "summary": "Feature drift for churn is above its threshold.",
            "observed_value": "0.41",
            "threshold_value": "0.2",
            "resource": {"type": "global", "labels": {}},
            "metric": {"type": "custom.googleapis.com/model/feature_drift", "labels": {}},
            "policy_name": "churn drift",
            "policy_user_labels": {"model": "churn"},
            "condition_name": "drift above 0.2",
            "url": f"https://console.cloud.google.com/monitoring/alerting/incidents/{incident_id}",
        },
    }


def run_chain(
    env: dict[str, str], project: str, config: Any, ledger: Any, ports: Any, workdir: Path
) -> ChainOutcome:
    from google.cloud.pubsub_v1 import PublisherClient

    from shared.ingest.signatures import github_signature

    outcome = ChainOutcome()
    began = time.monotonic()
    say("▶ 4. a local git repository holds the sample trainer/ and server/; a second commit touches both")
    repo, before, after, changed = make_repository(workdir)
    outcome.repo = repo
    say(f"    {repo} @ {after[:12]} (changed: {', '.join(changed)})")

    dataset = config.chain.datasets[0]
    say(f"▶ 5. a burst of 6 data files (one invalid) → gs://{dataset.bucket}/{dataset.prefix}")
    for index in range(5):
        name = f"{dataset.prefix}part-{index:02d}.csv"
        ports.objects.write(
            dataset.bucket, name, _make_csv(rows=60, seed=100 + index), content_type="text/csv"
        )
    bad = _make_csv(rows=60, seed=200).replace(",no\n", ",maybe\n", 3)
    bad_lines = bad.splitlines()
    bad_lines[5] = "99.0," + bad_lines[5].split(",", 1)[1]
    ports.objects.write(
        dataset.bucket, f"{dataset.prefix}part-bad.csv", "\n".join(bad_lines) + "\n", content_type="text/csv"
    )
    say("    5 valid files (60 rows each) and part-bad.csv (label 'maybe', f1 = 99)")
    wait_for(
        "the 5 valid files to be validated",
        lambda: len(ledger.query_docs("members", equals={"dataset": dataset.name})) >= 5,
        60,
    )
    say("    on_data_object validated the 5 (members of the next batch) and quarantines the bad one")

    say("▶ 6. a signed GitHub push → on_git_push (sent three times: a redelivery and a second hook)")
    body = json.dumps(push_payload(repo, before, after, changed)).encode()
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET", DEMO_SECRET)
    delivery = str(uuid.uuid4())
    for attempt, delivery_id in enumerate((delivery, delivery, str(uuid.uuid4())), start=1):
        response = requests.post(
            f"{env['FUNCTIONS_URL']}/on_git_push",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery_id,
                "X-Hub-Signature-256": github_signature(body, secret),
            },
            timeout=30,
        )
        answer = (
            response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        )
        builds = ", ".join(
            f"{b.get('image')}: {b.get('outcome', b.get('status'))}" for b in answer.get("builds", [])
        )
        say(
            f"    #{attempt}: HTTP {response.status_code} run {answer.get('run_id', '?')}: {builds or answer}"
        )
        outcome.runs.setdefault("push", str(answer.get("run_id", "")))
    forged = requests.post(
        f"{env['FUNCTIONS_URL']}/on_git_push",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": "sha256=0",
        },
        timeout=30,
    )
    say(f"    a forged signature: HTTP {forged.status_code}, nothing started")

    say("▶ 7. a drift incident published twice on the drift-alerts topic")
    topic = config.topic_for("drift.alert")
    publisher = PublisherClient()
    incident = json.dumps(_drift_incident(f"0.demo-{after[:8]}")).encode()
    for _ in range(2):
        publisher.publish(publisher.topic_path(project, topic), incident).result(timeout=30)
    say(f"    incident 0.demo-{after[:8]} (model=churn), twice, on {topic}")

    say("▶ 8. the chain at work: every step as the run ledger records it")
    _watch(ledger, outcome, began)
    _quarantine(ports, dataset)
    push_run = ledger.get_run(outcome.runs["push"])
    registered = push_run.step(REGISTERED) if push_run is not None else None
    if registered is not None:
        outcome.candidate_uri = str(registered.detail.get("result", {}).get("artifact_uri", ""))
    pointer = ledger.get_doc("pointers", "image-server")
    if pointer is not None:
        outcome.server_image = str(pointer.data.get("image", ""))
    return outcome


def _watch(ledger: Any, outcome: ChainOutcome, began: float) -> None:
    """Print new steps of the chain's runs until the push, data and drift runs reach the registry (or end)."""
    from shared.ledger import RunStatus

    printed: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + CHAIN_TIMEOUT_SECONDS
    while True:
        runs = [
            run
            for run in ledger.list_runs(limit=50)
            if str(run.cause.get("cause", "")) in ("push", "data", "drift")
        ]
        for run in sorted(runs, key=lambda r: r.started_at):
            cause = str(run.cause.get("cause", ""))
            if cause == "data" and "-q-" in run.run_id:
                cause = "quarantine"  # each quarantined object has a run of its own, finished at once
            outcome.runs.setdefault(cause, run.run_id)
            for step in run.steps:
                if step.name.startswith("notify:"):
                    continue  # deliveries are in the timelines below; the live view shows the chain
                key = (run.run_id, step.name, step.status.value)
                if key not in printed:
                    printed.add(key)
                    say(
                        f"    {time.monotonic() - began:6.1f}s  {run.run_id:<44} {step.name:<26} "
                        f"{step.status.value}"
                    )
        wanted = [outcome.runs.get(cause) for cause in ("push", "data", "drift")]
        finished = {
            run.run_id
            for run in runs
            if run.status is not RunStatus.RUNNING or run.step(REGISTERED) is not None
        }
        if all(run_id and run_id in finished for run_id in wanted):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the chain did not finish within {CHAIN_TIMEOUT_SECONDS:.0f}s: "
                f"runs {outcome.runs}, finished {sorted(finished)}"
            )
        time.sleep(0.5)


def _quarantine(ports: Any, dataset: Any) -> None:
    listed = ports.objects.list(dataset.bucket, prefix="quarantine/")
    for item in listed:
        if item.name.endswith(".report.json"):
            report = json.loads(ports.objects.read_text(dataset.bucket, item.name))
            checks = sorted(
                {
                    str(f.get("check", "?")) + ":" + str(f.get("column", ""))
                    for f in report.get("failures", [])
                }
            )
            say(f"    quarantined: gs://{dataset.bucket}/{item.name} — failed checks {', '.join(checks)}")
