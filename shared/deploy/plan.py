"""Everything a Google Cloud project needs, derived from the configuration and the source tree.

Sources of truth: the configuration (topics, triggers, buckets, ``spec.http``, datasets, models, channels,
``spec.eventing``), ``main.py``'s ``__all__`` and each entry point's code path
(:mod:`shared.deploy.discover`: its kind, ports, emitted events, environment variables). Nothing here lists
functions by hand; a function added to ``main.py`` and wired in the config is planned like the others.

Naming: every resource we create carries ``spec.topicPrefix`` (``mlops-``): service accounts
``PREFIX + function`` (``_`` -> ``-``, at most 30 characters), secrets ``PREFIX + variable`` in lowercase,
Eventarc triggers ``PREFIX + function``, dead-letter topics and their hold subscriptions as the config names
them (``dead_letter_topic_for``). Why each role is granted: docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.config import PipelineConfig, RetryPolicy
from shared.deploy.discover import EntryPoint
from shared.deploy.model import FunctionPlan, Lookup, Plan, Step, gcloud
from shared.deploy.resources import APIS, LEDGER_INDEXES, Resources, account_id

__all__ = ["APIS", "LEDGER_INDEXES", "account_id", "build_plan", "service_name"]

RUNTIME = "python311"
#: The roles each port of :mod:`shared.ports` needs on the project (docs/deploy.md says why).
PORT_ROLES: Mapping[str, tuple[str, ...]] = {
    "builds": ("roles/cloudbuild.builds.editor",),
    "training": ("roles/aiplatform.user",),
    "registry": ("roles/aiplatform.user",),
    "deployments": ("roles/run.developer",),
    "metrics": ("roles/monitoring.viewer",),
}
#: Variables the code reads that must never be set in a project: the local stack's stand-in for Google
#: Chat's ID token (``shared.approval.chat``: "never set it in production").
LOCAL_ONLY_VARIABLES = frozenset({"CHAT_VERIFICATION_TOKEN"})
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|_URL)$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
SOURCE_LABEL = "mlops-source"
SOURCE_PATHS = ("main.py", "functions", "shared", "requirements.txt", "pipeline.yaml", "schemas")


def service_name(function: str) -> str:
    """The Cloud Run service of a 2nd gen function: Cloud Functions lowercases and turns ``_`` into ``-``."""
    return function.lower().replace("_", "-")


def source_digest(root: Path) -> str:
    """A digest of what ``--source=.`` uploads that matters: a change redeploys, no change plans none."""
    digest = hashlib.sha256()
    for top in SOURCE_PATHS:
        path = root / top
        files = (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob("*") if p.is_file())
            if path.exists()
            else []
        )
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def config_variables(source: str) -> dict[str, list[str]]:
    """``${VAR}`` references of the raw configuration: variable -> the top-level spec sections using it."""
    try:
        document = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[str, list[str]] = {}

    def walk(value: Any, section: str) -> None:
        if isinstance(value, str):
            for match in _ENV_REF.finditer(value):
                found.setdefault(match.group(1), [])
                if section not in found[match.group(1)]:
                    found[match.group(1)].append(section)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, section or str(key))
        elif isinstance(value, list):
            for item in value:
                walk(item, section)

    spec = document.get("spec") if isinstance(document, dict) else None
    if isinstance(spec, dict):
        for key, value in spec.items():
            walk(value, str(key))
    return found


class _Builder(Resources):
    """Adds each exported function: identity, roles, secrets, deployment, trigger or schedule."""

    # -- functions -------------------------------------------------------------------------------------------

    def secrets_of(self, entry: EntryPoint, variables: dict[str, list[str]]) -> list[tuple[str, str]]:
        wanted: list[str] = []
        for variable in sorted(entry.variables - LOCAL_ONLY_VARIABLES):
            if not _SECRET_NAME.search(variable) or variable.endswith("_URL"):
                continue
            generated = "WEBHOOK" in variable
            if generated or self.env.get(variable):
                wanted.append(variable)
            else:
                self.notes.append(
                    f"{variable} ({entry.name}) is not set: not mounted; set it and re-run to enable it"
                )
        if entry.notifies:  # the channels' URLs and signing secrets are read by the function that delivers
            for variable, sections in sorted(variables.items()):
                if "notifications" not in sections:
                    continue
                if self.env.get(variable):
                    wanted.append(variable)
                else:
                    self.notes.append(f"{variable} ({entry.name}) is not set: the config's default applies")
        for channel in self.config.channels:
            if entry.notifies and channel.smtp is not None and channel.smtp.password_env:
                wanted.append(channel.smtp.password_env)
        return [(variable, self.secret(variable, [entry.name])) for variable in dict.fromkeys(wanted)]

    def function(self, entry: EntryPoint, variables: dict[str, list[str]], digest: str) -> FunctionPlan:
        config = self.config
        email = self.account(entry.name, f"function {entry.name}")
        member = f"serviceAccount:{email}"
        roles: list[str] = []

        def project_role(role: str, why: str) -> None:
            self.grant("project", self.project, member, role, why)
            roles.append(role)

        project_role("roles/datastore.user", "the run ledger (Firestore)")
        for port in sorted(entry.ports):
            for role in PORT_ROLES.get(port, ()):
                if role not in roles:
                    project_role(role, f"the {port} port")
        if "training" in entry.ports:
            trainer = self.sa("trainer")
            self.grant(
                "account",
                trainer,
                member,
                "roles/iam.serviceAccountUser",
                "submit jobs that run as the trainer",
            )
            roles.append(f"roles/iam.serviceAccountUser on {trainer}")
        if "deployments" in entry.ports:
            serving = self.sa("serving")
            self.grant(
                "account",
                serving,
                member,
                "roles/iam.serviceAccountUser",
                "deploy revisions that run as the serving identity",
            )
            roles.append(f"roles/iam.serviceAccountUser on {serving}")
        for kind in sorted(entry.emits):
            if kind in config.topics:
                topic = config.topic_for(kind)
                self.grant("topic", topic, member, "roles/pubsub.publisher", f"emits {kind}")
                roles.append(f"roles/pubsub.publisher on {topic}")
        if "objects" in entry.ports:
            own = [bucket.bucket for bucket in config.buckets if bucket.function == entry.name]
            for bucket in own:  # it moves invalid objects to quarantine/ in the same bucket
                self.grant(
                    "bucket",
                    bucket,
                    member,
                    "roles/storage.objectAdmin",
                    "reads new objects, quarantines invalid ones",
                )
                roles.append(f"roles/storage.objectAdmin on {bucket}")
            readable = [d.bucket for d in config.chain.datasets] + [config.chain.artifacts_bucket]
            for bucket in dict.fromkeys(b for b in readable if b and b not in own):
                self.grant(
                    "bucket",
                    bucket,
                    member,
                    "roles/storage.objectViewer",
                    "reads data objects and model artifacts",
                )
                roles.append(f"roles/storage.objectViewer on {bucket}")
        secrets = self.secrets_of(entry, variables)
        for variable, name in secrets:
            self.grant("secret", name, member, "roles/secretmanager.secretAccessor", f"mounted as {variable}")
        env = {
            "PIPELINE_CONFIG": "pipeline.yaml",
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PIPELINE_REGION": self.region,
        }
        for variable in sorted(entry.variables):
            if variable.endswith("_AUDIENCE"):
                env[variable] = self.url(entry.name)  # the ID tokens it verifies are minted for its own URL

        endpoint = next((e for e in config.http if e.function == entry.name), None)
        public = entry.kind == "http" and endpoint is not None and endpoint.public
        timeout = _timeout(config, entry)
        deploy = gcloud(
            "functions",
            "deploy",
            entry.name,
            "--gen2",
            f"--runtime={RUNTIME}",
            f"--region={self.region}",
            "--source=.",
            f"--entry-point={entry.name}",
            "--trigger-http",
            "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
            f"--service-account={email}",
            f"--timeout={timeout}s",
            "--set-env-vars=" + ",".join(f"{key}={value}" for key, value in env.items()),
            *(["--set-secrets=" + ",".join(f"{v}={n}:latest" for v, n in secrets)] if secrets else []),
            f"--update-labels={SOURCE_LABEL}={digest}",
        )
        self.add(
            Step(
                "function",
                entry.name,
                gcloud("functions", "describe", entry.name, f"--region={self.region}", "--format=json"),
                deploy,
                deploy,
                desired={"labels": {SOURCE_LABEL: digest}, "serviceConfig": {"serviceAccountEmail": email}},
                why=f"{entry.kind} entry point of main.py",
            )
        )
        trigger, dead_letter = self.trigger(entry, endpoint)
        return FunctionPlan(
            name=entry.name,
            kind=entry.kind,
            trigger=trigger,
            identity=email,
            roles=tuple(roles),
            secrets=tuple(f"{variable}={name}" for variable, name in secrets),
            dead_letter=dead_letter,
            url=self.url(entry.name),
        )

    def invoker(self, function: str, member: str, why: str) -> None:
        service = service_name(function)
        self.add(
            Step(
                "grant",
                f"roles/run.invoker to {member} on function {function}",
                gcloud(
                    "run", "services", "get-iam-policy", service, f"--region={self.region}", "--format=json"
                ),
                gcloud(
                    "functions",
                    "add-invoker-policy-binding",
                    function,
                    f"--region={self.region}",
                    f"--member={member}",
                ),
                desired={"bindings": [{"role": "roles/run.invoker", "members": [member]}]},
                why=why,
            )
        )

    def trigger(self, entry: EntryPoint, endpoint: Any) -> tuple[str, str]:
        config = self.config
        if entry.kind == "http":
            if endpoint is None or endpoint.public:
                return "HTTP, public (checks its signature)", "-"
            text = "HTTP, private"
            if endpoint.schedule:
                scheduler = self.sa("scheduler")
                self.invoker(entry.name, f"serviceAccount:{scheduler}", "the scheduler's OIDC token")
                name = f"{self.prefix}{service_name(entry.name)}"
                flags = (
                    f"--location={self.region}",
                    f"--schedule={endpoint.schedule}",
                    f"--uri={self.url(entry.name)}",
                    "--http-method=POST",
                    f"--oidc-service-account-email={scheduler}",
                    f"--oidc-token-audience={self.url(entry.name)}",
                    "--attempt-deadline=180s",
                )
                self.add(
                    Step(
                        "scheduler",
                        name,
                        gcloud(
                            "scheduler",
                            "jobs",
                            "describe",
                            name,
                            f"--location={self.region}",
                            "--format=json",
                        ),
                        gcloud("scheduler", "jobs", "create", "http", name, *flags),
                        gcloud("scheduler", "jobs", "update", "http", name, *flags),
                        desired={
                            "schedule": endpoint.schedule,
                            "httpTarget": {
                                "uri": self.url(entry.name),
                                "oidcToken": {"serviceAccountEmail": scheduler},
                            },
                        },
                        why=f"calls {entry.name} ({endpoint.schedule})",
                    )
                )
                text += f", Cloud Scheduler {endpoint.schedule!r} with OIDC"
            return text, "-"
        receiver = self.sa("eventarc")
        self.invoker(
            entry.name, f"serviceAccount:{receiver}", "Eventarc delivers with the trigger's identity"
        )
        if entry.kind == "pubsub":
            wired = [t for t in config.triggers if t.function == entry.name]
            filters: list[tuple[str, ...]] = [
                ("type=google.cloud.pubsub.topic.v1.messagePublished",) for _ in wired
            ]
            transports: list[str | None] = [self.topic_path(t.topic) for t in wired]
            retries = [t.retry for t in wired]
            text = "Pub/Sub " + ", ".join(t.topic for t in wired)
        else:
            wired_buckets = [b for b in config.buckets if b.function == entry.name]
            filters = [
                ("type=google.cloud.storage.object.v1.finalized", f"bucket={b.bucket}") for b in wired_buckets
            ]
            transports = [None for _ in wired_buckets]
            retries = [_default_retry(config) for _ in wired_buckets]
            text = "storage finalized in " + ", ".join(b.bucket for b in wired_buckets)
        dead = f"{self.prefix}dead-letter-{entry.name}"
        self.dead_letter(dead)
        for index, (event_filters, transport, retry) in enumerate(
            zip(filters, transports, retries, strict=True)
        ):
            name = f"{self.prefix}{service_name(entry.name)}" + (f"-{index + 1}" if index else "")
            common = (
                f"--location={self.region}",
                f"--destination-run-service={service_name(entry.name)}",
                f"--destination-run-region={self.region}",
                f"--service-account={receiver}",
            )
            self.add(
                Step(
                    "trigger",
                    name,
                    gcloud(
                        "eventarc", "triggers", "describe", name, f"--location={self.region}", "--format=json"
                    ),
                    gcloud(
                        "eventarc",
                        "triggers",
                        "create",
                        name,
                        *common,
                        *(f"--event-filters={f}" for f in event_filters),
                        *([f"--transport-topic={transport}"] if transport else []),
                    ),
                    gcloud("eventarc", "triggers", "update", name, *common),
                    desired={
                        "serviceAccount": receiver,
                        "destination": {"cloudRun": {"service": service_name(entry.name)}},
                    },
                    why=f"delivers to {entry.name}",
                )
            )
            subscription = Lookup(
                (
                    "gcloud",
                    "eventarc",
                    "triggers",
                    "describe",
                    name,
                    f"--location={self.region}",
                    "--format=value(transport.pubsub.subscription)",
                )
            )
            policy = gcloud(
                "pubsub",
                "subscriptions",
                "update",
                subscription,
                f"--ack-deadline={retry.ack_deadline_seconds}",
                f"--min-retry-delay={_seconds(retry.minimum_backoff_seconds)}",
                f"--max-retry-delay={_seconds(retry.maximum_backoff_seconds)}",
                f"--dead-letter-topic={dead}",
                f"--max-delivery-attempts={retry.max_delivery_attempts}",
            )
            self.add(
                Step(
                    "retry-policy",
                    name,
                    gcloud("pubsub", "subscriptions", "describe", subscription, "--format=json"),
                    policy,
                    policy,
                    desired={
                        "ackDeadlineSeconds": retry.ack_deadline_seconds,
                        "deadLetterPolicy": {
                            "deadLetterTopic": self.topic_path(dead),
                            "maxDeliveryAttempts": retry.max_delivery_attempts,
                        },
                        "retryPolicy": {
                            "minimumBackoff": _seconds(retry.minimum_backoff_seconds),
                            "maximumBackoff": _seconds(retry.maximum_backoff_seconds),
                        },
                    },
                    why="spec.eventing: ack deadline, backoff, dead-letter after the last attempt",
                )
            )
            self.grant(
                "subscription",
                subscription,
                self.agent("gcp-sa-pubsub"),
                "roles/pubsub.subscriber",
                "the Pub/Sub service agent forwards undeliverable messages",
            )
        retry = retries[0] if retries else _default_retry(config)
        return text, f"{dead} after {retry.max_delivery_attempts} attempts"

    def build(self) -> Plan:
        config = self.config
        digest = source_digest(self.root)
        variables = config_variables(config.source)
        self.apis()
        self.registry()
        self.database()
        for topic in dict.fromkeys(
            [config.topic_prefix + t for t in config.topics.values()] + [t.topic for t in config.triggers]
        ):
            self.topic(
                topic,
                "an event kind of spec.topics"
                if topic.startswith(config.topic_prefix)
                else "a trigger's topic",
            )
        for bucket in dict.fromkeys(
            [b.bucket for b in config.buckets] + [d.bucket for d in config.chain.datasets]
        ):
            self.bucket(bucket, "new data objects")
        if config.chain.artifacts_bucket:
            self.bucket(config.chain.artifacts_bucket, "model artifacts (gs://BUCKET/runs/RUN_ID/)")
        trainer = self.account("trainer", "Vertex AI training jobs")
        serving = self.account("serving", "Cloud Run revisions serving models")
        if config.services:  # the serving image writes the shadow comparison's counts (examples/server)
            self.grant(
                "project",
                self.project,
                f"serviceAccount:{serving}",
                "roles/monitoring.metricWriter",
                "the server's shadow comparison counts (custom metric)",
            )
        for bucket in [d.bucket for d in config.chain.datasets]:
            self.grant(
                "bucket",
                bucket,
                f"serviceAccount:{trainer}",
                "roles/storage.objectViewer",
                "training reads the data",
            )
        if config.chain.artifacts_bucket:
            self.grant(
                "bucket",
                config.chain.artifacts_bucket,
                f"serviceAccount:{trainer}",
                "roles/storage.objectAdmin",
                "training writes the model and its metrics",
            )
            self.grant(
                "bucket",
                config.chain.artifacts_bucket,
                f"serviceAccount:{serving}",
                "roles/storage.objectViewer",
                "the server loads MODEL_URI",
            )
        for model in config.chain.models:
            if model.trainer.service_account and model.trainer.service_account != trainer:
                self.notes.append(
                    f"model {model.name}: jobs run as {model.trainer.service_account} (not planned here)"
                )
            elif not model.trainer.service_account:
                self.notes.append(
                    f"model {model.name}: set trainer.serviceAccount: {trainer} (empty: Vertex AI's default)"
                )
        if any(e.kind != "http" for e in self.entries):
            receiver = self.account("eventarc", "Eventarc triggers (delivery)")
            self.grant(
                "project",
                self.project,
                f"serviceAccount:{receiver}",
                "roles/eventarc.eventReceiver",
                "receives the events it delivers",
            )
        if any(e.schedule for e in config.http):
            self.account("scheduler", "Cloud Scheduler (OIDC token for private functions)")
        if config.buckets:
            self.grant(
                "project",
                self.project,
                self.agent("gs-project-accounts"),
                "roles/pubsub.publisher",
                "Cloud Storage publishes the object events Eventarc delivers",
            )
        self.drift_channel()
        functions = [self.function(entry, variables, digest) for entry in self.entries]
        webhooks = tuple(
            (self.url(f.name), secret.split("=", 1)[1])
            for f in functions
            for secret in f.secrets
            if "WEBHOOK" in secret
        )
        return Plan(
            self.project,
            self.region,
            config.source,
            tuple(functions),
            tuple(self.steps),
            tuple(dict.fromkeys(self.notes)),
            webhooks,
        )


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{value}s"


def _default_retry(config: PipelineConfig) -> RetryPolicy:
    return config.triggers[0].retry if config.triggers else RetryPolicy()


def _timeout(config: PipelineConfig, entry: EntryPoint) -> int:
    """Pub/Sub and storage functions: the ack deadline (each invocation keeps inside it); HTTP: 60 s,
    inside what a webhook sender or Scheduler waits."""
    deadlines = [t.retry.ack_deadline_seconds for t in config.triggers if t.function == entry.name]
    return (
        min(deadlines)
        if deadlines
        else (_default_retry(config).ack_deadline_seconds if entry.kind == "storage" else 60)
    )


def build_plan(
    config: PipelineConfig, entries: Iterable[EntryPoint], root: Path, env: Mapping[str, str] | None = None
) -> Plan:
    """The plan for ``config`` and the entry points of the tree at ``root`` (``env``: the deployer's shell,
    which says which optional secrets have values)."""
    return _Builder(config, tuple(entries), root, env or {}).build()
