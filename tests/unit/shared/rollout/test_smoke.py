"""Smoke checks against a candidate's tag URL: status, JSON fields, latency; no answer is no pass."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.rollout.smoke import run_checks
from shared.rolloutconfig import SmokeCheck

pytestmark = pytest.mark.unit

CHECK = SmokeCheck(path="/predict", method="POST", body={"instances": [[1]]}, expect_json=("predictions",))


class Answer:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.body = body

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


def sender(answer: Answer | Exception) -> Any:
    calls: list[tuple[str, str, Any]] = []

    def send(method: str, url: str, **kwargs: Any) -> Answer:
        calls.append((method, url, kwargs["json"]))
        if isinstance(answer, Exception):
            raise answer
        return answer

    send.calls = calls  # type: ignore[attr-defined]
    return send


def test_a_good_answer_passes_and_the_request_goes_to_the_tag_url() -> None:
    send = sender(Answer(200, {"predictions": [1]}))
    outcome = run_checks("https://candidate---svc.run.app/", [CHECK], send)
    assert outcome.passed
    assert send.calls == [("POST", "https://candidate---svc.run.app/predict", {"instances": [[1]]})]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(500, {}), "answered 500, not 200"),
        (Answer(200, {"other": 1}), "lacks predictions"),
        (Answer(200, ValueError("not json")), "did not answer a JSON object"),
        (requests.ConnectionError("refused"), "no answer (ConnectionError)"),
    ],
)
def test_a_bad_answer_fails_with_its_reason(answer: Answer | Exception, reason: str) -> None:
    outcome = run_checks("https://c", [CHECK], sender(answer))
    assert not outcome.passed
    assert reason in outcome.reasons[0]


def test_a_slow_answer_fails() -> None:
    slow = SmokeCheck(path="/", max_latency_seconds=0.001)

    def send(method: str, url: str, **kwargs: Any) -> Answer:
        import time

        time.sleep(0.01)
        return Answer(200, {})

    outcome = run_checks("https://c", [slow], send)
    assert not outcome.passed and "ms >" in outcome.reasons[0]
