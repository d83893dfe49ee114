"""The internal events of the chain and their data, defined once for producers and consumers.

* ``training.requested`` on ``training-requests``: produced by on_build_status (trainer image built),
  reconcile (a data batch closed) and on_drift_alert; consumed by start_training.
* ``training.state`` on ``training-states``: produced by reconcile (a Vertex job reached a terminal state);
  consumed by on_training_state.
* ``notification`` on ``notifications``: produced by any stage; consumed by notify.
* ``rollout.requested`` on ``rollout-requests``: produced by the approval (on_approval, on_chat_approval)
  and by on_build_status / reconcile for a server-image-only push; consumed by start_rollout.

Every event's envelope carries the run id; event ids are derived from the step that emitted them
(``shared.steps``), so a re-emission is the same event.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidInput
from shared.events import Envelope
from shared.problems import Problems

TRAINING_REQUESTED = "training.requested"
TRAINING_STATE = "training.state"
NOTIFICATION = "notification"


class Cause(enum.StrEnum):
    PUSH = "push"
    DATA = "data"
    DRIFT = "drift"
    MANUAL = "manual"


@dataclass(frozen=True)
class GitContext:
    repo: str = ""
    commit: str = ""  # the full SHA
    branch: str = ""

    def to_json(self) -> dict[str, str]:
        return {"repo": self.repo, "commit": self.commit, "branch": self.branch} if self.commit else {}


@dataclass(frozen=True)
class TrainingRequested:
    """Train ``model`` for the run in the envelope."""

    model: str
    cause: Cause
    image: str = ""  # the trainer image (with digest) to use; empty: the newest our builds made, else default
    data_uris: tuple[str, ...] = ()  # the exact validated objects (gs://bucket/name#generation-free URIs)
    dataset: str = ""
    git: GitContext = field(default_factory=GitContext)
    detail: Mapping[str, Any] = field(default_factory=dict)  # e.g. the build id, the drift alerts

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cause": self.cause.value,
            "image": self.image,
            "data_uris": list(self.data_uris),
            "dataset": self.dataset,
            "git": self.git.to_json(),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class TrainingState:
    """A training job of the run reached a terminal state."""

    model: str
    job: str  # the job's full resource name
    state: str  # SUCCEEDED | FAILED | CANCELLED
    cause: Cause
    output_dir: str = ""  # where the trainer wrote model + metrics.json (gs://…)
    error: str = ""
    image: str = ""
    data_uris: tuple[str, ...] = ()
    git: GitContext = field(default_factory=GitContext)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "job": self.job,
            "state": self.state,
            "cause": self.cause.value,
            "output_dir": self.output_dir,
            "error": self.error,
            "image": self.image,
            "data_uris": list(self.data_uris),
            "git": self.git.to_json(),
        }


def _git(reader: Any) -> GitContext:
    git = reader.child("git")
    return GitContext(git.string("repo", ""), git.string("commit", ""), git.string("branch", ""))


def _cause(reader: Any) -> Cause:
    value = reader.string("cause", required=True) or ""
    try:
        return Cause(value)
    except ValueError:
        reader.add("cause", f"{value!r} is not one of {', '.join(c.value for c in Cause)}")
        return Cause.MANUAL


def _expect(envelope: Envelope, event_type: str, problems: Problems) -> None:
    if envelope.type != event_type:
        problems.add("type", f"expected {event_type!r}, got {envelope.type!r}")
    if not envelope.run_id:
        problems.add("run_id", "required")


def parse_training_requested(envelope: Envelope) -> TrainingRequested:
    problems = Problems()
    _expect(envelope, TRAINING_REQUESTED, problems)
    data = problems.reader(envelope.data, "data")
    result = TrainingRequested(
        model=data.string("model", required=True) or "",
        cause=_cause(data),
        image=data.string("image", ""),
        data_uris=data.string_list("data_uris", ()),
        dataset=data.string("dataset", ""),
        git=_git(data),
        detail=dict(data.mapping("detail")),
    )
    problems.raise_if_any(lambda items: InvalidInput(TRAINING_REQUESTED, items))
    return result


def parse_training_state(envelope: Envelope) -> TrainingState:
    problems = Problems()
    _expect(envelope, TRAINING_STATE, problems)
    data = problems.reader(envelope.data, "data")
    result = TrainingState(
        model=data.string("model", required=True) or "",
        job=data.string("job", required=True) or "",
        state=data.string("state", required=True) or "",
        cause=_cause(data),
        output_dir=data.string("output_dir", ""),
        error=data.string("error", ""),
        image=data.string("image", ""),
        data_uris=data.string_list("data_uris", ()),
        git=_git(data),
    )
    problems.raise_if_any(lambda items: InvalidInput(TRAINING_STATE, items))
    return result


# -- rollout.requested (issue 9): produced by the approval (on_approval, on_chat_approval, the operator's
# approve) and by on_build_status for a server-image-only push; consumed by start_rollout. ------------------

ROLLOUT_REQUESTED = "rollout.requested"
#: Strategies a rollout request may ask for (shared.rolloutconfig.Strategy's values).
STRATEGIES = ("canary", "blue_green", "shadow", "ab")
ROLLOUT_CAUSES = ("approval", "server_image", "manual")


@dataclass(frozen=True)
class RolloutRequested:
    """Roll ``version`` of ``model`` out on ``service`` with ``image``; the envelope's run id is the run
    being rolled out (for a server-image-only rollout: the push's run)."""

    service: str
    model: str
    version: str  # the version id
    version_resource: str  # projects/P/locations/L/models/M@VERSION
    artifact_uri: str  # gs:// folder of the model files
    image: str  # the serving image, by digest when our builds made it
    cause: str  # approval | server_image | manual
    approved_by: str  # the approver, or the policy (policy:auto, policy:serverImageChanges)
    nonce: str  # the decision's nonce
    strategy: str = ""  # "" (the service's) or a strategy this rollout runs instead (operator `start`)

    def to_json(self) -> dict[str, str]:
        return {
            **({"strategy": self.strategy} if self.strategy else {}),
            "service": self.service,
            "model": self.model,
            "version": self.version,
            "version_resource": self.version_resource,
            "artifact_uri": self.artifact_uri,
            "image": self.image,
            "cause": self.cause,
            "approved_by": self.approved_by,
            "nonce": self.nonce,
        }


def parse_rollout_requested(envelope: Envelope) -> RolloutRequested:
    problems = Problems()
    _expect(envelope, ROLLOUT_REQUESTED, problems)
    data = problems.reader(envelope.data, "data")
    cause = data.string("cause", required=True) or ""
    if cause and cause not in ROLLOUT_CAUSES:
        data.add("cause", f"{cause!r} is not one of {', '.join(ROLLOUT_CAUSES)}")
    result = RolloutRequested(
        service=data.string("service", required=True) or "",
        model=data.string("model", required=True) or "",
        version=data.string("version", required=True) or "",
        version_resource=data.string("version_resource", ""),
        artifact_uri=data.string("artifact_uri", required=True) or "",
        image=data.string("image", required=True) or "",
        cause=cause,
        approved_by=data.string("approved_by", ""),
        nonce=data.string("nonce", ""),
        strategy=data.string("strategy", ""),
    )
    if result.strategy and result.strategy not in STRATEGIES:
        data.add("strategy", f"{result.strategy!r} is not one of {', '.join(STRATEGIES)}")
    problems.raise_if_any(lambda items: InvalidInput(ROLLOUT_REQUESTED, items))
    return result
