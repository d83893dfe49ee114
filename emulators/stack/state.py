"""What a running stack records in ``stack.json``: every process (PID = process-group id), port, log file
and the variables it exports, so ``down``, ``status`` and ``env`` work from any later process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulators.common.proc import StackError, group_alive


@dataclass
class Component:
    """One started process of the stack."""

    name: str
    pid: int
    port: int
    log: str
    url: str

    def alive(self) -> bool:
        return group_alive(self.pid)


@dataclass
class StackState:
    project: str
    config: str
    started_at: str
    components: dict[str, Component] = field(default_factory=dict)  # in start order
    env: dict[str, str] = field(default_factory=dict)
    dead_letter_subscriptions: dict[str, str] = field(default_factory=dict)
    grpc_hosts: dict[str, str] = field(default_factory=dict)  # API emulator -> its gRPC host:port
    extra_hosts: dict[str, str] = field(default_factory=dict)  # e.g. "run--monitoring-port" -> host:port

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        components = {name: Component(**value) for name, value in data.get("components", {}).items()}
        return cls(
            project=data["project"],
            config=data["config"],
            started_at=data["started_at"],
            components=components,
            env=data.get("env", {}),
            dead_letter_subscriptions=data.get("dead_letter_subscriptions", {}),
            grpc_hosts=data.get("grpc_hosts", {}),
            extra_hosts=data.get("extra_hosts", {}),
        )


def load_state(path: Path) -> StackState | None:
    """The state recorded at ``path``, or None when no stack was started there."""
    try:
        return StackState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise StackError(f"{path} is unreadable ({error}); remove it after stopping by hand") from error


def save_state(path: Path, state: StackState) -> None:
    """Write ``state`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state.to_json(), indent=2))
    temporary.replace(path)
