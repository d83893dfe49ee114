"""``python -m shared.operator deploy plan`` with no stack and no credentials, as `make plan` runs it, and
the Cloud Build configs that run the same plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[4]


def _bare_env(**extra: str) -> dict[str, str]:
    """No emulator, no credentials, no project: only what a fresh shell has."""
    keep = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {**keep, "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json", **extra}


def _deploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.operator", "deploy", *args],
        cwd=ROOT,
        env=_bare_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plan_runs_without_a_stack_or_credentials_and_reads_in_two_minutes() -> None:
    done = _deploy("plan", GOOGLE_CLOUD_PROJECT="acme-ml-prod")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "deploy plan for project acme-ml-prod, region us-central1 (from pipeline.yaml)"
    assert lines[1].split(":")[0].endswith("steps")
    header = next(line for line in lines if line.startswith("FUNCTION"))
    assert header.split() == ["FUNCTION", "TRIGGER", "IDENTITY", "SECRETS", "DEAD-LETTER", "ROLES"]
    for name in ("notify", "on_git_push", "on_chat_approval", "reconcile", "on_data_object", "start_rollout"):
        assert any(line.startswith(f"{name} ") for line in lines), name
    commands = [line for line in lines if line.startswith("gcloud ")]
    assert any(line.startswith("gcloud functions deploy reconcile ") for line in commands)
    assert "gcloud secrets versions access latest --secret=mlops-github-webhook-secret" in done.stdout
    summary = lines[: lines.index(next(line for line in lines if line.startswith("# the commands")))]
    assert len(summary) < 40  # a short summary first; the commands follow


def test_cloudbuild_format_runs_the_same_steps(tmp_path: Path) -> None:
    target = tmp_path / "deploy-steps.yaml"
    done = _deploy("plan", "--format", "cloudbuild", "-o", str(target), GOOGLE_CLOUD_PROJECT="acme-ml-prod")
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load(target.read_text(encoding="utf-8"))
    plan = _deploy("plan", "--format", "json", GOOGLE_CLOUD_PROJECT="acme-ml-prod")
    steps = yaml.safe_load(plan.stdout)["steps"]
    assert len(document["steps"]) == len(steps) + 1  # the config check first
    assert document["steps"][0]["id"] == "check-config"
    for built, step in zip(document["steps"][1:], steps, strict=True):
        script = built["args"][1]
        assert built["name"].startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli")
        assert script.startswith("set -euo pipefail; ")
        assert "describe" in script or "list" in script or "get-iam-policy" in script
        assert step["command"].split("  #")[0].replace("$", "$$") in script
    # Cloud Build substitutes $NAME: every shell $ is escaped as $$
    assert all("$(" not in built["args"][1].replace("$$(", "") for built in document["steps"][1:])


def test_the_committed_build_config_applies_the_plan() -> None:
    document = yaml.safe_load((ROOT / "cloudbuild/deploy-functions.yaml").read_text(encoding="utf-8"))
    (step,) = document["steps"]
    assert "GOOGLE_CLOUD_PROJECT=$PROJECT_ID" in step["env"]
    assert "python -m shared.operator deploy apply" in step["args"][1]
    assert "python -m shared.config check pipeline.yaml" in step["args"][1]


def test_a_wiring_error_stops_the_plan(tmp_path: Path) -> None:
    config = (
        (ROOT / "pipeline.yaml")
        .read_text(encoding="utf-8")
        .replace(
            '    - {function: reconcile, access: private, schedule: "* * * * *"}'
            "   # Cloud Scheduler, OIDC token\n",
            "",
        )
    )
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas/churn.yaml").write_text((ROOT / "schemas/churn.yaml").read_text(encoding="utf-8"))
    (tmp_path / "pipeline.yaml").write_text(config, encoding="utf-8")
    done = _deploy("plan", "--config", str(tmp_path / "pipeline.yaml"))
    assert done.returncode == 2
    assert (
        "reconcile is exported by main.py (an HTTP function) but not wired; add it to spec.http"
        in done.stderr
    )
