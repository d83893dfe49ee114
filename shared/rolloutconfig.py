"""The rollout's part of ``pipeline.yaml``: which Cloud Run service serves which model and how a new revision
reaches its users. Parsed by :func:`shared.config.parse_config` into ``config.services`` (a tuple of
:class:`ServiceSpec`) and ``config.rollout`` (:class:`RolloutSettings`); every problem is reported with the
others, naming its field.

```yaml
spec:
  rollout:
    serverImageChanges: auto         # auto | manual: a push that only changes server/ rolls out by itself
  services:
    - name: churn-predictor          # the Cloud Run service (created by the first approved candidate)
      model: churn                   # a model of spec.models
      strategy: canary               # canary | blue_green | shadow | ab (a rollout may override it)
      readyTimeout: 5m               # a candidate revision not ready by then is rolled back
      canary:
        steps: [10, 50, 100]         # candidate's share per step, increasing, ending at 100
        interval: 5s                 # each step held at least this long, then analysed
        minRequests: 20              # per revision per window; fewer is inconclusive, never a pass
        inconclusive: {wait: 30s, then: fail}   # fail (roll back) | pause (wait for an operator)
      analysis: {max5xxShare: 0.05, maxP95Ratio: 2.0, maxP95Ms: 800, maxP99Ratio: 3.0}
      smoke:                         # checked on the candidate's tag URL before any user sees it
        - {path: /predict, method: POST, body: {instances: [[0.1, 0.2]]}, expectStatus: 200,
           expectJson: [predictions], maxLatency: 2s}
      postSwitchWindow: 10s          # blue_green: the analysis window after the switch to 100%
      shadow:                        # shadow: the candidate answers copies of live requests, never users
        sample: 0.5                  # share of stable's answered requests copied to the candidate's tag URL
        duration: 30s                # the comparison window (at least)
        minRequests: 20              # mirrored requests the candidate must have answered
        minAgreement: 0.95           # share of copies whose predictions equal stable's
        then: promote                # promote (100% at once) | canary (the canary steps follow)
      ab:                            # A/B: a fixed split for a duration, then a metric or a person decides
        split: 50                    # the candidate's share
        duration: 10m
        decide: metric               # metric | human (paused with the numbers for promote / rollback)
        metric: {type: custom.googleapis.com/churn/retained, direction: higher, minLift: 0.0}
```

Blue/green is the candidate at 0% behind its tag URL, the smoke checks on that URL, then 100% at once and
one analysis window of ``postSwitchWindow`` (so it needs at least one smoke check). The first candidate of
a service that does not exist yet creates it: smoke checks on its tag URL, then it is the stable revision.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidInput
from shared.problems import Reader
from shared.rollout.analysis import Thresholds


class Strategy(enum.StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    SHADOW = "shadow"
    AB = "ab"


INCONCLUSIVE_ACTIONS = ("fail", "pause")
SHADOW_THEN = ("promote", "canary")
AB_DECIDERS = ("metric", "human")
DIRECTIONS = ("higher", "lower")
#: The custom metric the serving image writes for a shadow comparison (examples/server/server/shadow.py).
SHADOW_METRIC = "custom.googleapis.com/mlops/shadow_comparisons"
#: Metric type prefixes an A/B decision may read: metrics an application writes.
CUSTOM_METRIC_PREFIXES = ("custom.googleapis.com/", "external.googleapis.com/", "workload.googleapis.com/")
IMAGE_CHANGE_POLICIES = ("auto", "manual")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


@dataclass(frozen=True)
class InconclusivePolicy:
    """How long a step may stay inconclusive (too few requests, no metrics) and what happens then."""

    wait_seconds: float = 30.0
    then: str = "fail"  # fail: roll back | pause: hold until an operator decides


@dataclass(frozen=True)
class CanarySpec:
    steps: tuple[int, ...] = (10, 50, 100)
    interval_seconds: float = 60.0
    inconclusive: InconclusivePolicy = field(default_factory=InconclusivePolicy)


@dataclass(frozen=True)
class SmokeCheck:
    """One request to the candidate's tag URL and what its answer must be."""

    path: str = "/"
    method: str = "GET"
    body: Any = None  # sent as JSON when not None
    expect_status: int = 200
    expect_json: tuple[str, ...] = ()  # top-level fields the JSON answer must have
    max_latency_seconds: float | None = None


@dataclass(frozen=True)
class ShadowSpec:
    """The shadow comparison: a sample of stable's live requests copied to the candidate."""

    sample: float = 0.5
    duration_seconds: float = 60.0
    min_requests: int = 20
    min_agreement: float = 0.95
    then: str = "promote"  # promote | canary


@dataclass(frozen=True)
class MetricDecision:
    """The custom metric deciding an A/B test (per-revision means; the candidate wins by ``min_lift``)."""

    type: str = ""
    direction: str = "higher"  # higher | lower is better
    min_lift: float = 0.0  # absolute difference of the means the candidate must win by


@dataclass(frozen=True)
class ABSpec:
    split: int = 50
    duration_seconds: float = 600.0
    min_requests: int = 20
    decide: str = "metric"  # metric | human
    metric: MetricDecision = field(default_factory=MetricDecision)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    model: str
    strategy: Strategy
    canary: CanarySpec
    thresholds: Thresholds
    smoke: tuple[SmokeCheck, ...] = ()
    post_switch_window_seconds: float = 60.0
    ready_timeout_seconds: float = 300.0
    shadow: ShadowSpec = field(default_factory=ShadowSpec)
    ab: ABSpec = field(default_factory=ABSpec)

    def steps_of(self, strategy: Strategy) -> tuple[int, ...]:
        """The candidate's share per step under ``strategy``: the canary's steps; one switch to 100 for
        blue/green; 0 (the shadow comparison), then the canary's steps when ``shadow.then`` is canary; the
        A/B split."""
        if strategy is Strategy.BLUE_GREEN:
            return (100,)
        if strategy is Strategy.SHADOW:
            return (0, *self.canary.steps) if self.shadow.then == "canary" else (0,)
        if strategy is Strategy.AB:
            return (self.ab.split,)
        return self.canary.steps

    def intervals_of(self, strategy: Strategy) -> tuple[float, ...]:
        """How long each step of :meth:`steps_of` is held before its analysis decides."""
        steps = self.steps_of(strategy)
        if strategy is Strategy.BLUE_GREEN:
            return (self.post_switch_window_seconds,)
        if strategy is Strategy.SHADOW:
            return (self.shadow.duration_seconds,) + (self.canary.interval_seconds,) * (len(steps) - 1)
        if strategy is Strategy.AB:
            return (self.ab.duration_seconds,)
        return (self.canary.interval_seconds,) * len(steps)

    @property
    def steps(self) -> tuple[int, ...]:
        return self.steps_of(self.strategy)

    @property
    def interval_seconds(self) -> float:
        """How long the first step is held (every canary step is held as long)."""
        return self.intervals_of(self.strategy)[0]

    def problems_for(self, strategy: Strategy) -> list[str]:
        """Why a rollout cannot use ``strategy`` on this service (a rollout may override the service's)."""
        if strategy is Strategy.BLUE_GREEN and not self.smoke:
            return ["blue_green needs at least one smoke check (they decide the switch)"]
        if strategy is Strategy.AB and self.ab.decide == "metric" and not self.ab.metric.type:
            return ["ab with decide: metric needs ab.metric.type"]
        return []


@dataclass(frozen=True)
class RolloutSettings:
    server_image_changes: str = "auto"  # auto | manual


DEFAULT_SETTINGS = RolloutSettings()


def service_for_model(services: Sequence[ServiceSpec], model: str) -> ServiceSpec | None:
    return next((service for service in services if service.model == model), None)


def service_named(services: Sequence[ServiceSpec], name: str) -> ServiceSpec | None:
    return next((service for service in services if service.name == name), None)


Duration = Callable[[Reader, str, float, float], float]


def parse_rollout(
    spec: Reader, duration: Duration, models: Sequence[str]
) -> tuple[tuple[ServiceSpec, ...], RolloutSettings]:
    """Read ``spec.services`` and ``spec.rollout`` (problems go to the collector of ``spec``)."""
    settings = spec.child("rollout")
    settings.unknown({"serverImageChanges"})
    changes = settings.string("serverImageChanges", "auto")
    if changes not in IMAGE_CHANGE_POLICIES:
        settings.add("serverImageChanges", f"{changes!r} is not one of {', '.join(IMAGE_CHANGE_POLICIES)}")

    services: list[ServiceSpec] = []
    for item in spec.items("services"):
        service = _service(item, duration, models)
        if service is not None:
            services.append(service)
    _unique(spec, [service.name for service in services], "name")
    _unique(spec, [service.model for service in services], "model")
    return tuple(services), RolloutSettings(server_image_changes=changes)


def _service(item: Reader, duration: Duration, models: Sequence[str]) -> ServiceSpec | None:
    item.unknown(
        {
            "name",
            "model",
            "strategy",
            "canary",
            "analysis",
            "smoke",
            "postSwitchWindow",
            "readyTimeout",
            "shadow",
            "ab",
        }
    )
    name = item.string("name", required=True) or ""
    model = item.string("model", required=True) or ""
    if model and model not in models:
        item.add("model", f"unknown model {model!r} (spec.models lists {list(models)})")
    strategy_text = item.string("strategy", Strategy.CANARY.value)
    strategy = Strategy.CANARY
    try:
        strategy = Strategy(strategy_text)
    except ValueError:
        item.add("strategy", f"{strategy_text!r} is not one of {', '.join(s.value for s in Strategy)}")

    canary_reader = item.child("canary")
    canary_reader.unknown({"steps", "interval", "minRequests", "inconclusive"})
    steps = _steps(canary_reader)
    interval = duration(canary_reader, "interval", 60.0, 1.0)
    min_requests = canary_reader.integer("minRequests", 20, minimum=1, maximum=1_000_000)
    inconclusive_reader = canary_reader.child("inconclusive")
    inconclusive_reader.unknown({"wait", "then"})
    wait = duration(inconclusive_reader, "wait", max(30.0, interval), 0.0)
    then = inconclusive_reader.string("then", "fail")
    if then not in INCONCLUSIVE_ACTIONS:
        inconclusive_reader.add("then", f"{then!r} is not one of {', '.join(INCONCLUSIVE_ACTIONS)}")

    thresholds = _thresholds(item.child("analysis"), min_requests)
    smoke = tuple(_smoke(check, duration) for check in item.items("smoke"))
    service = ServiceSpec(
        name=name,
        model=model,
        strategy=strategy,
        canary=CanarySpec(steps, interval, InconclusivePolicy(wait, then)),
        thresholds=thresholds,
        smoke=smoke,
        post_switch_window_seconds=duration(item, "postSwitchWindow", 60.0, 1.0),
        ready_timeout_seconds=duration(item, "readyTimeout", 300.0, 1.0),
        shadow=_shadow(item.child("shadow"), duration),
        ab=_ab(item.child("ab"), duration),
    )
    for problem in service.problems_for(strategy):
        item.add("smoke" if strategy is Strategy.BLUE_GREEN else "ab", problem)
    return service


def _shadow(reader: Reader, duration: Duration) -> ShadowSpec:
    reader.unknown({"sample", "duration", "minRequests", "minAgreement", "then"})
    sample = reader.number("sample", 0.5)
    if not 0.0 < sample <= 1.0:
        reader.add("sample", f"{sample} is not a share above 0 and at most 1")
    agreement = reader.number("minAgreement", 0.95)
    if not 0.0 <= agreement <= 1.0:
        reader.add("minAgreement", f"{agreement} is not a share between 0 and 1")
    then = reader.string("then", "promote")
    if then not in SHADOW_THEN:
        reader.add("then", f"{then!r} is not one of {', '.join(SHADOW_THEN)}")
    return ShadowSpec(
        sample=sample,
        duration_seconds=duration(reader, "duration", 60.0, 1.0),
        min_requests=reader.integer("minRequests", 20, minimum=1, maximum=1_000_000),
        min_agreement=agreement,
        then=then,
    )


def _ab(reader: Reader, duration: Duration) -> ABSpec:
    reader.unknown({"split", "duration", "minRequests", "decide", "metric"})
    split = reader.integer("split", 50, minimum=1, maximum=99)
    decide = reader.string("decide", "metric")
    if decide not in AB_DECIDERS:
        reader.add("decide", f"{decide!r} is not one of {', '.join(AB_DECIDERS)}")
    metric_reader = reader.child("metric")
    metric_reader.unknown({"type", "direction", "minLift"})
    metric_type = metric_reader.string("type", "")
    if metric_type and not metric_type.startswith(CUSTOM_METRIC_PREFIXES):
        metric_reader.add(
            "type",
            f"{metric_type!r} is not a metric an application writes (it must start with "
            f"{' or '.join(CUSTOM_METRIC_PREFIXES)})",
        )
    direction = metric_reader.string("direction", "higher")
    if direction not in DIRECTIONS:
        metric_reader.add("direction", f"{direction!r} is not one of {', '.join(DIRECTIONS)}")
    lift = metric_reader.number("minLift", 0.0)
    if lift < 0:
        metric_reader.add(
            "minLift", f"{lift} must not be negative (it is how much better the candidate must be)"
        )
    return ABSpec(
        split=split,
        duration_seconds=duration(reader, "duration", 600.0, 1.0),
        min_requests=reader.integer("minRequests", 20, minimum=1, maximum=1_000_000),
        decide=decide,
        metric=MetricDecision(metric_type, direction, lift),
    )


def _steps(reader: Reader) -> tuple[int, ...]:
    raw = reader.get("steps")
    if raw is None:
        return (10, 50, 100)
    if not isinstance(raw, list) or not raw:
        reader.add("steps", "must be a non-empty list of percents, e.g. [10, 50, 100]")
        return (10, 50, 100)
    steps: list[int] = []
    for index, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            reader.add(f"steps[{index}]", f"{value!r} is not a whole percent between 1 and 100")
            return (10, 50, 100)
        steps.append(value)
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        reader.add("steps", f"{steps} must increase strictly")
    if steps[-1] != 100:
        reader.add("steps", f"{steps} must end at 100 (the candidate takes all traffic before promotion)")
    return tuple(steps)


def _thresholds(reader: Reader, min_requests: int) -> Thresholds:
    reader.unknown({"max5xxShare", "maxP95Ms", "maxP99Ms", "maxP95Ratio", "maxP99Ratio"})
    share = reader.number("max5xxShare", 0.05)
    p95_ms, p99_ms = _optional_number(reader, "maxP95Ms"), _optional_number(reader, "maxP99Ms")
    p95_ratio = _optional_number(reader, "maxP95Ratio", 2.0)
    p99_ratio = _optional_number(reader, "maxP99Ratio")
    try:
        return Thresholds(min_requests, share, p95_ms, p99_ms, p95_ratio, p99_ratio)
    except InvalidInput as error:
        for problem in error.problems:
            key, _, message = problem.partition(": ")
            reader.add(_CAMEL.get(key, key), message)
        return Thresholds(min_requests=min_requests)


_CAMEL = {
    "min_requests": "minRequests",
    "max_5xx_share": "max5xxShare",
    "max_p95_ms": "maxP95Ms",
    "max_p99_ms": "maxP99Ms",
    "max_p95_ratio": "maxP95Ratio",
    "max_p99_ratio": "maxP99Ratio",
}


def _optional_number(reader: Reader, key: str, default: float | None = None) -> float | None:
    if not reader.has(key):
        return default
    if reader.get(key) is None:
        return None  # an explicit null turns a default check off
    return reader.number(key, default or 0.0)


def _smoke(reader: Reader, duration: Duration) -> SmokeCheck:
    reader.unknown({"path", "method", "body", "expectStatus", "expectJson", "maxLatency"})
    path = reader.string("path", "/")
    if not path.startswith("/"):
        reader.add("path", f"{path!r} must start with /")
    method = reader.string("method", "GET").upper()
    if method not in HTTP_METHODS:
        reader.add("method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}")
    return SmokeCheck(
        path=path,
        method=method,
        body=reader.get("body"),
        expect_status=reader.integer("expectStatus", 200, minimum=100, maximum=599),
        expect_json=reader.string_list("expectJson", ()),
        max_latency_seconds=duration(reader, "maxLatency", 0.0, 0.0) or None,
    )


def _unique(spec: Reader, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            spec.problems.add(f"{spec.at('services')}[{index}].{what}", f"{value!r} is used twice")
        seen.add(value)
