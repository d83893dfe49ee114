"""Check a rendered ``gcloud`` command against the installed Cloud CLI, offline and fast.

The SDK ships its whole command tree for shell completion (``data/cli/gcloud_completions.py`` under the SDK
root: every group, command and flag); reading it takes about a second, where ``gcloud ... --help`` takes
seconds per command. A boolean flag ``--x`` also accepts ``--no-x``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

TREE_FILE = Path("data/cli/gcloud_completions.py")


def sdk_root() -> Path | None:
    """The installed Cloud SDK's root, or None when ``gcloud`` is not on PATH."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    for parent in Path(gcloud).resolve().parents:
        if (parent / TREE_FILE).is_file():
            return parent
    done = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    root = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return root if root is not None and (root / TREE_FILE).is_file() else None


@cache
def load_tree(path: Path) -> dict[str, Any]:
    """The static completion tree (``STATIC_COMPLETION_CLI_TREE``, a plain literal in the SDK's own file).

    Loaded as a module so Python's bytecode cache next to it (``__pycache__``, shipped with the SDK) is used:
    about a second, against twenty for parsing the 6 MB literal with ``ast.literal_eval``."""
    spec = importlib.util.spec_from_file_location("gcloud_completions", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tree = getattr(module, "STATIC_COMPLETION_CLI_TREE", None)
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: no STATIC_COMPLETION_CLI_TREE")
    return tree


def problems(argv: Sequence[str], tree: dict[str, Any]) -> list[str]:
    """What is wrong with ``argv`` (``gcloud GROUP... COMMAND [POSITIONALS] --flags``) for this CLI."""
    if not argv or argv[0] != "gcloud":
        return [f"not a gcloud command: {' '.join(argv)[:80]}"]
    node, path = tree, ["gcloud"]
    words = list(argv[1:])
    while words and not words[0].startswith("-") and words[0] in node.get("commands", {}):
        path.append(words[0])
        node = node["commands"][words.pop(0)]
    if node.get("commands"):
        following = words[0] if words else "(nothing)"
        return [f"{' '.join(path)}: {following!r} is not one of its commands"]
    known = {**tree.get("flags", {}), **node.get("flags", {})}
    found: list[str] = []
    for word in words:
        if not word.startswith("--"):
            continue
        flag = word.split("=", 1)[0]
        negated = "--" + flag[len("--no-") :] if flag.startswith("--no-") else None
        if flag in known or (negated is not None and known.get(negated) == "bool"):
            continue
        found.append(f"{' '.join(path)}: no flag {flag}")
    return found
