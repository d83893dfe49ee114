"""``.gcloudignore`` keeps each function's upload small without leaving out anything a function needs."""

from __future__ import annotations

import pytest

from shared.deploy.discover import domain_closure, exported
from tests.unit.shared.deploy.support import ROOT

pytestmark = pytest.mark.unit


def ignored_prefixes() -> tuple[list[str], list[str]]:
    """The file's patterns, split into anchored paths (``/x``, ``/x/``) and names ignored anywhere; any other
    syntax fails the test (so the check below stays exact)."""
    anchored: list[str] = []
    anywhere: list[str] = []
    for raw in (ROOT / ".gcloudignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!") and "**" not in line, f"unsupported pattern in .gcloudignore: {line}"
        if line.startswith("/"):
            anchored.append(line.lstrip("/").rstrip("/"))
        else:
            anywhere.append(line.rstrip("/"))
    return anchored, anywhere


def is_ignored(relative: str) -> bool:
    anchored, anywhere = ignored_prefixes()
    parts = relative.split("/")
    if any(relative == prefix or relative.startswith(prefix + "/") for prefix in anchored):
        return True
    return any(
        part == name or (name.startswith("*.") and part.endswith(name[1:]))
        for part in parts
        for name in anywhere
    )


def test_every_module_a_function_reaches_is_uploaded() -> None:
    needed = {"main.py", "requirements.txt", "pipeline.yaml", "schemas/churn.yaml"}
    needed |= {str(path.relative_to(ROOT)) for path in (ROOT / "cloudbuild").glob("*.yaml")}
    for module in exported(ROOT).values():
        for reached in domain_closure(ROOT, module):
            base = ROOT.joinpath(*reached.split("."))
            file = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
            needed.add(str(file.relative_to(ROOT)))
    needed |= {str(path.relative_to(ROOT)) for path in (ROOT / "shared").rglob("*.py")}
    left_out = sorted(path for path in needed if is_ignored(path))
    assert left_out == []


def test_what_no_function_needs_is_left_out() -> None:
    for path in (
        "tests/unit/test_cold_start.py",
        "bench/e2e.py",
        "emulators/run/router.py",
        ".venv/bin/python",
    ):
        assert is_ignored(path), path
    assert is_ignored("shared/__pycache__/x.cpython-311.pyc")
