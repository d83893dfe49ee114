"""The plan's vocabulary: a command, a step (describe, then create or update), and the plan itself.

A step is idempotent by construction: ``describe`` says whether the resource is there and what it holds
(JSON); ``desired`` is what that JSON must contain for the step to be done (see :func:`matches`); ``create``
makes a missing resource; ``update`` (optional) corrects one that differs. Commands are argv tuples, never
shell strings: a value that only the project knows (its number, the subscription Eventarc named) is a
:class:`Lookup`, resolved by running its command at apply time and rendered as ``"$(...)"`` for a shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Lookup:
    """A value read from the project at apply time: ``template`` with ``{}`` replaced by the output of
    ``argv`` (a ``gcloud ... --format=value(FIELD)`` call)."""

    argv: tuple[str, ...]
    template: str = "{}"

    def render(self) -> str:
        return self.template.format(f"$({shlex.join(self.argv)})")


Arg = str | Lookup


@dataclass(frozen=True)
class Secret:
    """Where a secret version's value comes from at apply time: an environment variable of the deployer's
    shell, or generated (a webhook secret we choose; printed at the end for pasting into GitHub/GitLab)."""

    variable: str
    generate: bool = False


@dataclass(frozen=True)
class Command:
    argv: tuple[Arg, ...]
    stdin: Secret | None = None  # a secret version's value, never on the command line

    def render(self) -> str:
        parts = [arg.render() if isinstance(arg, Lookup) else shlex.quote(arg) for arg in self.argv]
        text = " ".join(f'"{part}"' if part.startswith("$(") or "$(" in part else part for part in parts)
        if self.stdin is not None:
            source = "a generated value" if self.stdin.generate else f"${self.stdin.variable}"
            text = f"{text}  # stdin: {source}"
        return text

    def lookups(self) -> tuple[Lookup, ...]:
        return tuple(arg for arg in self.argv if isinstance(arg, Lookup))

    def plain(self) -> tuple[str, ...]:
        """The argv with every lookup as its rendered text (for display and checks)."""
        return tuple(arg.render() if isinstance(arg, Lookup) else arg for arg in self.argv)


def gcloud(*args: Arg, stdin: Secret | None = None) -> Command:
    return Command(("gcloud", *args), stdin)


@dataclass(frozen=True)
class Step:
    """One resource (or one grant) in a project, made idempotent: describe, then create or update."""

    kind: str
    name: str
    describe: Command
    create: Command
    update: Command | None = None
    desired: Any = field(default_factory=dict)  # what describe's JSON must contain (see ``matches``)
    why: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def commands(self) -> tuple[Command, ...]:
        return (
            (self.create,)
            if self.update is None or self.update == self.create
            else (self.create, self.update)
        )


@dataclass(frozen=True)
class FunctionPlan:
    """One deployed function: how it is triggered, who it runs as, what it may do and read."""

    name: str
    kind: str  # pubsub | storage | http
    trigger: str  # human text: the topic, the bucket, public/private HTTP
    identity: str  # service account email
    roles: tuple[str, ...]  # "ROLE on RESOURCE"
    secrets: tuple[str, ...]  # ENV=secret-name
    dead_letter: str  # "TOPIC after N attempts" or "-"
    url: str


@dataclass(frozen=True)
class Plan:
    project: str
    region: str
    source: str  # the configuration file
    functions: tuple[FunctionPlan, ...]
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()  # what the reviewer should know (variables unset, identities unused)
    webhooks: tuple[tuple[str, str], ...] = ()  # (url, secret name) to paste into GitHub / GitLab

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.kind] = counts.get(step.kind, 0) + 1
        return counts


def matches(actual: Any, desired: Any) -> bool:
    """Does ``actual`` (a describe's JSON) contain ``desired``? Mappings: every desired key matches; lists:
    every desired item matches some actual item (IAM bindings, enabled services); scalars: equal as text
    (Pub/Sub says ``"30"`` or ``30`` for the same ack deadline depending on the command)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and matches(actual[key], value) for key, value in desired.items()
        )
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(actual, Sequence) or isinstance(actual, str):
            return False
        return all(any(matches(item, wanted) for item in actual) for wanted in desired)
    return str(actual) == str(desired)
