"""The rollout adapter's part of the shadow and A/B strategies: the mirror's control object, and reading
the numbers :mod:`shared.rollout.experiments` judges.

**The mirror.** While a shadow comparison runs, the object ``gs://<artifacts bucket>/rollouts/<service>/
shadow.json`` says where the serving image copies a sample of the requests it answered (``target``: the
candidate's tag URL, ``sample``, ``candidate``, ``run_id``); after it, the object is gone. Every revision a
rollout deploys is told the object's URI (``SHADOW_CONTROL_URI``), so whichever revision is stable can
copy to whichever candidate comes next without being redeployed (a changed env would be a new revision that
takes users' traffic). The machine switches the mirror on entering the shadow step and off leaving it, under
that transition's step key, so it happens once; writing and deleting are idempotent besides.

**The numbers.** The copies' outcomes are the custom metric ``custom.googleapis.com/mlops/shadow_comparisons``
(labels ``candidate``, ``outcome``) the serving image writes; an A/B test's metric is one the application
writes with a ``revision`` label. Both are read through the Metrics port over the step's window; a failed
read is "not read" (None), which the machine treats as inconclusive, never as a pass.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime

from shared import log
from shared.config import PipelineConfig
from shared.errors import TransientError
from shared.ports.deployments import Service
from shared.ports.errors import NotFound
from shared.rollout.experiments import ABMetric, ShadowComparison
from shared.rollout.model import CANDIDATE_TAG, Mirror, Policy, Rollout
from shared.rolloutconfig import SHADOW_METRIC
from shared.runtime import Runtime

#: The metric label an application puts the serving revision's name in (A/B decision metrics).
REVISION_LABEL = "revision"


def control_object(config: PipelineConfig, service: str) -> tuple[str, str] | None:
    """``(bucket, name)`` of the service's mirror control object; None without an artifacts bucket."""
    bucket = config.chain.artifacts_bucket
    return (bucket, f"rollouts/{service}/shadow.json") if bucket else None


def control_uri(config: PipelineConfig, service: str) -> str:
    where = control_object(config, service)
    return f"gs://{where[0]}/{where[1]}" if where else ""


def set_mirror(
    runtime: Runtime, rollout: Rollout, mirror: Mirror, service: Service | None, *, timeout: float
) -> None:
    """Write (on) or delete (off) the control object; a missing tag URL is transient (the next tick)."""
    where = control_object(runtime.config, rollout.service)
    if where is None:
        raise TransientError(
            f"shadow rollout of {rollout.service}: spec.artifacts.bucket is needed for the mirror's control"
        )
    bucket, name = where
    objects = runtime.ports.objects
    if not mirror.on:
        with contextlib.suppress(NotFound):  # already off
            objects.delete(bucket, name, timeout=timeout)
        return
    target = service.tag_uri(CANDIDATE_TAG) if service is not None else None
    if not target:
        raise TransientError(f"the candidate of {rollout.service} has no tag URL yet; the mirror waits")
    control = {
        "target": target,
        "sample": mirror.sample,
        "candidate": rollout.candidate,
        "run_id": rollout.run_id,
    }
    objects.write(bucket, name, json.dumps(control), content_type="application/json", timeout=timeout)


def read_comparison(
    runtime: Runtime, rollout: Rollout, now: datetime, *, timeout: float
) -> ShadowComparison | None:
    """The copies the candidate answered in the step's window, by outcome (None: could not be read)."""
    start = rollout.window_start
    if start is None or now <= start:
        return None
    try:
        counts = runtime.ports.metrics.custom_metric(
            SHADOW_METRIC,
            start,
            now,
            group_by="outcome",
            where={"candidate": rollout.candidate},
            timeout=timeout,
        )
    except Exception as error:  # not read is inconclusive, never a pass
        log.warning(
            "shadow comparison could not be read; the step is inconclusive",
            run_id=rollout.run_id,
            service=rollout.service,
            error=f"{type(error).__name__}: {error}",
        )
        return None

    def total(outcome: str) -> int:
        summary = counts.get(outcome)
        return int(summary.total) if summary is not None else 0

    return ShadowComparison(agree=total("agree"), disagree=total("disagree"), error=total("error"))


def read_ab(
    runtime: Runtime, policy: Policy, rollout: Rollout, now: datetime, *, timeout: float
) -> ABMetric | None:
    """The A/B metric's mean per side over the test's window (None: could not be read)."""
    metric = policy.ab_metric.type
    start = rollout.window_start
    if not metric or start is None or now <= start:
        return None
    try:
        means = runtime.ports.metrics.custom_metric(
            metric, start, now, group_by=REVISION_LABEL, timeout=timeout
        )
    except Exception as error:
        log.warning(
            "A/B metric could not be read; the test is inconclusive",
            run_id=rollout.run_id,
            service=rollout.service,
            metric=metric,
            error=f"{type(error).__name__}: {error}",
        )
        return None
    stable, candidate = means.get(rollout.stable), means.get(rollout.candidate)
    return ABMetric(
        metric_type=metric,
        stable_mean=stable.mean if stable is not None else None,
        candidate_mean=candidate.mean if candidate is not None else None,
        stable_points=stable.points if stable is not None else 0,
        candidate_points=candidate.points if candidate is not None else 0,
    )
