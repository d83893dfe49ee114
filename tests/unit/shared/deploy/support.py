"""The shipped configuration's plan, and a recorded project that answers ``gcloud`` like Google Cloud does."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.config import load_config
from shared.deploy.apply import Result, _resolve, _resolved
from shared.deploy.discover import entry_points
from shared.deploy.model import Command, Plan
from shared.deploy.plan import build_plan

ROOT = Path(__file__).resolve().parents[4]
RECORDED = Path(__file__).with_name("recorded_project.json")
PROJECT = "acme-ml-prod"


def shipped_plan(env: Mapping[str, str] | None = None) -> Plan:
    """The plan for pipeline.yaml with GOOGLE_CLOUD_PROJECT=acme-ml-prod (what a deployer would set)."""
    environment = {"GOOGLE_CLOUD_PROJECT": PROJECT, **(env or {})}
    config = load_config(ROOT / "pipeline.yaml", env=environment)
    return build_plan(config, entry_points(ROOT), ROOT, environment)


def _key(argv: Sequence[str]) -> str:
    return " ".join(arg for arg in argv if not arg.startswith("--format"))


def _merge(current: Any, desired: Any) -> Any:
    if isinstance(desired, Mapping) and isinstance(current, Mapping):
        merged = dict(current)
        for key, value in desired.items():
            merged[key] = _merge(current.get(key), value)
        return merged
    if isinstance(desired, list) and isinstance(current, list):
        merged_list = list(current)
        for item in desired:
            same = next((i for i, old in enumerate(merged_list) if _same_entry(old, item)), None)
            if same is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[same] = _merge(merged_list[same], item)
        return merged_list
    return copy.deepcopy(desired)


def _same_entry(old: Any, new: Any) -> bool:
    """An IAM binding is the same entry when its role is; other list items when equal."""
    if isinstance(old, Mapping) and isinstance(new, Mapping) and "role" in new:
        return bool(old.get("role") == new["role"])
    return bool(old == new)


class RecordedProject:
    """A fake ``gcloud``: describe calls are answered from a recorded state (describe argv without
    ``--format`` -> its JSON); a create or update of a planned step makes the state hold what the step
    wants, as the real command would; Eventarc names the subscription of a trigger it creates."""

    def __init__(self, plan: Plan, state: dict[str, Any], fail_on: str = "") -> None:
        self.plan, self.state, self.fail_on = plan, state, fail_on
        self.calls: list[tuple[str, ...]] = []
        self.mutations: list[tuple[str, ...]] = []
        self.stdin: dict[str, str] = {}

    @classmethod
    def recorded(cls, plan: Plan, fail_on: str = "") -> RecordedProject:
        return cls(plan, json.loads(RECORDED.read_text(encoding="utf-8")), fail_on)

    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        value_format = next((a for a in argv if a.startswith("--format=value(")), None)
        if value_format is not None:
            found = self.state.get(_key(argv))
            for part in value_format.removeprefix("--format=value(").removesuffix(")").split("."):
                found = found.get(part) if isinstance(found, Mapping) else None
            return Result(0, f"{found}\n") if found else Result(1, "", f"ERROR: NOT_FOUND: {_key(argv)}")
        if any(word in argv for word in ("describe", "get-iam-policy", "list")):
            if _key(argv) in self.state:
                return Result(0, json.dumps(self.state[_key(argv)]))
            if "list" in argv:
                return Result(0, "[]")
            return Result(1, "", f"ERROR: (gcloud) NOT_FOUND: {_key(argv)} was not found")
        return self._mutate(argv, stdin)

    def _mutate(self, argv: tuple[str, ...], stdin: str | None) -> Result:
        self.mutations.append(argv)
        if self.fail_on and self.fail_on in " ".join(argv):
            return Result(
                1,
                "",
                "ERROR: (gcloud) PERMISSION_DENIED: Permission denied on resource (or it may not exist)",
            )
        for step in self.plan.steps:
            for command in (step.create, step.update):
                if command is None or tuple(_resolve(command, self)) != argv:
                    continue
                key = _key(_resolve(step.describe, self))
                desired = _resolved(step.desired, self)
                current = self.state.get(key, [] if isinstance(desired, list) else {"name": step.name})
                self.state[key] = _merge(current, desired)
                if stdin is not None:
                    self.stdin[step.name] = stdin
                if argv[1:4] == ("eventarc", "triggers", "create"):
                    subscription = f"projects/{PROJECT}/subscriptions/eventarc-{step.name}-sub-123"
                    self.state[key]["transport"] = {"pubsub": {"subscription": subscription}}
                    self.state[f"gcloud pubsub subscriptions describe {subscription}"] = {
                        "name": subscription,
                        "ackDeadlineSeconds": 10,
                    }
                return Result(0, "")
        return Result(1, "", f"ERROR: the recorded project does not know {' '.join(argv)}")


def mutation_names(project: RecordedProject) -> list[str]:
    return [" ".join(argv[1:4]) for argv in project.mutations]


def render_all(plan: Plan) -> list[Command]:
    commands: list[Command] = []
    for step in plan.steps:
        commands.extend(c for c in (step.describe, step.create, step.update) if c is not None)
    return commands
