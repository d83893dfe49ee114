"""Shadow and A/B rollouts through the adapter over the fakes: the mirror's control object, the custom
metrics read back per step, promotion and rollback, a strategy chosen per rollout, and the operator's
``start`` command."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.chain import rollout
from shared.operator.cli import main
from shared.ports.deployments import revision_name
from shared.ports.errors import NotFound
from shared.rollout.machine import Phase
from shared.rolloutconfig import SHADOW_METRIC
from tests.functional.chain.rollout_support import (
    PROJECT,
    SERVICE,
    STABLE,
    World,
    candidate_request,
    rollout_config,
    world,
)

pytestmark = pytest.mark.functional

CANDIDATE = revision_name(SERVICE, "run-2")
BUCKET, CONTROL = f"{PROJECT}-artifacts", f"rollouts/{SERVICE}/shadow.json"
SHADOW = {"sample": 0.5, "duration": "6s", "minRequests": 20, "minAgreement": 0.9}
RETAINED = "custom.googleapis.com/churn/retained"
AB = {"split": 50, "duration": "6s", "metric": {"type": RETAINED, "direction": "higher", "minLift": 0.01}}


@pytest.fixture(autouse=True)
def smoke_answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The candidate's tag URL answers the smoke checks (shadow and A/B run them first): 200 with
    predictions, unless a test sets ``status``."""
    import requests

    asked: list[str] = []

    class Answer:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return {"predictions": [0]}

    def send(method: str, url: str, **_: Any) -> Answer:
        asked.append(f"{method} {url}")
        answer = Answer()
        answer.status_code = SMOKE_STATUS.get("status", 200)
        return answer

    SMOKE_STATUS.clear()
    monkeypatch.setattr(requests, "request", send)
    return asked


SMOKE_STATUS: dict[str, int] = {}


def test_a_shadow_candidate_failing_its_smoke_checks_is_never_mirrored_to(smoke_answers: list[str]) -> None:
    SMOKE_STATUS["status"] = 503
    with world(rollout_config(strategy="shadow", shadow=SHADOW)) as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: not current.active)
        assert env.lease().phase is Phase.ROLLED_BACK and "smoke checks failed" in env.lease().reason
        assert smoke_answers == [f"POST https://candidate---{SERVICE}-fake.a.run.app/predict"]
        assert env.run("run-2").step("rollout:traffic:0") is None  # never reached the shadow step
        assert control(env) is None and env.served() == {STABLE: 100}


def control(env: World) -> dict[str, Any] | None:
    try:
        return dict(json.loads(env.ports.objects.read_text(BUCKET, CONTROL)))
    except NotFound:
        return None


def mirror(env: World, agree: int, disagree: int = 0) -> None:
    """What the stable's serving image does in a second of shadowing: copies answered by the candidate
    (Cloud Run counts them on the candidate revision) and their comparison counts."""
    at = env.clock.now - timedelta(milliseconds=500)
    env.ports.metrics.record_many(SERVICE, CANDIDATE, agree + disagree, at=at)
    for outcome, count in (("agree", agree), ("disagree", disagree)):
        if count:
            labels = {"candidate": CANDIDATE, "outcome": outcome, "instance": "i1"}
            env.ports.metrics.write_point(SHADOW_METRIC, labels, count, at=at)


def shadow_until(env: World, done: Any, agree: int, disagree: int = 0, ticks: int = 40) -> int:
    for count in range(1, ticks + 1):
        env.tick()
        if control(env) is not None:
            mirror(env, agree, disagree)
        assert env.served().get(CANDIDATE, 0) == 0 or env.lease().phase is not Phase.STEPPING
        if done(env.lease()):
            return count
    raise AssertionError(f"not reached in {ticks} ticks: {env.lease()}")


def test_a_shadow_that_agrees_promotes_and_stops_the_mirror(tmp_path: Path) -> None:
    with world(rollout_config(strategy="shadow", shadow=SHADOW)) as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.phase is Phase.STEPPING)
        written = control(env)
        assert written is not None
        assert written["candidate"] == CANDIDATE and written["sample"] == 0.5
        assert written["target"].startswith("https://candidate---")  # the candidate's tag URL
        assert env.served() == {STABLE: 100}  # users never see the candidate

        shadow_until(env, lambda current: current.phase is Phase.PROMOTED, agree=10)
        assert control(env) is None
        assert env.served() == {CANDIDATE: 100}
        step = env.step("run-2", "rollout:step:0").detail["result"]
        assert step["shadow"]["agreement"] == 1.0 and step["shadow"]["total"] >= 20
        assert step["revisions"][CANDIDATE]["requests"] >= 20
        assert env.lease().reason == "the shadow comparison passed"
        page = tmp_path / "shadow.html"
        assert main(["status", "run-2", "--html", str(page)]) == 0
        html = page.read_text()
        assert "rollout:step:0" in html and "agreement" in html and "the shadow comparison passed" in html


def test_a_shadow_that_disagrees_rolls_back_with_no_user_ever_served() -> None:
    with world(rollout_config(strategy="shadow", shadow=SHADOW)) as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.phase is Phase.STEPPING)
        shadow_until(env, lambda current: current.phase is Phase.ROLLED_BACK, agree=6, disagree=4)
        assert control(env) is None
        assert env.served() == {STABLE: 100}
        assert "predictions agree on 60.0% of copies" in env.lease().reason
        [event] = env.events("rolled_back")
        assert "shadow comparison unhealthy" in event["reason"]
        [step] = env.notifications("rollout.step")
        assert step["title"] == f"{SERVICE}: shadow comparison of churn v2 — unhealthy"


def test_a_newer_candidate_superseding_a_shadow_stops_the_mirror() -> None:
    with world(rollout_config(strategy="shadow", shadow=SHADOW)) as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.phase is Phase.STEPPING)
        assert control(env) is not None
        rollout.start(env.runtime, "run-3", candidate_request("3", nonce="n3"))
        assert control(env) is None  # the old comparison's copies must not reach the new candidate
        env.until(lambda current: current.phase is Phase.STEPPING)
        assert control(env) is not None and control(env)["candidate"] == revision_name(SERVICE, "run-3")  # type: ignore[index]


def retained(env: World, stable: float, candidate: float) -> None:
    at = env.clock.now - timedelta(milliseconds=500)
    new = revision_name(SERVICE, "run-2")
    for revision, value in ((STABLE, stable), (new, candidate)):
        env.ports.metrics.write_point(RETAINED, {"revision": revision}, value, at=at)


@pytest.mark.parametrize(
    ("stable", "candidate", "phase", "reason"),
    [
        (0.50, 0.60, Phase.PROMOTED, "the candidate won the A/B test"),
        (0.50, 0.45, Phase.ROLLED_BACK, "A/B lost: custom.googleapis.com/churn/retained: candidate 0.45"),
    ],
)
def test_an_ab_test_holds_its_split_then_its_metric_decides(
    stable: float, candidate: float, phase: Phase, reason: str
) -> None:
    with world(rollout_config(strategy="ab", ab=AB)) as env:
        rollout.start(env.runtime, "run-2", candidate_request())
        env.until(lambda current: current.window_start is not None)
        assert env.served() == {STABLE: 50, CANDIDATE: 50}
        for _ in range(30):
            retained(env, stable, candidate)
            env.tick()
            if env.lease().phase is not Phase.STEPPING:
                break
            assert env.served() == {STABLE: 50, CANDIDATE: 50}  # fixed for the whole duration
        env.until(lambda current: current.phase is phase)
        assert reason in env.lease().reason or reason in json.dumps(env.events())
        result = env.step("run-2", "rollout:step:0").detail["result"]
        assert result["ab"]["candidate_mean"] == pytest.approx(candidate)
        assert result["ab"]["stable_mean"] == pytest.approx(stable)


def test_a_rollout_may_run_another_strategy_than_its_services() -> None:
    with world() as env:  # the service is a canary
        rollout.start(env.runtime, "run-2", candidate_request(strategy="shadow"))
        env.until(lambda current: current.phase is Phase.STEPPING)
        assert env.lease().strategy == "shadow" and env.served() == {STABLE: 100}
        assert control(env) is not None


def test_a_strategy_the_service_cannot_run_is_refused() -> None:
    with (
        world(rollout_config(smoke=[])) as env,
        pytest.raises(Exception, match="needs at least one smoke check"),
    ):
        rollout.start(env.runtime, "run-2", candidate_request(strategy="blue_green"))


def test_operator_start_publishes_a_rollout_request_for_the_champion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with world() as env:
        assert main(["start", SERVICE, "--strategy", "shadow", "--by", "ana", "--run-id", "manual-1"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["strategy"] == "shadow" and printed["version"] == "1"  # the champion
        [message] = [m for m in env.publisher.messages if m.topic_id == "mlops-rollout-requests"]
        body = json.loads(message.data)
        assert body["data"]["strategy"] == "shadow" and body["data"]["cause"] == "manual"
        assert body["data"]["approved_by"] == "ana"
        assert env.run("manual-1").step("rollout:requested") is not None
        # Again with the same run id: the same request (the same event id: start_rollout takes it once).
        assert main(["start", SERVICE, "--strategy", "shadow", "--by", "ana", "--run-id", "manual-1"]) == 0
        sent = [m for m in env.publisher.messages if m.topic_id == "mlops-rollout-requests"]
        assert len({json.loads(m.data)["event_id"] for m in sent}) == 1


def test_operator_start_refuses_what_the_service_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    with world(rollout_config(smoke=[])):
        assert main(["start", SERVICE, "--strategy", "blue_green"]) != 0
        assert "needs at least one smoke check" in capsys.readouterr().err
        assert main(["start", SERVICE, "--version", "9"]) != 0
        assert "has no version '9'" in capsys.readouterr().err
