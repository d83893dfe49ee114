"""What the source tree says about each entry point, read statically (``ast``), never by importing it.

Importing ``main.py`` would load the configuration and every function module; the plan must run with no
stack, no credentials and no side effect, so the facts are read from the source:

* the entry points: ``main.py``'s ``__all__`` and the ``from functions.X import NAME`` lines;
* each entry point's **kind**: it returns :func:`shared.function.pubsub_endpoint` (``pubsub``),
  :func:`shared.function.cloudevent_endpoint` (``storage``), or anything else (``http``: ``run_http`` or a
  plain ``@functions_framework.http`` such as ``reconcile``);
* what its **path** uses: the domain modules it reaches (imports, and the module paths the reconciler loads
  by name), then in them the ports it calls (``ports.builds``...), the event kinds it emits
  (``Emit(KIND, ...)``), whether it sends notifications, and the environment variables it reads (module
  constants named ``*_VARIABLE``). Plumbing every function shares (runtime, steps, ledger, ports' own
  modules) is left out on purpose: it imports every port, so it would grant every function everything.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: The packages whose modules are a function's own path (domain code); see the module docstring.
DOMAIN_PACKAGES = (
    "functions.",
    "shared.chain",
    "shared.approval",
    "shared.rollout.",
    "shared.notify",
    "shared.training",
    "shared.ingest",
)
PORTS = ("builds", "training", "registry", "deployments", "metrics", "objects")
KINDS = ("pubsub", "storage", "http")
_PORT_USE = re.compile(r"\bports\.(" + "|".join(PORTS) + r")\b")
_MODULE_PATH = re.compile(r"^(shared|functions)(\.[a-z_][a-z0-9_]*)+$")


@dataclass(frozen=True)
class EntryPoint:
    """One exported function and what its code path needs."""

    name: str
    module: str
    kind: str  # pubsub | storage | http
    ports: frozenset[str]
    emits: frozenset[str]  # internal event kinds it publishes
    notifies: bool  # delivers notifications itself (webhooks, Slack, Chat, email)
    variables: frozenset[str]  # environment variables its path reads


class DiscoveryError(Exception):
    """The source tree does not have the shape the plan reads (no ``__all__``, an unknown import...)."""


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def exported(root: Path) -> dict[str, str]:
    """``main.py``'s ``__all__``: entry point name -> the module it is imported from."""
    main = root / "main.py"
    if not main.is_file():
        raise DiscoveryError(f"{main}: not found")
    tree = _tree(main)
    modules: dict[str, str] = {}
    names: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("functions."):
            for alias in node.names:
                modules[alias.asname or alias.name] = node.module
        if isinstance(node, ast.Assign | ast.AnnAssign) and any(
            isinstance(target, ast.Name) and target.id == "ENTRY_POINTS"
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        ):
            # The lazy form: ENTRY_POINTS = {"name": "functions.module", ...} (imported on first use).
            assert node.value is not None
            for name, module in dict(ast.literal_eval(node.value)).items():
                if str(module).startswith("functions."):
                    modules[str(name)] = str(module)
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            names = [str(item) for item in value]
    if names is None:
        raise DiscoveryError(f"{main}: no __all__ list")
    missing = [name for name in names if name not in modules]
    if missing:
        raise DiscoveryError(f"{main}: {', '.join(missing)} in __all__ but not imported from functions/")
    return {name: modules[name] for name in names}


def _skipped(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for the type checker, not the running path."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


@cache
def _references(root: Path, module: str) -> frozenset[str]:
    """Domain modules that ``module`` imports (anywhere, lazily too) or names as a string to import."""
    path = _module_file(root, module)
    if path is None:
        return frozenset()
    tree = _tree(path)
    skipped = _skipped(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.match(node.value)
        ):
            found.add(node.value)  # the reconciler's hooks are imported by module path
    return frozenset(name for name in found if name.startswith(DOMAIN_PACKAGES) and _module_file(root, name))


def domain_closure(root: Path, module: str) -> frozenset[str]:
    """Every domain module reachable from ``module``."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_references(root, current) - seen)
    return frozenset(seen)


def _entry_kind(root: Path, module: str, name: str) -> str:
    path = _module_file(root, module)
    if path is None:
        raise DiscoveryError(f"{module}: no such module")
    for node in _tree(path).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            called = {
                call.func.id
                for call in ast.walk(node)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            }
            if "pubsub_endpoint" in called:
                return "pubsub"
            if "cloudevent_endpoint" in called:
                return "storage"
            return "http"
    raise DiscoveryError(f"{path}: no function {name!r}")


def _string_constants(trees: list[ast.Module]) -> dict[str, str]:
    """Module-level ``NAME = "text"`` of the whole path (event kinds, variable names)."""
    constants: dict[str, str] = {}
    for tree in trees:
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = node.value.value
    return constants


@cache
def _emit_calls(tree: ast.Module) -> tuple[ast.Call, ...]:
    return tuple(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Emit"
    )


def _emitted(trees: list[ast.Module], constants: dict[str, str]) -> set[str]:
    kinds: set[str] = set()
    for tree in trees:
        for node in _emit_calls(tree):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                kinds.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                kinds.add(constants[first.id])
    return kinds


def entry_point(root: Path, name: str, module: str) -> EntryPoint:
    closure = sorted(domain_closure(root, module))
    paths = [path for path in (_module_file(root, item) for item in closure) if path is not None]
    trees = [_tree(path) for path in paths]
    text = "\n".join(path.read_text(encoding="utf-8") for path in paths)
    constants = _string_constants(trees)
    emits = _emitted(trees, constants)
    notifies = "shared.notify.deliver" in closure
    if "shared.chain.notices" in closure:
        emits.add("notification")  # notices are Emit()s built in one helper
    variables = {value for key, value in constants.items() if key.endswith("_VARIABLE")}
    return EntryPoint(
        name=name,
        module=module,
        kind=_entry_kind(root, module, name),
        ports=frozenset(_PORT_USE.findall(text)),
        emits=frozenset(emits),
        notifies=notifies,
        variables=frozenset(variables),
    )


def entry_points(root: Path) -> tuple[EntryPoint, ...]:
    """Every exported entry point of the tree at ``root``, in ``__all__`` order."""
    return tuple(entry_point(root, name, module) for name, module in exported(root).items())
