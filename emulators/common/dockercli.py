"""A ``docker`` command line over the local image registry, for emulated build steps.

``python -m emulators.common.dockercli build -t IMG [-f Dockerfile] [--build-arg K=V] [--target T] CONTEXT``,
``push IMG``, ``pull IMG``, ``tag SRC DST``, ``images``, ``inspect IMG``. The registry folder comes from
``LOCAL_REGISTRY_DIR``. Anything else (``run``, ``buildx``, ``login``...) exits non-zero saying that the
emulator cannot do it, so a build step never succeeds silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from emulators.common.registry import LocalRegistry, RegistryError

_IGNORED_WITH_VALUE = {
    "--cache-from",
    "--network",
    "--platform",
    "--progress",
    "--label",
    "--iidfile",
    "--secret",
}
_IGNORED_FLAGS = {"--pull", "--no-cache", "-q", "--quiet", "--rm", "--force-rm", "--load"}


def _fail(message: str) -> int:
    print(f"docker (local emulator): {message}", file=sys.stderr)
    return 1


def build(registry: LocalRegistry, args: list[str]) -> int:
    tags: list[str] = []
    dockerfile: Path | None = None
    build_args: dict[str, str] = {}
    target: str | None = None
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_value, inline = arg.partition("=")
        takes_value = (
            name in ("-t", "--tag", "-f", "--file", "--build-arg", "--target") or name in _IGNORED_WITH_VALUE
        )
        value = ""
        if takes_value:
            if not has_value:
                index += 1
                if index >= len(args):
                    raise RegistryError(f"flag {name} needs a value")
                inline = args[index]
            value = inline
        if name in ("-t", "--tag"):
            tags.append(value)
        elif name in ("-f", "--file"):
            dockerfile = Path(value)
        elif name == "--build-arg":
            key, _, val = value.partition("=")
            build_args[key] = val
        elif name == "--target":
            target = value
        elif takes_value or name in _IGNORED_FLAGS:
            pass
        elif arg.startswith("-") and arg != "-":
            raise RegistryError(f"docker build flag {name} is not supported by the emulator")
        else:
            positional.append(arg)
        index += 1
    if len(positional) != 1:
        raise RegistryError('"docker build" requires exactly 1 argument (the build context)')
    if positional[0] == "-" or "://" in positional[0]:
        raise RegistryError(f"build context {positional[0]!r} is not supported: use a local directory")
    context = Path(positional[0])
    if dockerfile is None:
        dockerfile = context / "Dockerfile"
    record = registry.build(context, tags, dockerfile, build_args, target)
    for line in record.skipped_run:
        print(f"RUN {line}  (not executed: dependencies come from the emulator's environment)")
    print(f"Successfully built {record.digest}")
    for tag in tags:
        print(f"Successfully tagged {tag}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    registry = LocalRegistry.from_env()
    if not args:
        return _fail("no command given")
    command, rest = args[0], args[1:]
    try:
        if command == "build":
            return build(registry, rest)
        if command == "push":
            if len(rest) != 1:
                return _fail('"docker push" requires exactly 1 argument')
            record = registry.resolve(rest[0])
            print(f"The push refers to repository [{rest[0]}]")
            print(f"latest: digest: {record.digest}")
            return 0
        if command == "pull":
            if len(rest) != 1:
                return _fail('"docker pull" requires exactly 1 argument')
            try:
                record = registry.resolve(rest[0])
            except RegistryError:
                return _fail(
                    f"{rest[0]} is not in the local registry and the emulator cannot pull remote images"
                )
            print(f"Digest: {record.digest}")
            return 0
        if command == "tag":
            if len(rest) != 2:
                return _fail('"docker tag" requires exactly 2 arguments')
            registry.tag(rest[0], rest[1])
            return 0
        if command == "images":
            for record in registry.list_images():
                for name in record.names or ["<none>"]:
                    print(f"{name}\t{record.digest}\t{record.created}")
            return 0
        if command == "inspect":
            print(json.dumps([registry.resolve(name).to_json() for name in rest], indent=2))
            return 0
    except RegistryError as error:
        return _fail(str(error))
    return _fail(
        f'"docker {command}" cannot run in the local emulator '
        "(supported: build, push, pull, tag, images, inspect)"
    )


if __name__ == "__main__":
    sys.exit(main())
