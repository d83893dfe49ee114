"""How a build step runs locally: which builders the emulator can run, and the process that stands in for it.

- ``gcr.io/cloud-builders/docker`` (or ``docker``) without another entrypoint: the local-registry docker CLI
  (:mod:`emulators.common.dockercli`): ``build`` records an image, ``push`` fails for an image never built.
- ``bash``, ``ubuntu``, ``debian``, ``alpine``, ``busybox``, ``python[:TAG]``, ``gcr.io/cloud-builders/git``:
  the host's tools, with ``python``/``pip`` mapped to the emulator's interpreter and ``docker`` to the
  local-registry CLI.
- An image of the local registry: its command runs like a container (``entrypoint`` replaces ENTRYPOINT,
  ``args`` replace CMD), in the workspace.
- Anything else fails the step with a message saying the builder cannot run locally.

The step runs with the workspace as ``/workspace``: arguments, ``dir``, ``entrypoint`` and env values that
name ``/workspace`` are mapped to the build's workspace folder.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulators.common.localrun import Invocation, base_env, container_invocation, map_executable
from emulators.common.registry import LocalRegistry, RegistryError, parse_reference

# Builder (repository, normalised) → its default entrypoint ([] means args[0] is the command).
LOCAL_BUILDERS: dict[str, list[str]] = {
    "bash": ["bash"],
    "ubuntu": [],
    "debian": [],
    "alpine": [],
    "busybox": [],
    "python": ["python"],
    "gcr.io/cloud-builders/git": ["git"],
    "gcr.io/cloud-builders/docker": ["docker"],
    "docker": ["docker"],
}
_SHELLS = {"bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/env"}
_WORKSPACE = re.compile(r"(?<![\w./-])/workspace(?=/|$|[\s\"';:])")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class StepError(RuntimeError):
    """The step cannot run locally; the message is the step's failure detail."""


def builder_repository(name: str) -> str:
    """``docker.io/library/python:3.11-slim`` → ``python``; tags and digests dropped."""
    try:
        repository = parse_reference(name).repository
    except RegistryError as error:
        raise StepError(str(error)) from error
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix) :]
    return repository


def map_workspace(value: str, workspace: Path) -> str:
    return _WORKSPACE.sub(lambda _: str(workspace), value)


@dataclass
class StepSpec:
    index: int
    name: str
    args: list[str]
    entrypoint: str
    dir: str
    env: dict[str, str]
    script: str


def step_cwd(spec: StepSpec, workspace: Path) -> Path:
    directory = map_workspace(spec.dir, workspace) if spec.dir else str(workspace)
    path = Path(directory) if Path(directory).is_absolute() else workspace / directory
    if not path.resolve().is_relative_to(workspace.resolve()):
        raise StepError(f'build step {spec.index}: dir "{spec.dir}" is outside /workspace')
    path.mkdir(parents=True, exist_ok=True)
    return path


def _script_argv(spec: StepSpec, build_dir: Path, default_shell: str) -> list[str]:
    path = build_dir / f"step-{spec.index}.script"
    path.write_text(spec.script if spec.script.endswith("\n") else spec.script + "\n")
    path.chmod(0o755)
    first = spec.script.splitlines()[0] if spec.script.strip() else ""
    if first.startswith("#!"):
        interpreter = shlex.split(first[2:].strip())
        if interpreter[:1] == ["/usr/bin/env"]:
            interpreter = interpreter[1:]
        return map_executable([*interpreter, str(path)])
    return [default_shell, str(path)]


def plan_step(
    spec: StepSpec,
    workspace: Path,
    build_dir: Path,
    registry: LocalRegistry,
    shims: Path,
    env: Mapping[str, str],
) -> Invocation:
    """The local process for ``spec``, or StepError saying why it cannot run here."""
    cwd = step_cwd(spec, workspace)
    args = [map_workspace(arg, workspace) for arg in spec.args]
    entrypoint = map_workspace(spec.entrypoint, workspace) if spec.entrypoint else ""
    step_env = {key: map_workspace(value, workspace) for key, value in env.items()}
    repository = builder_repository(spec.name)
    if repository in LOCAL_BUILDERS:
        default = LOCAL_BUILDERS[repository]
        if spec.script:
            argv = _script_argv(spec, build_dir, "bash" if repository == "bash" else "sh")
        elif entrypoint:
            argv = [entrypoint, *args]
        else:
            argv = [*default, *args]
        if not argv:
            raise StepError(f'build step {spec.index} "{spec.name}": no command (set entrypoint or args)')
        if argv[0] == "docker":
            argv = [sys.executable, "-m", "emulators.common.dockercli", *argv[1:]]
            step_env["PYTHONPATH"] = (
                f"{_PACKAGE_ROOT}:{step_env['PYTHONPATH']}"
                if step_env.get("PYTHONPATH")
                else str(_PACKAGE_ROOT)
            )
        return Invocation(argv=map_executable(argv), cwd=cwd, env=base_env(shims, step_env))
    try:
        image = registry.resolve(spec.name)
    except RegistryError:
        image = None
    if image is not None:
        invocation = container_invocation(
            image,
            build_dir / f"step-{spec.index}-image",
            shims,
            command=[entrypoint] if entrypoint else None,
            args=args or None,
            env=step_env,
        )
        invocation.cwd = cwd
        return invocation
    raise StepError(
        f'build step {spec.index} "{spec.name}" cannot run locally: the Cloud Build emulator runs the docker '
        f"builder (build/push/tag), bash/ubuntu/debian/alpine/busybox/python/git builders and images of the "
        f"local registry; {spec.name} is none of these"
    )


def parse_env(entries: Sequence[str], where: str) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` → dict; a malformed entry raises ValueError naming ``where``."""
    result: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid value for '{where}': {entry!r} is not of the form KEY=VALUE")
        result[key] = value
    return result
