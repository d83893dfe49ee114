"""Demo part 3: a preview of the rollout — the candidate the chain registered, served on the Cloud Run
emulator; a misbehaving revision takes 10% of real traffic, Cloud Monitoring shows its errors and latency
per revision, ``shared.rollout.analysis`` says why it fails, and traffic is rolled back and verified by
reading it back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from emulators.common.proc import wait_for
from emulators.demo.common import say, sink

if TYPE_CHECKING:
    from shared.ports import Ports


def run_canary(
    env: dict[str, str],
    project: str,
    run_id: str,
    model_uri: str,
    image: str,
    publisher: Any,
    topic: str,
    ports: Ports,
) -> None:
    """The chain's model served on Cloud Run; a bad candidate at 10%, metrics, verdict, rollback.

    The verdict is ``shared.rollout.analysis`` over the Metrics port's numbers; the rollout function that
    acts on it comes with the next issue, so this part still drives the Deployments port itself.
    """
    from emulators.loadgen import run_load
    from shared.events import new_envelope
    from shared.ports.deployments import RevisionSpec, TrafficTarget, revision_name
    from shared.rollout.analysis import Thresholds, Verdict, analyse

    service_name = "churn-predictor"
    say(f"▶ 10. the push's server image serves its candidate model on the Cloud Run emulator: {image}")
    deployments = ports.deployments

    def revision(version: str, **variables: str) -> RevisionSpec:
        return RevisionSpec(
            name=revision_name(service_name, f"{run_id}-v{version}"),
            image=image,
            env={"MODEL_URI": model_uri, "MODEL_VERSION": version, **variables},
            labels={"run-id": run_id, "model-version": version},
        )

    def settled(what: str, done: Callable[[Any], bool]) -> Any:
        return wait_for(
            what, lambda: (s := deployments.get_service(service_name)) and s.ready and done(s) and s, 60
        )

    stable_spec = revision("1")
    stable = stable_spec.name
    deployments.create_service(service_name, stable_spec)
    service = settled("the service to serve", lambda s: s.serving() == [(stable, 100)])
    say(f"    {service.uri} → {stable} (100%)")

    # The candidate: same image, a misbehaving configuration (30% errors, +80 ms), at 0% behind a tag first.
    candidate_spec = revision("2", ERROR_RATE="0.3", ERROR_MODE="deterministic", EXTRA_LATENCY_MS="80")
    candidate = candidate_spec.name
    deployments.deploy_revision(service_name, candidate_spec, tag="candidate")
    settled("the candidate to start", lambda s: (r := s.revision(candidate)) is not None and r.ready)
    deployments.set_traffic(
        service_name, [TrafficTarget(stable, 90), TrafficTarget(candidate, 10, "candidate")]
    )
    service = settled("the 90/10 split", lambda s: s.percent_of(candidate) == 10)
    split = ", ".join(
        f"{t.revision} {t.percent}%{' #' + t.tag if t.tag else ''}" for t in service.traffic_statuses
    )
    say(f"    canary: {split}")

    started = datetime.now(UTC) - timedelta(seconds=1)
    body = {"instances": [[0.1, -0.4, 0.3, 1.2], [-1.0, 0.8, 0.0, 0.5]]}
    load = run_load(f"{service.uri}/predict", 1000, concurrency=4, max_seconds=60, json_body=body)
    say(f"    1000 requests in {load.seconds:.1f}s: {load.summary()['byStatus']}")

    say("▶ 11. Cloud Monitoring per revision (list_time_series), verdict, rollback verified by reading back")
    found = wait_for(
        "the metrics to be reported",
        lambda: (
            (
                m := ports.metrics.revision_metrics(
                    service_name, started, datetime.now(UTC) + timedelta(seconds=1)
                )
            )
            and m.requests >= 1000
            and m
        ),
    )
    for name, numbers in sorted(found.revisions.items()):
        share, p95 = numbers.share("5xx") or 0.0, numbers.latency.p95_ms
        say(
            f"    {name:<28} {numbers.requests:>4} requests, 5xx {share:.1%}, "
            f"p95 {f'{p95:.0f} ms' if p95 is not None else 'n/a'}"
        )
    thresholds = Thresholds(min_requests=20, max_5xx_share=0.05, max_p95_ratio=2.0)
    analysis = analyse(found.for_revision(candidate), found.for_revision(stable), thresholds)
    decision = "promote" if analysis.verdict is Verdict.HEALTHY else "roll back"  # missing data is no pass
    say(f"    verdict: {analysis.verdict} → {decision}")
    for reason in analysis.reasons:
        say(f"      · {reason}")
    deployments.set_traffic(service_name, [TrafficTarget(stable, 100)])
    expected = [(stable, 100)]
    try:
        read_back = wait_for(
            "the rollback to be served",
            lambda: (
                (t := [(s.revision, s.percent) for s in deployments.get_traffic(service_name)]) == expected
                and t
            ),
        )
    except Exception as error:
        raise RuntimeError(f"rollback not verified: {error}") from error
    say(f"    traffic read back: {read_back}")
    errors = analysis.check("5xx_share")
    observed = f"{errors.observed:.1%}" if errors is not None and errors.observed is not None else "n/a"
    publisher.publish(
        topic,
        new_envelope(
            "notification",
            run_id,
            {
                "kind": "rollout.rolled_back",
                "severity": "warning",
                "title": f"Canary {candidate} rolled back",
                "text": f"candidate 5xx {observed}; all traffic on {stable}",
                "context": {"service": service_name, "revision": candidate, "traffic": f"{stable} 100%"},
            },
            event_id=f"{run_id}:rollback:{candidate}",
        ),
    )
    wait_for(
        "the rollback announcement on chat",
        lambda: any("rolled back" in str(r["body"]) for r in sink(env, "/hook/chat")),
    )
    say("    announced on slack, chat and the audit webhook")
