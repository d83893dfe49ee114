"""One source of truth: every function ``main.py`` exports is wired in the config, and nothing else is.

``spec.triggers`` wires Pub/Sub functions, ``spec.buckets`` storage functions and ``spec.http`` HTTP
functions; an entry point's kind is read from its code (:mod:`shared.deploy.discover`). Run by
``python -m shared.config check`` and by the deploy plan, never at a function's cold start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shared.deploy.discover import DiscoveryError, EntryPoint, entry_points
from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.config import PipelineConfig

_SECTION = {"pubsub": "spec.triggers", "storage": "spec.buckets", "http": "spec.http"}
_WHAT = {
    "pubsub": "a Pub/Sub function",
    "storage": "a storage (CloudEvent) function",
    "http": "an HTTP function",
}


def wiring_problems(config: PipelineConfig, exported: tuple[EntryPoint, ...]) -> list[str]:
    wired: dict[str, list[str]] = {}
    for trigger in config.triggers:
        wired.setdefault(trigger.function, []).append("pubsub")
    for bucket in config.buckets:
        wired.setdefault(bucket.function, []).append("storage")
    for endpoint in config.http:
        wired.setdefault(endpoint.function, []).append("http")
    problems: list[str] = []
    by_name = {entry.name: entry for entry in exported}
    for entry in exported:
        kinds = wired.get(entry.name, [])
        if not kinds:
            problems.append(
                f"{_SECTION[entry.kind]}: {entry.name} is exported by main.py ({_WHAT[entry.kind]}) but not "
                f"wired; add it to {_SECTION[entry.kind]}"
            )
        for kind in sorted(set(kinds) - {entry.kind}):
            problems.append(
                f"{_SECTION[kind]}: {entry.name} is {_WHAT[entry.kind]} (its code), not {_WHAT[kind]}; "
                f"wire it in {_SECTION[entry.kind]}"
            )
    for name, kinds in wired.items():
        if name not in by_name:
            problems.append(
                f"{_SECTION[kinds[0]]}: {name} is wired but main.py does not export it (add it to __all__)"
            )
    http_names = [endpoint.function for endpoint in config.http]
    problems.extend(
        f"spec.http: {name} is listed twice"
        for name in sorted({n for n in http_names if http_names.count(n) > 1})
    )
    return problems


def check_wiring(config: PipelineConfig, root: Path) -> tuple[EntryPoint, ...]:
    """The exported entry points, or a :class:`ConfigError` naming every wiring problem."""
    try:
        exported = entry_points(root)
    except (DiscoveryError, OSError, SyntaxError) as error:
        raise ConfigError(f"{config.source}: cannot read the entry points: {error}") from error
    problems = wiring_problems(config, exported)
    if problems:
        listing = "\n".join(f"  {config.source}: {problem}" for problem in problems)
        raise ConfigError(
            f"{config.source}: {len(problems)} wiring problem(s) between the configuration and main.py:\n"
            f"{listing}",
            problems=[f"{config.source}: {problem}" for problem in problems],
        )
    return exported
