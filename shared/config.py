"""The pipeline configuration: one YAML file, validated at cold start.

The file (path from ``PIPELINE_CONFIG``, default ``pipeline.yaml``) has ``apiVersion``, ``kind`` and a
``spec``. Any string may reference the environment as ``${VAR}`` or ``${VAR:-default}``; deploy-specific
values are also overridden by fixed variables (see :data:`ENV_OVERRIDES`). Every problem is reported at
once, each naming the file and the field, e.g.
``pipeline.yaml: spec.notifications.channels[0].url: required``.

Run ``python -m shared.config check FILE`` to validate a file before deploying it.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.chainconfig import EMPTY as EMPTY_CHAIN
from shared.chainconfig import ChainConfig, parse_chain
from shared.errors import ConfigError
from shared.problems import Problems, Reader
from shared.rolloutconfig import DEFAULT_SETTINGS as DEFAULT_ROLLOUT
from shared.rolloutconfig import RolloutSettings, ServiceSpec, parse_rollout

API_VERSION = "mlops.dev/v1"
KIND = "Pipeline"
DEFAULT_PATH = "pipeline.yaml"

#: environment variable -> the spec field it overrides
ENV_OVERRIDES: dict[str, str] = {
    "GOOGLE_CLOUD_PROJECT": "project",
    "PIPELINE_REGION": "region",
    "PIPELINE_TOPIC_PREFIX": "topicPrefix",
    "PIPELINE_LEDGER_PREFIX": "ledger.collectionPrefix",
}

SEVERITIES = ("debug", "info", "warning", "error", "critical")
CHANNEL_TYPES = ("slack", "google_chat", "webhook", "email")

#: The internal event kinds and their default topic names (before the prefix).
DEFAULT_TOPICS: dict[str, str] = {
    "notification": "notifications",
    "training.requested": "training-requests",
    "training.state": "training-states",
    "drift.alert": "drift-alerts",  # published by a Cloud Monitoring notification channel (external)
    "approval.decision": "approvals",  # the approval decision contract (docs/events.md)
    "rollout.requested": "rollout-requests",  # approved candidates (and server images) to roll out
    "rollout.event": "rollouts",  # what rollouts did: started, step, paused, promoted, rolled_back, aborted
}

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$")


@dataclass(frozen=True)
class RetryPolicy:
    """How an event trigger's subscription redelivers and when it gives up (dead-letters)."""

    ack_deadline_seconds: int = 30
    minimum_backoff_seconds: float = 10.0
    maximum_backoff_seconds: float = 600.0
    max_delivery_attempts: int = 5


@dataclass(frozen=True)
class Trigger:
    """A Pub/Sub topic delivered to a function (Eventarc's role in the cloud, the stack's locally)."""

    function: str
    topic: str
    retry: RetryPolicy
    event_kind: str | None = None


@dataclass(frozen=True)
class BucketTrigger:
    """New objects in ``bucket`` are delivered to ``function`` as ``object.v1.finalized`` CloudEvents."""

    bucket: str
    function: str


@dataclass(frozen=True)
class HttpEndpoint:
    """An HTTP-triggered function: public (it checks a signature itself) or private (invoked with an OIDC
    token, e.g. by the Cloud Scheduler job of ``schedule``, a cron expression)."""

    function: str
    public: bool
    schedule: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class ChannelFilter:
    """Which notifications a channel receives: kind globs, a minimum severity and exact label matches."""

    events: tuple[str, ...] = ("*",)
    min_severity: str = "info"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    name: str
    type: str
    url: str | None
    filter: ChannelFilter
    template: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    smtp: SmtpSettings | None = None
    timeout_seconds: float = 10.0
    #: Standard Webhooks signing (``webhook`` channels): ``whsec_`` + base64 key; never shown in a repr.
    signing_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PipelineConfig:
    source: str
    name: str
    project: str
    region: str
    topic_prefix: str
    ledger_prefix: str
    max_event_age_seconds: float
    idempotency_ttl_seconds: float
    lease_seconds: float
    topics: Mapping[str, str]
    triggers: tuple[Trigger, ...]
    buckets: tuple[BucketTrigger, ...]
    channels: tuple[Channel, ...]
    chain: ChainConfig = field(default_factory=lambda: EMPTY_CHAIN)
    #: The Cloud Run services the rollout serves models on (``shared.rolloutconfig``), and its settings.
    services: tuple[ServiceSpec, ...] = ()
    rollout: RolloutSettings = DEFAULT_ROLLOUT
    #: How far in the future an event's publish time may be (clock skew) before it is refused as expired.
    max_clock_skew_seconds: float = 300.0
    #: The HTTP-triggered functions and who may call them (``spec.http``; the deploy plan reads it).
    http: tuple[HttpEndpoint, ...] = ()

    def topic_for(self, event_kind: str) -> str:
        """The full topic id (prefix applied) for an internal event kind."""
        try:
            return self.topic_prefix + self.topics[event_kind]
        except KeyError:
            raise ConfigError(f"{self.source}: spec.topics: no topic for event kind {event_kind!r}") from None

    def dead_letter_topic_for(self, trigger: Trigger) -> str:
        return f"{self.topic_prefix}dead-letter-{trigger.function}"

    def subscription_for(self, trigger: Trigger) -> str:
        return f"{self.topic_prefix}{trigger.function}--{trigger.topic}"


def _problems() -> Problems:
    """The collector for one configuration file: YAML calls an object a mapping."""
    return Problems(mapping_word="mapping", root="(document)")


def _config_error(source: str) -> Callable[[list[str]], ConfigError]:
    """The ``raise_if_any`` factory: one error naming the file on every line."""

    def build(items: list[str]) -> ConfigError:
        listing = "\n".join(f"  {source}: {item}" for item in items)
        return ConfigError(
            f"{source}: {len(items)} problem(s) in the pipeline configuration:\n{listing}",
            problems=[f"{source}: {item}" for item in items],
        )

    return build


def _interpolate(value: Any, path: str, env: Mapping[str, str], problems: Problems) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the document."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.add(path, f"environment variable {name} is not set (and no ${{{name}:-default}} given)")
            return ""

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {
            key: _interpolate(item, f"{path}.{key}" if path else str(key), env, problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(item, f"{path}[{index}]", env, problems) for index, item in enumerate(value)]
    return value


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``30s``, ``500ms``, ``10m`` or ``1h``."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            number = (
                float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
            )
            if math.isfinite(number):
                return number
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 500ms, 10m, 1h)")


def _duration(reader: Reader, key: str, default: float, minimum: float) -> float:
    """Seconds from a duration field (see :func:`parse_duration`), at least ``minimum``."""
    seconds = reader.convert(key, parse_duration, default)
    if seconds < minimum:
        reader.add(key, f"must be at least {minimum:g}")
    return seconds


def _set_path(document: dict[str, Any], dotted: str, value: str) -> None:
    node = document
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _retry(reader: Reader, defaults: RetryPolicy) -> RetryPolicy:
    reader.unknown({"ackDeadline", "minimumBackoff", "maximumBackoff", "maxDeliveryAttempts"})
    policy = RetryPolicy(
        ack_deadline_seconds=int(_duration(reader, "ackDeadline", defaults.ack_deadline_seconds, minimum=10)),
        minimum_backoff_seconds=_duration(
            reader, "minimumBackoff", defaults.minimum_backoff_seconds, minimum=0
        ),
        maximum_backoff_seconds=_duration(
            reader, "maximumBackoff", defaults.maximum_backoff_seconds, minimum=0
        ),
        max_delivery_attempts=reader.integer(
            "maxDeliveryAttempts", defaults.max_delivery_attempts, minimum=5, maximum=100
        ),
    )
    if policy.ack_deadline_seconds > 600:
        reader.problems.add(reader.at("ackDeadline"), "must be at most 600s")
    if policy.maximum_backoff_seconds > 600:
        reader.problems.add(reader.at("maximumBackoff"), "must be at most 600s (a Pub/Sub limit)")
    if policy.minimum_backoff_seconds > policy.maximum_backoff_seconds:
        reader.problems.add(reader.at("minimumBackoff"), "must not exceed maximumBackoff")
    return policy


#: Standard Webhooks' symmetric secrets: this prefix, then the base64 of a 24 to 64 byte random key.
SIGNING_SECRET_PREFIX = "whsec_"
SIGNING_KEY_BYTES = (24, 64)
#: The headers a signed webhook carries (https://www.standardwebhooks.com/): set by the transport only.
SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})


def _signing_secret(reader: Reader, channel_type: str, headers: Mapping[str, str]) -> str | None:
    """A webhook channel's ``signingSecret``, checked; problems never quote the secret itself."""
    secret = reader.string("signingSecret")  # "" (e.g. ${VAR:-} with VAR unset) counts as absent
    if secret is None:
        return None
    if channel_type != "webhook":
        reader.add("signingSecret", "only a webhook channel signs what it sends (Standard Webhooks)")
        return None
    generate = "python -c \"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
    if not secret.startswith(SIGNING_SECRET_PREFIX):
        reader.add(
            "signingSecret", f"must be a Standard Webhooks secret, whsec_ then base64 (make one: {generate})"
        )
        return None
    try:
        key = base64.b64decode(secret[len(SIGNING_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        reader.add("signingSecret", f"whsec_ must be followed by base64 (make one: {generate})")
        return None
    low, high = SIGNING_KEY_BYTES
    if not low <= len(key) <= high:
        reader.add(
            "signingSecret", f"the key must be {low} to {high} bytes, got {len(key)} (make one: {generate})"
        )
        return None
    clashes = sorted(name for name in headers if name.lower() in SIGNATURE_HEADERS)
    if clashes:
        reader.add("headers", f"{', '.join(clashes)}: set by signingSecret, not by hand")
    return secret


def _channel(reader: Reader, names: set[str]) -> Channel | None:
    reader.unknown(
        {
            "name",
            "type",
            "url",
            "events",
            "minSeverity",
            "labels",
            "template",
            "headers",
            "smtp",
            "timeout",
            "signingSecret",
        }
    )
    name = reader.string("name", required=True) or ""
    if name and not _NAME.match(name):
        reader.problems.add(reader.at("name"), f"{name!r} is not a valid name (lowercase, digits, - and _)")
    if name in names:
        reader.problems.add(reader.at("name"), f"duplicate channel name {name!r}")
    names.add(name)
    channel_type = reader.string("type", required=True) or ""
    if channel_type and channel_type not in CHANNEL_TYPES:
        reader.problems.add(reader.at("type"), f"{channel_type!r} is not one of {', '.join(CHANNEL_TYPES)}")
    url = reader.string("url")
    smtp: SmtpSettings | None = None
    if channel_type == "email":
        smtp_reader = reader.child("smtp")
        if "smtp" not in reader.data:
            reader.problems.add(reader.at("smtp"), "required for an email channel")
        else:
            smtp_reader.unknown({"host", "port", "from", "to", "starttls", "username", "passwordEnv"})
            smtp = SmtpSettings(
                host=smtp_reader.string("host", required=True) or "",
                port=smtp_reader.integer("port", 25, minimum=1, maximum=65535),
                sender=smtp_reader.string("from", required=True) or "",
                recipients=smtp_reader.string_list("to", ()),
                starttls=smtp_reader.boolean("starttls", False),
                username=smtp_reader.string("username"),
                password_env=smtp_reader.string("passwordEnv"),
            )
            if not smtp.recipients:
                reader.problems.add(smtp_reader.at("to"), "required: at least one recipient")
    elif channel_type:
        if not url:
            reader.problems.add(reader.at("url"), "required")
        elif not url.startswith(("http://", "https://")):
            reader.problems.add(reader.at("url"), f"must be an http(s) URL, got {url!r}")
    severity = reader.string("minSeverity", "info") or "info"
    if severity not in SEVERITIES:
        reader.problems.add(reader.at("minSeverity"), f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    template = reader.string("template")
    if template is not None:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        try:
            SandboxedEnvironment().parse(template)
        except TemplateSyntaxError as error:
            reader.problems.add(reader.at("template"), f"template syntax error line {error.lineno}: {error}")
    headers = reader.string_map("headers")
    return Channel(
        name=name,
        type=channel_type,
        url=url,
        filter=ChannelFilter(
            events=reader.string_list("events", ("*",)),
            min_severity=severity,
            labels=reader.string_map("labels"),
        ),
        template=template,
        headers=headers,
        smtp=smtp,
        timeout_seconds=_duration(reader, "timeout", 10.0, minimum=0.1),
        signing_secret=_signing_secret(reader, channel_type, headers),
    )


def parse_config(document: Any, source: str, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Validate a parsed YAML document; raise :class:`ConfigError` listing every problem."""
    env = os.environ if env is None else env
    problems = _problems()
    if not isinstance(document, dict):
        problems.add("(document)", "must be a mapping with apiVersion, kind and spec")
        problems.raise_if_any(_config_error(source))
    document = _interpolate(document, "", env, problems)
    spec_document = document.get("spec")
    if isinstance(spec_document, dict):
        for variable, dotted in ENV_OVERRIDES.items():
            if env.get(variable):
                _set_path(spec_document, dotted, env[variable])

    root = problems.reader(document)
    root.unknown({"apiVersion", "kind", "metadata", "spec"})
    api_version = root.string("apiVersion", required=True)
    if api_version and api_version != API_VERSION:
        problems.add("apiVersion", f"unsupported {api_version!r}; this release reads {API_VERSION!r}")
    kind = root.string("kind", required=True)
    if kind and kind != KIND:
        problems.add("kind", f"must be {KIND!r}, got {kind!r}")
    name = root.child("metadata").string("name", "pipeline") or "pipeline"

    spec = root.child("spec")
    spec.unknown(
        {
            "project",
            "region",
            "topicPrefix",
            "ledger",
            "events",
            "eventing",
            "topics",
            "triggers",
            "buckets",
            "notifications",
            "push",
            "artifacts",
            "datasets",
            "models",
            "services",
            "rollout",
            "http",
        }
    )
    project = spec.string("project", required=True) or ""
    region = spec.string("region", "us-central1") or "us-central1"
    topic_prefix = spec.string("topicPrefix", "") or ""
    ledger = spec.child("ledger")
    ledger.unknown({"collectionPrefix", "idempotencyTtl", "lease"})
    ledger_prefix = ledger.string("collectionPrefix", "") or ""
    idempotency_ttl = _duration(ledger, "idempotencyTtl", 7 * 24 * 3600.0, minimum=1)
    lease = _duration(ledger, "lease", 300.0, minimum=1)
    events = spec.child("events")
    events.unknown({"maxAge", "maxClockSkew"})
    max_age = _duration(events, "maxAge", 24 * 3600.0, minimum=1)
    max_clock_skew = _duration(events, "maxClockSkew", 300.0, minimum=0)

    default_retry = _retry(spec.child("eventing"), RetryPolicy())

    topics = dict(DEFAULT_TOPICS)
    for kind_name, topic in spec.string_map("topics").items():
        topics[kind_name] = topic
    for kind_name, topic in topics.items():
        if not _TOPIC_NAME.match(topic_prefix + topic):
            problems.add(
                f"spec.topics.{kind_name}", f"{topic_prefix + topic!r} is not a valid Pub/Sub topic id"
            )

    triggers: list[Trigger] = []
    for item in spec.items("triggers"):
        item.unknown({"function", "event", "topic", "retry"})
        function = item.string("function", required=True) or ""
        event_kind = item.string("event")
        literal_topic = item.string("topic")
        if (event_kind is None) == (literal_topic is None):
            problems.add(item.path, "give exactly one of `event` (an internal event kind) or `topic`")
            continue
        if event_kind is not None:
            if event_kind not in topics:
                problems.add(
                    item.at("event"), f"unknown event kind {event_kind!r} (known: {', '.join(topics)})"
                )
                continue
            topic_id = topic_prefix + topics[event_kind]
        else:
            topic_id = literal_topic or ""
            if not _TOPIC_NAME.match(topic_id):
                problems.add(item.at("topic"), f"{topic_id!r} is not a valid Pub/Sub topic id")
        retry = _retry(item.child("retry"), default_retry) if "retry" in item.data else default_retry
        triggers.append(Trigger(function=function, topic=topic_id, retry=retry, event_kind=event_kind))

    buckets: list[BucketTrigger] = []
    for item in spec.items("buckets"):
        item.unknown({"name", "function"})
        buckets.append(
            BucketTrigger(
                bucket=item.string("name", required=True) or "",
                function=item.string("function", required=True) or "",
            )
        )

    http: list[HttpEndpoint] = []
    for item in spec.items("http"):
        item.unknown({"function", "access", "schedule"})
        access = item.string("access", required=True) or ""
        if access and access not in ("public", "private"):
            item.add("access", f"{access!r} is not one of public, private")
        schedule = item.string("schedule")
        if schedule is not None and access == "public":
            item.add("schedule", "only a private function is called by a schedule (with an OIDC token)")
        http.append(HttpEndpoint(item.string("function", required=True) or "", access == "public", schedule))

    notifications = spec.child("notifications")
    notifications.unknown({"channels"})
    names: set[str] = set()
    channels = [channel for item in notifications.items("channels") if (channel := _channel(item, names))]

    chain = parse_chain(spec, source, _duration, project, region)
    services, rollout = parse_rollout(spec, _duration, [model.name for model in chain.models])

    problems.raise_if_any(_config_error(source))
    return PipelineConfig(
        source=source,
        name=name,
        project=project,
        region=region,
        topic_prefix=topic_prefix,
        ledger_prefix=ledger_prefix,
        max_event_age_seconds=max_age,
        idempotency_ttl_seconds=idempotency_ttl,
        lease_seconds=lease,
        topics=topics,
        triggers=tuple(triggers),
        buckets=tuple(buckets),
        channels=tuple(channels),
        max_clock_skew_seconds=max_clock_skew,
        chain=chain,
        services=services,
        rollout=rollout,
        http=tuple(http),
    )


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Read and validate the configuration file (``PIPELINE_CONFIG``, default ``pipeline.yaml``)."""
    env = os.environ if env is None else env
    file_path = Path(path if path is not None else env.get("PIPELINE_CONFIG", DEFAULT_PATH))
    source = str(file_path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: configuration file not found (set PIPELINE_CONFIG to its path)",
            problems=[f"{source}: not found"],
        ) from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read configuration: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{where}: invalid YAML: {error}") from error
    return parse_config(document, source, env)


_cached: PipelineConfig | None = None
_lock = threading.Lock()


def get_config() -> PipelineConfig:
    """The process-wide configuration, loaded and validated once (at cold start)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_config()
        return _cached


def reset_config_cache() -> None:
    global _cached
    with _lock:
        _cached = None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m shared.config", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a configuration file")
    check.add_argument(
        "file", nargs="?", default=None, help="path (default: $PIPELINE_CONFIG or pipeline.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.file)
        from shared.deploy.wiring import check_wiring  # reads main.py's source; only this command needs it

        check_wiring(config, Path(__file__).resolve().parent.parent)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(
        f"{config.source}: OK — pipeline {config.name!r}, project {config.project!r}, "
        f"{len(config.triggers)} trigger(s), {len(config.buckets)} bucket trigger(s), "
        f"{len(config.http)} HTTP function(s), "
        f"{len(config.channels)} notification channel(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
