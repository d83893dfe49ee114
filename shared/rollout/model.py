"""The rollout's values: the stored :class:`Rollout`, what a tick :class:`Observed`, the :class:`Policy` taken
from the config, and what the machine decides (:class:`Decision`: the :data:`Action` port calls, the
:class:`Record` on the run, the :class:`Event` s to publish). Plain frozen dataclasses, no behaviour beyond
(de)serialising: :mod:`shared.rollout.machine` holds the transitions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.ports.deployments import RevisionState, TrafficTarget
from shared.rollout.analysis import Analysis
from shared.rollout.experiments import ABMetric, ShadowComparison
from shared.rolloutconfig import MetricDecision, ServiceSpec, Strategy

CANDIDATE_TAG = "candidate"
STABLE_TAG = "stable"
FAILED_TAG = "failed"
PREVIOUS_TAG = "previous"  # the old stable after a promotion, at 0%, for an instant rollback
CHAMPION = "champion"

# Step names on the run (the status page reads the first five; see the rollout brief).
STARTED = "rollout:started"
PROMOTED = "rollout:promoted"
ROLLED_BACK = "rollout:rolled_back"
PAUSED = "rollout:paused"
RESUMED = "rollout:resumed"
ABORTED = "rollout:aborted"
SMOKE = "rollout:smoke"
PROMOTING = "rollout:promoting"
ROLLING_BACK = "rollout:rolling_back"
DEPLOY = "rollout:deploy"

#: A candidate revision not seen this long after its deploy is deployed again (then twice as long, ...).
REDEPLOY_AFTER_SECONDS = 15.0


def step_name(index: int) -> str:
    """``rollout:step:<n>``: the analysis of step ``n`` (0-based)."""
    return f"rollout:step:{index}"


def traffic_name(index: int) -> str:
    """``rollout:traffic:<n>``: the split of step ``n`` asked for."""
    return f"rollout:traffic:{index}"


class Phase(enum.StrEnum):
    PENDING = "pending"
    DEPLOYING = "deploying"
    SMOKE = "smoke"
    STEPPING = "stepping"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    ABORTED = "aborted"
    SUPERSEDED = "superseded"

    @property
    def terminal(self) -> bool:
        return self in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.SUPERSEDED)


#: Phases an operator may pause (and where ``resume`` goes back to).
PAUSABLE = (Phase.DEPLOYING, Phase.SMOKE, Phase.STEPPING)


@dataclass(frozen=True)
class Policy:
    """What the machine needs of a service's configuration."""

    strategy: Strategy = Strategy.CANARY
    steps: tuple[int, ...] = (10, 50, 100)
    interval_seconds: float = 60.0
    inconclusive_wait_seconds: float = 30.0
    inconclusive_then: str = "fail"  # fail | pause
    ready_timeout_seconds: float = 300.0
    intervals: tuple[float, ...] = ()  # per step; empty: every step held ``interval_seconds``
    shadow_min_requests: int = 20  # mirrored requests the shadow comparison needs
    shadow_min_agreement: float = 0.95
    shadow_sample: float = 0.5
    ab_decide: str = "metric"  # metric | human
    ab_metric: MetricDecision = field(default_factory=MetricDecision)
    smoke: bool = False  # the service has smoke checks (run before the first step of any strategy)

    @classmethod
    def of(cls, service: ServiceSpec, strategy: Strategy | str | None = None) -> Policy:
        """The service's policy, under ``strategy`` when a rollout overrides the service's own."""
        chosen = Strategy(strategy) if strategy else service.strategy
        intervals = service.intervals_of(chosen)
        return cls(
            strategy=chosen,
            steps=service.steps_of(chosen),
            interval_seconds=intervals[0],
            inconclusive_wait_seconds=service.canary.inconclusive.wait_seconds,
            inconclusive_then=service.canary.inconclusive.then,
            ready_timeout_seconds=service.ready_timeout_seconds,
            intervals=intervals,
            shadow_min_requests=service.shadow.min_requests,
            shadow_min_agreement=service.shadow.min_agreement,
            shadow_sample=service.shadow.sample,
            ab_decide=service.ab.decide,
            ab_metric=service.ab.metric,
            smoke=bool(service.smoke),
        )

    def interval(self, index: int) -> float:
        """How long step ``index`` is held before its analysis decides."""
        return self.intervals[index] if 0 <= index < len(self.intervals) else self.interval_seconds

    @property
    def smoke_first(self) -> bool:
        """Whether a candidate beside a stable is smoke-checked on its tag URL before its first step: always
        for blue/green (the checks decide the switch), and for every strategy when the service has checks —
        a candidate that cannot answer never sees a user (or a copy), and the checks warm it up, so its
        first step's latency is not a cold start's (measured: a cold candidate's p95 is about twice stable's
        over the first 20 requests, failing a 2x ratio it would pass warm)."""
        return self.strategy is Strategy.BLUE_GREEN or self.smoke

    def is_shadow_step(self, index: int) -> bool:
        """Step ``index`` is the shadow comparison (the candidate at 0%, answering copies)."""
        return self.strategy is Strategy.SHADOW and index == 0


@dataclass(frozen=True)
class Rollout:
    """One rollout of one candidate revision on one service: the ``rollouts/<service>`` state document."""

    service: str
    run_id: str
    candidate: str  # the candidate revision's name
    started_at: datetime
    model: str = ""
    version: str = ""  # the model version id
    version_resource: str = ""
    artifact_uri: str = ""
    image: str = ""
    cause: str = ""  # approval | server_image | manual
    strategy: str = Strategy.CANARY.value
    stable: str = ""  # the revision serving before; "" until known, and for a first deploy
    first_deploy: bool = False  # the service did not exist: the candidate creates it
    phase: Phase = Phase.PENDING
    step: int = -1  # the canary step (index into the policy's steps) while stepping
    attempt: int = 0  # how many times the current split was asked again (keys of re-issued writes)
    entered_at: datetime | None = None  # when the current phase (or step) began
    window_start: datetime | None = None  # when the current step's split was read back in effect
    inconclusive_since: datetime | None = None
    paused_phase: str = ""  # where ``resume`` goes back to
    pauses: int = 0
    reason: str = ""  # why it ended (or paused)
    last_command: str = ""  # the id of the last operator command acted on

    @property
    def active(self) -> bool:
        return not self.phase.terminal

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "run_id": self.run_id,
            "candidate": self.candidate,
            "started_at": self.started_at.isoformat(),
            "model": self.model,
            "version": self.version,
            "version_resource": self.version_resource,
            "artifact_uri": self.artifact_uri,
            "image": self.image,
            "cause": self.cause,
            "strategy": self.strategy,
            "stable": self.stable,
            "first_deploy": self.first_deploy,
            "phase": self.phase.value,
            "active": self.active,
            "step": self.step,
            "attempt": self.attempt,
            "entered_at": _iso(self.entered_at),
            "window_start": _iso(self.window_start),
            "inconclusive_since": _iso(self.inconclusive_since),
            "paused_phase": self.paused_phase,
            "pauses": self.pauses,
            "reason": self.reason,
            "last_command": self.last_command,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        started = _time(data.get("started_at"))
        assert started is not None, "a stored rollout always has started_at"
        return cls(
            service=str(data["service"]),
            run_id=str(data["run_id"]),
            candidate=str(data["candidate"]),
            started_at=started,
            model=str(data.get("model", "")),
            version=str(data.get("version", "")),
            version_resource=str(data.get("version_resource", "")),
            artifact_uri=str(data.get("artifact_uri", "")),
            image=str(data.get("image", "")),
            cause=str(data.get("cause", "")),
            strategy=str(data.get("strategy", Strategy.CANARY.value)),
            stable=str(data.get("stable", "")),
            first_deploy=bool(data.get("first_deploy", False)),
            phase=Phase(str(data.get("phase", Phase.PENDING.value))),
            step=int(data.get("step", -1)),
            attempt=int(data.get("attempt", 0)),
            entered_at=_time(data.get("entered_at")),
            window_start=_time(data.get("window_start")),
            inconclusive_since=_time(data.get("inconclusive_since")),
            paused_phase=str(data.get("paused_phase", "")),
            pauses=int(data.get("pauses", 0)),
            reason=str(data.get("reason", "")),
            last_command=str(data.get("last_command", "")),
        )


class CommandAction(enum.StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class Command:
    """An operator's command for the service's current rollout (``run_id``; empty: whichever it is)."""

    id: str
    action: CommandAction
    by: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class SmokeOutcome:
    passed: bool
    checks: tuple[Mapping[str, Any], ...] = ()  # one per check: path, status, latency_ms, ok, reason

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(str(check.get("reason", "")) for check in self.checks if not check.get("ok"))


@dataclass(frozen=True)
class Observed:
    """What one tick read (the adapter fills it; every field has a harmless "nothing known" default)."""

    exists: bool = False  # the service exists
    candidate: RevisionState | None = None  # None: no such revision
    candidate_message: str = ""  # why it failed, when it did
    asked: Mapping[str, int] = field(default_factory=dict)  # revision -> percent, as asked for
    served: Mapping[str, int] = field(default_factory=dict)  # revision -> percent, as served (read back)
    tags: Mapping[str, str] = field(default_factory=dict)  # tag -> revision, as asked for
    analysis: Analysis | None = None  # of the current step's window (None: nothing to analyse with)
    smoke: SmokeOutcome | None = None
    command: Command | None = None
    comparison: ShadowComparison | None = None  # the shadow step's mirrored copies (None: not read)
    ab: ABMetric | None = None  # the A/B decision metric per revision (None: not read)


@dataclass(frozen=True)
class CreateService:
    """Create the service with the candidate at 100% behind the ``candidate`` tag (a first deploy)."""

    tag: str = CANDIDATE_TAG


@dataclass(frozen=True)
class DeployCandidate:
    """Add the candidate revision at 0% behind the ``candidate`` tag, every other share pinned."""

    tag: str = CANDIDATE_TAG


@dataclass(frozen=True)
class SetTraffic:
    targets: tuple[TrafficTarget, ...]


@dataclass(frozen=True)
class MoveAlias:
    """Give the model version the alias (taking it from any other version)."""

    model: str
    version: str
    alias: str = CHAMPION


@dataclass(frozen=True)
class Mirror:
    """Turn the serving image's shadow mirror on (copies of ``sample`` of stable's answered requests to the
    candidate's tag URL) or off."""

    on: bool
    sample: float = 0.0


Action = CreateService | DeployCandidate | SetTraffic | MoveAlias | Mirror


class EventKind(enum.StrEnum):
    STARTED = "started"
    STEP = "step"
    PAUSED = "paused"
    RESUMED = "resumed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Event:
    """A rollout event; the adapter adds the service's tag URLs and publishes it (and its notification)."""

    kind: EventKind
    percent: int = 0  # the candidate's share after this event
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)  # e.g. the step's analysis numbers


@dataclass(frozen=True)
class Record:
    """A step on the run: its exact ``name``, the idempotency ``key`` and the ``result`` it records."""

    name: str
    key: str
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    rollout: Rollout
    actions: tuple[Action, ...] = ()
    record: Record | None = None
    events: tuple[Event, ...] = ()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None
