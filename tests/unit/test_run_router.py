"""The Cloud Run emulator's pure parts: weighted choice, router faults, template fingerprints, load bounds."""

from __future__ import annotations

import pytest
from google.cloud import run_v2

from emulators.loadgen import LoadError, ensure_loopback, run_load
from emulators.run.model import SPEC_FIELDS, ServicePb, copy_field, fingerprint, fingerprint_field
from emulators.run.router import RevisionFault, SmoothWeighted

pytestmark = pytest.mark.unit


def test_smooth_weighted_round_robin_is_exact_and_interleaved() -> None:
    chooser = SmoothWeighted([("a", 90), ("b", 10)])
    picks = [chooser.next() for _ in range(2000)]
    assert picks.count("b") == 200 and picks.count("a") == 1800
    # Interleaved: never more than 10 "a" in a row, and every window of 100 holds exactly 10 "b".
    assert "a" * 11 not in "".join(picks)
    assert all(picks[i : i + 100].count("b") == 10 for i in range(0, 2000, 100))


def test_smooth_weighted_ignores_zero_weights_and_handles_three_ways() -> None:
    assert SmoothWeighted([]).next() is None
    assert SmoothWeighted([("a", 0)]).next() is None
    chooser = SmoothWeighted([("a", 50), ("b", 0), ("c", 30), ("d", 20)])
    picks = [chooser.next() for _ in range(100)]
    assert (picks.count("a"), picks.count("b"), picks.count("c"), picks.count("d")) == (50, 0, 30, 20)


def test_router_fault_error_rate_is_deterministic() -> None:
    fault = RevisionFault(error_rate=0.5)
    assert [fault.take_error() for _ in range(6)] == [False, True, False, True, False, True]
    third = RevisionFault(error_rate=1 / 3)
    assert sum(third.take_error() for _ in range(300)) == 100
    assert not any(RevisionFault(error_rate=0.0).take_error() for _ in range(10))


def test_template_fingerprint_sees_every_change_and_spec_copy_is_complete() -> None:
    def template(image: str, **env: str) -> run_v2.RevisionTemplate:
        variables = [run_v2.EnvVar(name=k, value=v) for k, v in env.items()]
        return run_v2.RevisionTemplate(containers=[run_v2.Container(image=image, env=variables)])

    pb = run_v2.RevisionTemplate.pb
    assert fingerprint(pb(template("i:1", A="1"))) == fingerprint(pb(template("i:1", A="1")))
    assert fingerprint(pb(template("i:1", A="1"))) != fingerprint(pb(template("i:1", A="2")))
    assert fingerprint(pb(template("i:1"))) != fingerprint(pb(template("i:2")))

    source = run_v2.Service.pb(
        run_v2.Service(
            description="d",
            labels={"a": "b"},
            template=template("i:1", A="1"),
            traffic=[run_v2.TrafficTarget(percent=100, revision="s-1")],
            uri="http://output-only",
        )
    )
    copied = ServicePb()
    for name in SPEC_FIELDS:
        copy_field(source, copied, name)
    assert copied.description == "d" and dict(copied.labels) == {"a": "b"} and copied.uri == ""
    assert copied.template == source.template and list(copied.traffic) == list(source.traffic)
    assert fingerprint_field(source, "labels") == fingerprint_field(copied, "labels")


def test_load_generator_refuses_non_loopback_targets_and_unbounded_load() -> None:
    ensure_loopback("http://127.0.0.1:8080/x")
    ensure_loopback("http://localhost:8080/")
    for url in ("http://10.1.2.3/", "http://192.0.2.1:80/", "ftp://127.0.0.1/", "not a url"):
        with pytest.raises(LoadError):
            ensure_loopback(url)
    for kwargs in (
        {"requests_total": 0},
        {"requests_total": 100_001},
        {"requests_total": 1, "concurrency": 33},
    ):
        with pytest.raises(LoadError):
            run_load("http://127.0.0.1:9/", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(LoadError):
        run_load("http://127.0.0.1:9/", 1, max_seconds=601)
