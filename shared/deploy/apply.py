"""Apply a plan: for each step describe, then create (missing) or update (differs), or nothing (done).

Safe to re-run: a step whose describe already shows what it wants runs nothing. Stops at the first failure
and says what to fix. Commands go through a :class:`Runner` (the real one runs ``gcloud``; tests answer
from a recorded project state).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.deploy.model import Command, Lookup, Plan, Step, matches

_NOT_FOUND = ("NOT_FOUND", "not found", "does not exist", "was not found", "404")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result: ...


class GcloudRunner:
    """Runs the commands for real (``gcloud`` on PATH, with the deployer's credentials)."""

    def __init__(self, project: str, timeout: float = 900.0) -> None:
        self.project, self.timeout = project, timeout

    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result:
        full = [*argv, f"--project={self.project}", "--quiet"]
        done = subprocess.run(
            full, input=stdin, capture_output=True, text=True, timeout=self.timeout, check=False
        )
        return Result(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Change:
    step: Step
    action: str  # none | create | update | differs (present, differs, and no update command)
    detail: str = ""


class ApplyError(Exception):
    """A step failed: the message says which, what gcloud said and what to fix."""


def _resolve(command: Command, runner: Runner) -> list[str]:
    argv: list[str] = []
    for arg in command.argv:
        if isinstance(arg, Lookup):
            result = runner.run(list(arg.argv))
            value = result.stdout.strip()
            if result.returncode != 0 or not value:
                raise ApplyError(
                    f"cannot read {' '.join(arg.argv[1:4])}…: {result.stderr.strip() or 'empty answer'}"
                )
            argv.append(arg.template.format(value))
        else:
            argv.append(arg)
    return argv


def _resolved(value: Any, runner: Runner) -> Any:
    """``desired`` with every :class:`Lookup` replaced by what the project says (the project number...)."""
    if isinstance(value, Lookup):
        return _resolve(Command((value,)), runner)[0]
    if isinstance(value, Mapping):
        return {key: _resolved(item, runner) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, runner) for item in value]
    return value


def _absent(result: Result) -> bool:
    return result.returncode != 0 and any(marker in result.stderr for marker in _NOT_FOUND)


def examine(step: Step, runner: Runner) -> Change:
    """What the step would do against the project as ``runner`` sees it."""
    try:
        argv = _resolve(step.describe, runner)
    except ApplyError as error:
        return Change(step, "create", str(error))  # what it depends on is missing: it is made in order
    result = runner.run(argv)
    if _absent(result):
        return Change(step, "create")
    if result.returncode != 0:
        raise ApplyError(
            f"{step.key}: describe failed: {result.stderr.strip()}\n  fix: {hint(result.stderr)}"
        )
    try:
        current: Any = json.loads(result.stdout or "null")
    except json.JSONDecodeError:
        current = result.stdout
    if current in (None, [], {}) and step.desired not in ({}, None):
        return Change(step, "create")
    if matches(current, _resolved(step.desired, runner)):
        return Change(step, "none")
    if isinstance(step.desired, list):  # a listing (enabled APIs, indexes, channels) without ours
        return Change(step, "create")
    return Change(step, "update" if step.update is not None else "differs")


def changes(plan: Plan, runner: Runner) -> list[Change]:
    """Every step and what it would do now (describe calls only; nothing is changed)."""
    return [examine(step, runner) for step in plan.steps]


def hint(stderr: str) -> str:
    text = stderr.lower()
    if "permission" in text or "403" in text:
        return "the deployer needs Owner, or the roles listed in docs/deploy.md (Deploying identity)"
    if "has not been used" in text or "service_disabled" in text or "is disabled" in text:
        return "an API is not enabled yet; wait a minute after `services enable` and re-run"
    if "billing" in text:
        return "link a billing account to the project"
    if "credentials" in text or "gcloud auth" in text:
        return "run `gcloud auth login` (and `gcloud auth application-default login`)"
    return "read gcloud's message above, fix it, then re-run `deploy apply` (done steps are skipped)"


def secret_value(command: Command, env: Mapping[str, str], generated: dict[str, str]) -> str | None:
    if command.stdin is None:
        return None
    value = env.get(command.stdin.variable, "")
    if value:
        return value
    if command.stdin.generate:
        generated[command.stdin.variable] = generated.get(command.stdin.variable) or base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode().rstrip("=")
        return generated[command.stdin.variable]
    raise ApplyError(
        f"set {command.stdin.variable} in your shell (its value goes to Secret Manager) and re-run"
    )


def apply(
    plan: Plan,
    runner: Runner,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run the plan; returns the generated secrets (variable -> value) to show once. Raises
    :class:`ApplyError` at the first failure."""
    env = os.environ if env is None else env
    generated: dict[str, str] = {}
    for index, step in enumerate(plan.steps, start=1):
        change = examine(step, runner)
        label = f"[{index}/{len(plan.steps)}] {step.key}"
        if change.action == "none":
            say(f"{label}: ok")
            continue
        if change.action == "differs":
            raise ApplyError(
                f"{label}: exists but differs from the plan and has no update command\n"
                f"  fix: delete or correct it by hand ({step.describe.render()}), then re-run"
            )
        command = step.create if change.action == "create" else (step.update or step.create)
        stdin = secret_value(command, env, generated)
        result = runner.run(_resolve(command, runner), stdin)
        if result.returncode != 0:
            raise ApplyError(
                f"{label}: {change.action} failed:\n  {command.render()}\n  {result.stderr.strip()}\n"
                f"  fix: {hint(result.stderr)}"
            )
        say(f"{label}: {change.action}d")
    return generated
