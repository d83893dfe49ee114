"""``start_rollout`` through functions-framework and the rollout's reconcile ticks, over the fakes: a good
candidate promoted, bad ones rolled back, missing metrics never a pass, duplicates and faults survived."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest

from shared.chain import reconcile, rollout
from shared.chain.contracts import RolloutRequested
from shared.errors import TransientError
from shared.events import new_envelope
from shared.ledger import RunStatus
from shared.ports.deployments import RevisionSpec, revision_name
from shared.ports.errors import Conflict
from shared.rollout.machine import CommandAction, Phase
from tests.functional.chain.rollout_support import (
    IMAGE,
    PROJECT,
    ROOT,
    SERVICE,
    STABLE,
    Behaviour,
    World,
    candidate_request,
    rollout_config,
    world,
)
from tests.helpers import push_envelope

pytestmark = pytest.mark.functional

TOPIC = "mlops-rollout-requests"
RUN = "run-2"
CANDIDATE = revision_name(SERVICE, RUN)


@pytest.fixture
def env() -> Iterator[World]:
    with world() as current:
        yield current


@pytest.fixture
def function() -> Any:
    return functions_framework.create_app("start_rollout", str(ROOT / "main.py"), "http").test_client()


def send(function: Any, run_id: str, request: RolloutRequested, message_id: str = "1001") -> Any:
    envelope = new_envelope("rollout.requested", run_id, request.to_json(), event_id=f"evt-{run_id}")
    body = push_envelope(
        json.dumps(envelope.to_json()),
        envelope.attributes(),
        message_id=message_id,
        publish_time="2026-11-22T10:00:00Z",
    )
    return function.post(f"/projects/{PROJECT}/topics/{TOPIC}", json=body)


def test_a_good_candidate_is_deployed_at_zero_then_canaried_and_promoted(env: World, function: Any) -> None:
    response = send(function, RUN, candidate_request())
    assert response.status_code == 200, response.get_data(as_text=True)
    service = env.ports.deployments.get_service(SERVICE)
    assert service is not None
    revision = service.revision(CANDIDATE)
    assert revision is not None
    assert revision.env == {
        "MODEL_URI": "gs://demo-artifacts/runs/run-2/model/",
        "MODEL_VERSION": "2",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        # Where the serving image looks for the shadow mirror's control (any revision may become stable).
        "SHADOW_CONTROL_URI": f"gs://{PROJECT}-artifacts/rollouts/{SERVICE}/shadow.json",
    }
    assert revision.labels == {"run-id": RUN, "model-version": "2"}
    assert env.served() == {STABLE: 100}  # deployed at 0%, behind its tag
    assert service.tag_uri("candidate") is not None

    env.until(lambda current: current.phase is Phase.PROMOTED)

    assert env.served() == {CANDIDATE: 100}
    after = env.ports.deployments.get_service(SERVICE)
    assert after is not None
    tags = {target.tag: target.revision for target in after.traffic if target.tag}
    assert tags == {"stable": CANDIDATE, "previous": STABLE}  # the old stable kept for a fast rollback
    champion = env.ports.registry.get_version("churn", "champion")
    assert champion is not None and champion.version_id == "2"
    steps = [env.step(RUN, f"rollout:step:{index}").detail["result"] for index in range(3)]
    assert [step["percent"] for step in steps] == [10, 50, 100]
    assert {step["verdict"] for step in steps} == {"healthy"}
    assert steps[0]["revisions"][CANDIDATE]["role"] == "candidate"
    assert steps[0]["revisions"][STABLE]["role"] == "stable"
    assert steps[0]["revisions"][CANDIDATE]["requests"] >= 20
    promoted = env.step(RUN, "rollout:promoted").detail["result"]
    assert promoted["traffic"][CANDIDATE] == 100
    assert [event["kind"] for event in env.events()] == ["started", "step", "step", "step", "promoted"]
    assert env.events("promoted")[0]["tag_urls"]["stable"].startswith("https://stable---")
    assert env.notifications("rollout.promoted")
    assert env.run(RUN).status is RunStatus.SUCCEEDED


def test_a_candidate_answering_5xx_is_rolled_back_at_its_first_step(env: World) -> None:
    env.behaviour[CANDIDATE] = Behaviour(errors=0.3)
    rollout.start(env.runtime, RUN, candidate_request())

    env.until(lambda current: current.phase is Phase.ROLLED_BACK)

    assert env.served() == {STABLE: 100}
    step = env.step(RUN, "rollout:step:0").detail["result"]
    assert step["verdict"] == "unhealthy" and step["percent"] == 10
    assert step["revisions"][CANDIDATE]["share_5xx"] > 0.05
    assert env.run(RUN).step("rollout:step:1") is None
    rolled = env.step(RUN, "rollout:rolled_back").detail["result"]
    assert rolled["traffic"] == {STABLE: 100, CANDIDATE: 0}
    assert "5xx" in rolled["reason"]
    service = env.ports.deployments.get_service(SERVICE)
    assert service is not None
    assert {t.tag: t.revision for t in service.traffic if t.tag} == {"stable": STABLE, "failed": CANDIDATE}
    champion = env.ports.registry.get_version("churn", "champion")
    assert champion is not None and champion.version_id == "1"  # the alias did not move
    [notification] = env.notifications("rollout.rolled_back")
    assert notification["severity"] == "warning" and "5xx" in notification["text"]
    assert env.run(RUN).status is RunStatus.FAILED


def test_a_candidate_slower_than_the_ratio_is_rolled_back(env: World) -> None:
    env.behaviour[CANDIDATE] = Behaviour(latency_ms=90.0)  # stable answers in 20 ms: 4.5x > 2x
    rollout.start(env.runtime, RUN, candidate_request())

    env.until(lambda current: current.phase is Phase.ROLLED_BACK)

    step = env.step(RUN, "rollout:step:0").detail["result"]
    assert step["verdict"] == "unhealthy"
    assert any("4.5x" in reason for reason in step["reasons"])
    assert env.served() == {STABLE: 100}


def test_the_analysis_reads_the_candidates_metrics_not_the_stables(env: World) -> None:
    env.behaviour[STABLE] = Behaviour(errors=0.5)  # a sick stable must not fail a healthy candidate
    rollout.start(env.runtime, RUN, candidate_request())

    env.until(lambda current: current.phase is Phase.PROMOTED)

    step = env.step(RUN, "rollout:step:0").detail["result"]
    assert step["revisions"][CANDIDATE]["share_5xx"] == 0.0
    assert step["revisions"][STABLE]["share_5xx"] == pytest.approx(0.5, abs=0.02)


def test_no_metrics_is_inconclusive_then_fails(env: World) -> None:
    rollout.start(env.runtime, RUN, candidate_request())

    ticks = env.until(lambda current: not current.active, requests=0)

    assert env.lease().phase is Phase.ROLLED_BACK
    step = env.step(RUN, "rollout:step:0").detail["result"]
    assert step["verdict"] == "inconclusive"
    assert step["revisions"][CANDIDATE]["requests"] == 0
    assert "inconclusive" in env.step(RUN, "rollout:rolled_back").detail["result"]["reason"]
    assert ticks >= 5 + 10  # held the interval, then waited the inconclusive limit: never passed early


def test_inconclusive_with_pause_waits_for_an_operator(env: World) -> None:
    config = rollout_config(
        canary={"steps": [10, 100], "interval": "5s", "inconclusive": {"wait": "5s", "then": "pause"}}
    )
    with world(config) as paused:
        rollout.start(paused.runtime, RUN, candidate_request())
        paused.until(lambda current: current.phase is Phase.PAUSED, requests=0)
        assert paused.step(RUN, "rollout:paused") is not None
        assert paused.events("paused")
        for _ in range(5):
            paused.tick(requests=0)
        assert paused.lease().phase is Phase.PAUSED  # it stays until someone decides
        rollout.command(paused.runtime, SERVICE, CommandAction.RESUME, "ada")
        paused.until(lambda current: current.phase is Phase.PROMOTED)


def test_duplicate_deliveries_and_ticks_change_traffic_once_each(env: World, function: Any) -> None:
    assert send(function, RUN, candidate_request()).status_code == 200
    assert send(function, RUN, candidate_request(), message_id="1002").status_code == 200
    env.tick()
    calls = env.ports.deployments.faults.calls
    for _ in range(3):  # overlapping ticks at the same instant: the split is asked once
        rollout.tick(env.runtime, env.clock.now)
    assert calls["deploy_revision"] == 1
    assert calls["set_traffic"] == 1
    env.until(lambda current: current.phase is Phase.PROMOTED)
    assert calls["set_traffic"] == 4  # 10, 50, 100, then the promotion's tags
    assert len(env.events("started")) == 1


def test_an_unavailable_then_aborted_update_is_survived(env: World) -> None:
    env.behaviour[CANDIDATE] = Behaviour(errors=0.3)
    rollout.start(env.runtime, RUN, candidate_request())
    env.until(lambda current: current.phase is Phase.SMOKE)  # deployed, smoke checks next (then step 0)
    faults = env.ports.deployments.faults
    faults.fail_next("set_traffic", TransientError("UNAVAILABLE: the service is unavailable"))
    with pytest.raises(TransientError):
        env.tick()
    assert env.lease().phase is Phase.SMOKE  # nothing half-written: the next tick decides again
    env.until(lambda current: current.phase is Phase.STEPPING and current.window_start is not None)
    faults.fail_next("set_traffic", Conflict("ABORTED: the etag is stale"), count=2)
    for _ in range(8):
        try:
            env.tick()
        except TransientError:
            continue  # the rollback failed mid-way: the next tick reads again and converges
        if not env.lease().active:
            break
    assert env.lease().phase is Phase.ROLLED_BACK
    assert env.served() == {STABLE: 100}


def test_a_newer_candidate_supersedes_the_active_rollout(env: World) -> None:
    rollout.start(env.runtime, RUN, candidate_request())
    env.until(lambda current: current.phase is Phase.STEPPING and current.step == 1)
    assert env.served() == {STABLE: 50, CANDIDATE: 50}

    outcome = rollout.start(env.runtime, "run-3", candidate_request("3"))

    assert "superseding run run-2" in outcome
    assert env.served() == {STABLE: 100}  # the old candidate's share went back to stable first
    assert env.lease().run_id == "run-3" and env.lease().stable == STABLE
    assert "superseded by run run-3" in env.step(RUN, "rollout:aborted").detail["result"]["reason"]
    assert env.run(RUN).status is RunStatus.CANCELLED
    assert rollout.start(env.runtime, RUN, candidate_request()) == "duplicate"  # a late redelivery
    assert env.lease().run_id == "run-3"
    env.until(lambda current: current.phase is Phase.PROMOTED)
    assert env.served() == {revision_name(SERVICE, "run-3"): 100}


def test_the_first_candidate_creates_the_service_after_its_smoke_checks(monkeypatch: Any) -> None:
    answers: list[str] = []

    class Answer:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return {"predictions": [0]}

    def send(method: str, url: str, **_: Any) -> Answer:
        answers.append(f"{method} {url}")
        return Answer()

    import requests

    monkeypatch.setattr(requests, "request", send)
    with world(stable=False) as first:
        rollout.start(first.runtime, RUN, candidate_request())
        first.until(lambda current: current.phase is Phase.PROMOTED)
        assert first.served() == {CANDIDATE: 100}
        assert answers == [f"POST https://candidate---{SERVICE}-fake.a.run.app/predict"]
        assert first.step(RUN, "rollout:smoke").detail["result"]["passed"] is True
        champion = first.ports.registry.get_version("churn", "champion")
        assert champion is not None and champion.version_id == "2"


def test_blue_green_switches_after_smoke_and_rolls_back_a_failing_switch(monkeypatch: Any) -> None:
    import requests

    class Answer:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return {"predictions": [1]}

    monkeypatch.setattr(requests, "request", lambda *args, **kwargs: Answer())
    with world(rollout_config(strategy="blue_green")) as blue:
        blue.behaviour[CANDIDATE] = Behaviour(errors=0.5)
        rollout.start(blue.runtime, RUN, candidate_request())
        blue.until(lambda current: current.phase is Phase.ROLLED_BACK)
        assert blue.step(RUN, "rollout:smoke").detail["result"]["passed"] is True
        step = blue.step(RUN, "rollout:step:0").detail["result"]
        assert step["percent"] == 100 and step["verdict"] == "unhealthy"
        assert blue.served() == {STABLE: 100}


def test_failing_smoke_checks_roll_a_blue_green_candidate_back_before_any_user(monkeypatch: Any) -> None:
    import requests

    class Answer:
        status_code = 503

        def json(self) -> dict[str, Any]:
            return {}

    monkeypatch.setattr(requests, "request", lambda *args, **kwargs: Answer())
    with world(rollout_config(strategy="blue_green")) as blue:
        rollout.start(blue.runtime, RUN, candidate_request())
        blue.until(lambda current: current.phase is Phase.ROLLED_BACK)
        assert blue.ports.deployments.faults.calls["set_traffic"] == 1  # only the rollback's tags
        assert "503" in blue.step(RUN, "rollout:rolled_back").detail["result"]["reason"]


def test_a_revision_that_never_becomes_ready_is_rolled_back(env: World) -> None:
    env.ports.deployments.fail_revisions(CANDIDATE, message="container exited with code 1")
    rollout.start(env.runtime, RUN, candidate_request())
    env.until(lambda current: not current.active)
    assert env.lease().phase is Phase.ROLLED_BACK
    assert "container exited" in env.step(RUN, "rollout:rolled_back").detail["result"]["reason"]


def test_operator_rollback_is_immediate_and_notifies(env: World) -> None:
    rollout.start(env.runtime, RUN, candidate_request())
    env.until(lambda current: current.phase is Phase.STEPPING and current.window_start is not None)
    after, _ = rollout.command(env.runtime, SERVICE, CommandAction.ROLLBACK, "ada")
    assert after.phase is Phase.ROLLING_BACK and "operator rollback by ada" in after.reason
    env.tick()
    assert env.lease().phase is Phase.ROLLED_BACK
    assert env.notifications("rollout.rolled_back")


def test_operator_promote_skips_the_remaining_steps(env: World) -> None:
    rollout.start(env.runtime, RUN, candidate_request())
    env.until(lambda current: current.phase is Phase.STEPPING)
    rollout.command(env.runtime, SERVICE, CommandAction.PROMOTE, "ada")
    env.tick()
    assert env.lease().phase is Phase.PROMOTED
    assert env.run(RUN).step("rollout:step:1") is None


def test_the_reconciler_advances_rollouts(env: World) -> None:
    rollout.start(env.runtime, RUN, candidate_request())
    env.clock.advance(1)
    report = reconcile.tick(
        env.runtime, run_hooks=(), due_hooks=[reconcile.Hook("rollouts", "shared.chain.rollout", "tick")]
    )
    assert report.failures == []
    assert report.emitted and "deploying → smoke" in report.emitted[0].what[0]


def test_an_unknown_service_is_refused(env: World, function: Any) -> None:
    response = send(function, RUN, candidate_request(service="nope"))
    assert response.status_code == 200  # permanent: recorded as rejected and acknowledged
    [rejected] = env.ledger.list_rejected()
    assert "nope" in " ".join(rejected.problems)
    assert env.ports.deployments.faults.calls["deploy_revision"] == 0
    assert env.ports.deployments.get_service(SERVICE) is not None
    assert RevisionSpec  # the module's spec type stays importable for the adapters' users
    assert IMAGE
