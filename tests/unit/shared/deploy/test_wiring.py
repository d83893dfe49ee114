"""One source of truth: a function exported by main.py but not wired, or wired but not exported, is a
configuration error at ``check`` time; an entry point's kind is read from its code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import parse_config
from shared.deploy.discover import EntryPoint, entry_points
from shared.deploy.wiring import wiring_problems
from tests.unit.shared.deploy.support import ROOT

pytestmark = pytest.mark.unit


def _entry(name: str, kind: str) -> EntryPoint:
    return EntryPoint(name, f"functions.{name}", kind, frozenset(), frozenset(), False, frozenset())


def _config(**spec: object):  # type: ignore[no-untyped-def]
    document = {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "p", **spec}}
    return parse_config(document, "pipeline.yaml", env={})


def test_the_kind_of_each_entry_point_is_read_from_its_code() -> None:
    kinds = {entry.name: entry.kind for entry in entry_points(ROOT)}
    assert kinds["notify"] == "pubsub"
    assert kinds["on_data_object"] == "storage"
    assert kinds["on_git_push"] == "http"
    assert kinds["reconcile"] == "http"  # a plain @functions_framework.http


def test_exported_but_not_wired_is_a_problem() -> None:
    config = _config(triggers=[{"function": "notify", "event": "notification"}])
    problems = wiring_problems(config, (_entry("notify", "pubsub"), _entry("on_git_push", "http")))
    assert problems == [
        "spec.http: on_git_push is exported by main.py (an HTTP function) but not wired; add it to spec.http"
    ]


def test_wired_but_not_exported_is_a_problem() -> None:
    config = _config(
        triggers=[{"function": "notify", "event": "notification"}],
        buckets=[{"name": "b", "function": "on_gone"}],
    )
    problems = wiring_problems(config, (_entry("notify", "pubsub"),))
    assert problems == ["spec.buckets: on_gone is wired but main.py does not export it (add it to __all__)"]


def test_a_function_wired_as_the_wrong_kind_is_a_problem() -> None:
    config = _config(http=[{"function": "notify", "access": "public"}])
    problems = wiring_problems(config, (_entry("notify", "pubsub"),))
    assert (
        "spec.http: notify is a Pub/Sub function (its code), not an HTTP function; wire it in spec.triggers"
        in problems
    )


def test_spec_http_access_and_schedule_are_checked() -> None:
    with pytest.raises(Exception) as raised:
        _config(http=[{"function": "reconcile", "access": "open", "schedule": "* * * * *"}])
    assert "spec.http[0].access: 'open' is not one of public, private" in str(raised.value)
    with pytest.raises(Exception) as public_schedule:
        _config(http=[{"function": "on_git_push", "access": "public", "schedule": "* * * * *"}])
    assert "only a private function is called by a schedule" in str(public_schedule.value)


def test_check_reports_wiring_problems_and_passes_the_shipped_config(tmp_path: Path) -> None:
    shipped = subprocess.run(
        [sys.executable, "-m", "shared.config", "check", str(ROOT / "pipeline.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shipped.returncode == 0, shipped.stderr
    assert "3 HTTP function(s)" in shipped.stdout
    text = (ROOT / "pipeline.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "pipeline.yaml"
    broken.write_text(
        text.replace("    - {function: on_chat_approval, access: public}", ""), encoding="utf-8"
    )
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "churn.yaml").write_text(
        (ROOT / "schemas/churn.yaml").read_text(encoding="utf-8")
    )
    failed = subprocess.run(
        [sys.executable, "-m", "shared.config", "check", str(broken)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert "on_chat_approval is exported by main.py (an HTTP function) but not wired" in failed.stderr
