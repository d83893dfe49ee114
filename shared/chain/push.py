"""The push stage: an authenticated push, routed → one Cloud Build build per touched image, never waited on.

``functions/on_git_push.py`` authenticates the raw body (:mod:`shared.ingest.signatures`) and routes the push
(:mod:`shared.ingest.routing`); this module turns a routed push into steps and answers the webhook:

* :func:`plan_builds` — each touched image's build (:func:`shared.ingest.builds.plan_build`) and the
  Cloud Build request made from it, before anything is started, so a config that cannot build refuses the
  whole push and starts nothing.
* :func:`build_step` — one :class:`~shared.steps.Step` per image, keyed ``build/REPO/SHA/IMAGE``
  (:func:`shared.ingest.runs.build_key`): a redelivery (same ``X-GitHub-Delivery``), a second hook for the
  same commit or the same commit pushed to another branch all land on the same key and start nothing
  again. The effect starts *one* build and returns its id at once; when the claim is a take-over
  (``attempt > 1``) it first looks the build up by its tags (``run-<id>``, ``image-<name>``), since the
  previous holder may have started it before it crashed.
* :func:`answer` — the webhook's JSON: the run id and, per image, ``started`` / ``duplicate`` / ``failed``.

The run id is ``push-<repo>-<sha12>`` (:func:`shared.ingest.runs.push_run_id`); the run is created by the
first step with its cause (repo, commit, branch or tag, the images), and the build's completion arrives on
``cloud-builds`` (:mod:`shared.chain.builds`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import deadline as deadlines
from shared.chain.contracts import Cause
from shared.chainconfig import ChainConfig
from shared.config import PipelineConfig
from shared.errors import ConfigError
from shared.events import GitPush, github_ping, github_push, gitlab_push, parse_json
from shared.ingest.builds import ImageBuild, load_build_config, plan_build
from shared.ingest.routing import Decision, PushRules
from shared.ingest.runs import push_run_id
from shared.ingest.signatures import MAX_BODY_BYTES, Delivery, Provider, WebhookSecrets
from shared.ledger import RunStatus
from shared.ports.builds import BuildRequest, Builds, GitSource
from shared.runtime import Runtime
from shared.steps import Effect, Outcome, Step, StepContext, StepResult, raise_for_retries

#: Where a relative ``cloudbuild/...`` path is found when it is not beside the pipeline configuration: the
#: deployed source tree (``main.py``'s folder), which ships ``cloudbuild/``.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: A port call's share of the webhook's deadline.
PORT_CALL_SECONDS = 5.0

__all__ = [
    "MAX_BODY_BYTES",
    "PlannedBuild",
    "answer",
    "build_config_path",
    "build_step",
    "parse_push",
    "plan_builds",
    "pong",
    "push_cause",
    "push_rules",
    "start_builds",
    "webhook_secrets",
]


def webhook_secrets(environ: Mapping[str, str] | None = None) -> WebhookSecrets:
    """``GITHUB_WEBHOOK_SECRET`` / ``GITLAB_WEBHOOK_TOKEN``, read per request so a rotated secret applies at
    once (they are never logged: ``WebhookSecrets`` hides them from ``repr``)."""
    return WebhookSecrets.from_environ(os.environ if environ is None else environ)


def push_rules(config: PipelineConfig) -> PushRules:
    """``spec.push``; a pipeline without it cannot take pushes, which is the operator's to fix (500)."""
    rules = config.chain.push
    if rules is None:
        raise ConfigError(
            f"{config.source}: spec.push is not configured, so no push can start a build",
            [f"{config.source}: spec.push: required to handle git pushes"],
        )
    return rules


def pong(delivery: Delivery, body: bytes) -> dict[str, Any]:
    """The answer to GitHub's ``ping`` (sent when the webhook is created): proof the secret matches."""
    ping = github_ping(parse_json(body, max_bytes=MAX_BODY_BYTES, what="GitHub ping"), delivery.delivery_id)
    return {"ok": True, "event": "ping", "hook_id": ping.hook_id, "repository": ping.repository}


def parse_push(delivery: Delivery, body: bytes) -> GitPush:
    """The push in an authenticated body (GitHub ``push`` or GitLab ``Push Hook`` / ``Tag Push Hook``)."""
    what = "GitHub push" if delivery.provider is Provider.GITHUB else "GitLab push"
    data = parse_json(body, max_bytes=MAX_BODY_BYTES, what=what)
    if delivery.provider is Provider.GITHUB:
        return github_push(data, delivery.delivery_id)
    return gitlab_push(data, delivery.delivery_id)


def build_config_path(config: PipelineConfig, relative: str) -> Path:
    """An image rule's Cloud Build config: beside the pipeline configuration if it is there, else in the
    deployed source tree."""
    path = Path(relative)
    if path.is_absolute():
        return path
    beside = Path(config.source).parent / path
    return beside if beside.is_file() else SOURCE_ROOT / path


@dataclass(frozen=True)
class PlannedBuild:
    """One image's build for a push: the plan (key, tags, source) and the request to start."""

    plan: ImageBuild
    request: BuildRequest
    role: str


def plan_builds(config: PipelineConfig, push: GitPush, decision: Decision, run_id: str) -> list[PlannedBuild]:
    """Every touched image's build, planned before any is started (so a bad config starts nothing)."""
    chain: ChainConfig = config.chain
    planned: list[PlannedBuild] = []
    for touched in decision.images:
        rule = touched.rule
        path = build_config_path(config, rule.config)
        plan = plan_build(push, rule, load_build_config(path), run_id=run_id, config_path=rule.config)
        source = GitSource(plan.source.url, plan.source.revision, plan.source.dir)
        request = BuildRequest.from_config(
            plan.config, source=source, substitutions=plan.substitutions, tags=plan.tags
        )
        spec = chain.image(rule.name)
        planned.append(PlannedBuild(plan, request, spec.role if spec else "other"))
    return planned


def push_cause(push: GitPush, decision: Decision, delivery: Delivery) -> dict[str, Any]:
    """The run's cause: what was pushed, where, and which images it touched."""
    return {
        "cause": Cause.PUSH.value,
        "provider": push.provider,
        "repo": push.repository,
        "commit": push.after.lower(),
        "branch": push.branch or "",
        "tag": push.tag or "",
        "pusher": push.pusher,
        "delivery": delivery.delivery_id,
        "images": list(decision.image_names),
        "complete": decision.complete,
    }


def build_step(builds: Builds, planned: PlannedBuild, cause: Mapping[str, Any], causation_id: str) -> Step:
    """The step that starts ``planned``'s build once per repository + commit + image."""
    plan = planned.plan

    def start(context: StepContext) -> Effect:
        if context.attempt > 1:
            # A previous holder may have started the build and crashed before completing the step.
            found = builds.find_by_tags(
                plan.lookup_tags, limit=1, timeout=context.deadline.timeout(PORT_CALL_SECONDS)
            )
            if found:
                return Effect(_started(planned, found[0].id, found_again=True))
        build_id = builds.start(planned.request, timeout=context.deadline.timeout(PORT_CALL_SECONDS))
        return Effect(_started(planned, build_id, found_again=False))

    return Step(
        key=plan.key,
        # Only what the key already says: a second hook for the same commit (another branch, another
        # delivery) must be the same step, not a key reused with a different payload.
        payload={"key": plan.key},
        effect=start,
        name=f"build:{plan.image}",
        run_id=plan.run_id,
        causation_id=causation_id,
        cause=cause,
    )


def _started(planned: PlannedBuild, build_id: str, *, found_again: bool) -> dict[str, Any]:
    return {
        "build_id": build_id,
        "image": planned.plan.image,
        "role": planned.role,
        "found_again": found_again,
        "request": planned.plan.to_json(),
    }


def start_builds(
    runtime: Runtime, push: GitPush, decision: Decision, delivery: Delivery
) -> tuple[str, list[PlannedBuild], list[StepResult]]:
    """Plan every touched image's build, then start each once (a step per image); a build Cloud Build
    refuses ends the run FAILED. Raises a TransientError when a step must be retried (the sender retries)."""
    run_id = push_run_id(push.repository, push.after)
    planned = plan_builds(runtime.config, push, decision, run_id)
    cause = push_cause(push, decision, delivery)
    causation = delivery.delivery_id or push.after
    results = runtime.steps().run_all(build_step(runtime.ports.builds, p, cause, causation) for p in planned)
    # A step another delivery holds right now is being done by it: answer 202 (GitHub and GitLab do not
    # redeliver on their own, so a 5xx would only ask a person to redeliver work that is under way). Only a
    # failure of our own asks for a retry.
    raise_for_retries(
        [result for result in results if result.outcome is not Outcome.BUSY], f"the builds of {run_id}"
    )
    if any(result.failed for result in results):
        runtime.ledger.finish_run(
            run_id, RunStatus.FAILED, timeout=deadlines.current().timeout(PORT_CALL_SECONDS)
        )
    return run_id, planned, results


def answer(
    run_id: str, decision: Decision, planned: Sequence[PlannedBuild], results: Sequence[StepResult]
) -> tuple[dict[str, Any], int]:
    """The webhook's answer: 202 when a build was started now (it runs on), else 200."""
    builds: list[dict[str, Any]] = []
    for build, result in zip(planned, results, strict=True):
        image = build.plan.image
        if result.outcome is Outcome.FAILED:
            builds.append({"image": image, "outcome": "failed", "error": result.error})
            continue
        if result.outcome is Outcome.BUSY:
            builds.append({"image": image, "outcome": "in_progress"})
            continue
        fresh = result.outcome is Outcome.DONE and not result.result.get("found_again")
        builds.append(
            {
                "image": image,
                "build_id": str(result.result.get("build_id", "")),
                "outcome": "started" if fresh else "duplicate",
            }
        )
    body = {
        "run_id": run_id,
        "reason": decision.reason,
        "complete": decision.complete,
        "builds": builds,
        "started": [b["image"] for b in builds if b["outcome"] == "started"],
        "duplicate": [b["image"] for b in builds if b["outcome"] == "duplicate"],
        "failed": [b["image"] for b in builds if b["outcome"] == "failed"],
    }
    body["in_progress"] = [b["image"] for b in builds if b["outcome"] == "in_progress"]
    return body, 202 if body["started"] or body["in_progress"] else 200
