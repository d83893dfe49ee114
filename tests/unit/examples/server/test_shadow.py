"""The sample server's shadow mirror: control object, sampling, outcome classification, the bounded queue and
flushes that keep their counts when a write fails (no servers, no threads unless a test starts them)."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

SERVER = Path(__file__).resolve().parents[4] / "examples" / "server"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_server_shadow", SERVER / "server" / "shadow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


shadow = _load()
CONTROL = {"target": "http://127.0.0.1:9/", "sample": 0.5, "candidate": "svc-2", "run_id": "r1"}


class Recorder:
    """A writer that records what it was asked to write, failing while ``fail`` is set."""

    def __init__(self) -> None:
        self.fail = False
        self.written: list[dict[tuple[str, str], int]] = []

    def __call__(self, counts: dict[tuple[str, str], int]) -> None:
        if self.fail:
            raise RuntimeError("monitoring unavailable")
        self.written.append(dict(counts))


def _mirror(control: dict[str, Any] | None = CONTROL, **options: Any) -> Any:
    data = None if control is None else json.dumps(control).encode()
    options.setdefault("sender", lambda url, body: (200, b'{"predictions": ["a"]}'))
    return shadow.Mirror("svc-1", lambda: data, Recorder(), **options)


def test_a_control_object_is_parsed_and_bad_ones_say_why() -> None:
    control = shadow.parse_control(json.dumps(CONTROL).encode())
    assert control == shadow.MirrorControl("http://127.0.0.1:9", 0.5, "svc-2", "r1")
    for bad, why in [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({**CONTROL, "target": "ftp://x"}).encode(), "target"),
        (json.dumps({**CONTROL, "sample": 1.5}).encode(), "sample"),
        (json.dumps({**CONTROL, "sample": True}).encode(), "sample"),
        (json.dumps({**CONTROL, "candidate": ""}).encode(), "candidate"),
    ]:
        with pytest.raises(ValueError, match=why):
            shadow.parse_control(bad)


@pytest.mark.parametrize(
    ("status", "answer", "outcome"),
    [
        (200, b'{"predictions": ["a", "b"], "revision": "x"}', "agree"),
        (201, b'{"predictions": ["a", "c"]}', "disagree"),
        (500, b'{"predictions": ["a", "b"]}', "error"),
        (None, None, "error"),
        (200, b"not json", "error"),
        (200, b'{"error": "no predictions"}', "error"),
        (200, b'["a", "b"]', "error"),
    ],
)
def test_outcomes_are_classified(status: int | None, answer: bytes | None, outcome: str) -> None:
    assert shadow.classify(status, answer, ["a", "b"]) == outcome


def test_polling_turns_mirroring_on_and_off_and_never_mirrors_to_itself() -> None:
    state: dict[str, bytes | None] = {"data": json.dumps(CONTROL).encode()}
    mirror = shadow.Mirror("svc-1", lambda: state["data"], Recorder(), workers=0)

    assert mirror.poll() is not None and mirror.control.candidate == "svc-2"
    state["data"] = None
    assert mirror.poll() is None and mirror.control is None
    state["data"] = b"{broken"
    assert mirror.poll() is None
    state["data"] = json.dumps({**CONTROL, "candidate": "svc-1"}).encode()
    assert mirror.poll() is None

    def unreachable() -> bytes:
        raise OSError("storage down")

    mirror.reader = unreachable
    assert mirror.poll() is None


def test_sampling_takes_the_share_the_control_asks_for() -> None:
    draws = iter([0.1, 0.6, 0.49, 0.5])
    mirror = _mirror(chance=lambda: next(draws), workers=0)
    assert mirror.offer(b"{}", ["a"]) is False  # off until the control object is read
    mirror.poll()

    queued = [mirror.offer(b"{}", ["a"]) for _ in range(4)]

    assert queued == [True, False, True, False]  # a copy when the draw is below the sample (0.5)


def test_a_full_queue_drops_copies_and_counts_them() -> None:
    mirror = _mirror({**CONTROL, "sample": 1.0}, workers=0, queue_size=3)
    mirror.poll()

    queued = [mirror.offer(b"{}", ["a"]) for _ in range(5)]

    assert queued == [True, True, True, False, False]
    assert mirror.dropped == 2
    assert mirror.counts.snapshot() == {}  # a dropped copy is not a comparison


def test_workers_send_the_body_to_the_candidate_and_count_outcomes() -> None:
    sent: list[tuple[str, bytes]] = []
    answers = iter([(200, b'{"predictions": ["a"]}'), (200, b'{"predictions": ["b"]}'), (None, None)])
    done = threading.Event()

    def sender(url: str, body: bytes) -> tuple[int | None, bytes | None]:
        sent.append((url, body))
        if len(sent) == 3:
            done.set()
        return next(answers)

    mirror = _mirror({**CONTROL, "sample": 1.0}, sender=sender, workers=1)
    mirror.poll()
    for _ in range(3):
        assert mirror.offer(b'{"instances": [[1, 2]]}', ["a"])
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while sum(mirror.counts.snapshot().values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert sent == [("http://127.0.0.1:9/predict", b'{"instances": [[1, 2]]}')] * 3
    assert mirror.counts.snapshot() == {
        ("svc-2", "agree"): 1,
        ("svc-2", "disagree"): 1,
        ("svc-2", "error"): 1,
    }


def test_a_failed_flush_keeps_its_counts_for_the_next_one() -> None:
    mirror = _mirror(workers=0)
    writer = mirror.writer
    control = shadow.parse_control(json.dumps(CONTROL).encode())
    for outcome in ("agree", "agree", "error"):
        mirror.compare(control, b"{}", ["a"]) if outcome == "agree" else mirror.counts.add("svc-2", "error")

    writer.fail = True
    assert mirror.flush() == {}
    mirror.counts.add("svc-2", "agree")
    writer.fail = False
    written = mirror.flush()

    assert written == {("svc-2", "agree"): 3, ("svc-2", "error"): 1}
    assert writer.written == [written]
    assert mirror.flush() == {}  # nothing new: nothing written
    assert writer.written == [written]


def test_from_env_reads_the_intervals_and_is_off_without_a_control_uri() -> None:
    assert shadow.from_env({}) is None
    local = shadow.from_env(
        {"SHADOW_CONTROL_URI": "gs://b/c.json", "STORAGE_EMULATOR_HOST": "x", "MONITORING_EMULATOR_HOST": "y"}
    )
    cloud = shadow.from_env({"SHADOW_CONTROL_URI": "gs://b/c.json", "K_REVISION": "svc-1"})
    tuned = shadow.from_env({"SHADOW_CONTROL_URI": "/tmp/c.json", "SHADOW_POLL_SECONDS": "2.5"})
    assert (local.poll_seconds, local.flush_seconds) == (1.0, 1.0)
    assert (cloud.poll_seconds, cloud.flush_seconds, cloud.revision) == (5.0, 10.0, "svc-1")
    assert tuned.poll_seconds == 2.5


def test_a_local_control_path_is_read_and_a_missing_one_is_none(tmp_path: Path) -> None:
    path = tmp_path / "shadow.json"
    read = shadow.control_reader(str(path), "p")
    assert read() is None
    path.write_text(json.dumps(CONTROL))
    assert shadow.parse_control(read()).candidate == "svc-2"
