"""The operator's rollout commands through ``python -m shared.operator``'s main, over the fakes."""

from __future__ import annotations

import json

import pytest

from shared.chain import rollout
from shared.operator.cli import main
from shared.ports.deployments import revision_name
from shared.rollout.machine import Phase
from tests.functional.chain.rollout_support import SERVICE, STABLE, candidate_request, world

pytestmark = pytest.mark.functional

CANDIDATE = revision_name(SERVICE, "run-2")


def test_rollback_acts_at_once_and_status_shows_it(capsys: pytest.CaptureFixture[str]) -> None:
    with world() as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.phase is Phase.STEPPING and current.window_start is not None)

        assert main(["rollback", SERVICE, "--by", "ada"]) == 0
        printed = capsys.readouterr().out
        assert "rolling_back" in printed and "operator rollback by ada" in printed
        env.tick()
        assert env.served() == {STABLE: 100}
        capsys.readouterr()  # the tick's log lines

        assert main(["rollout", SERVICE, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["rollout"]["phase"] == "rolled_back"
        assert shown["serving"] == [{"revision": STABLE, "percent": 100}]


def test_pause_holds_and_resume_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    with world() as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.phase is Phase.STEPPING and current.window_start is not None)
        assert main(["pause", SERVICE, "--by", "ada"]) == 0
        for _ in range(10):
            env.tick()
        assert env.lease().phase is Phase.PAUSED and env.lease().step == 0
        assert main(["resume", SERVICE, "--by", "ada"]) == 0
        assert main(["promote", SERVICE, "--by", "ada"]) == 0
        env.tick()
        assert env.lease().phase is Phase.PROMOTED
        assert env.served() == {CANDIDATE: 100}
        capsys.readouterr()
        assert main(["rollout", SERVICE]) == 0
        assert "promoted" in capsys.readouterr().out


def test_a_command_without_an_active_rollout_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with world():
        assert main(["rollback", SERVICE]) == 2
        assert "no active rollout" in capsys.readouterr().err
        assert main(["rollout", "nope"]) == 2
