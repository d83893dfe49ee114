"""The project-wide resources of a deploy plan: APIs, the registry, the ledger's database, indexes and TTL,
topics, buckets, identities, secrets, dead-letter topics and the drift alerts' notification channel.

Every grant is one :class:`~shared.deploy.model.Step` (``get-iam-policy``, then ``add-iam-policy-binding``);
a grant two functions need is planned once. Why each exists: docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from shared.config import PipelineConfig
from shared.deploy.discover import EntryPoint
from shared.deploy.model import Lookup, Secret, Step, gcloud

#: The APIs the deployed pipeline calls or is built on.
APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "aiplatform.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
)
# The composite indexes the ledger's queries need (shared/ledger/firestore.py): list_runs(status=...) and
# the data batcher's members query (shared/chain/data.py: dataset ==, batched ==, order by seen_at).
# Equality-only queries (batches, windows) are served by Firestore's automatic single-field indexes.
LEDGER_INDEXES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("runs", (("status", "ascending"), ("started_at", "descending"))),
    (
        "members",
        (("fields.dataset", "ascending"), ("fields.batched", "ascending"), ("fields.seen_at", "ascending")),
    ),
)
TTL_FIELD = "expires_at"
#: Collections whose documents expire (a Timestamp ``expires_at``): the idempotency records
#: (spec.ledger.idempotencyTtl) and Slack's replay records (shared.approval.slack.SEEN, kept 2x its window).
TTL_COLLECTIONS = (
    ("idempotency", "idempotency records are deleted after they expire (spec.ledger.idempotencyTtl)"),
    ("slack-requests", "Slack replay records are deleted once no replay could pass the signature window"),
)


def account_id(prefix: str, name: str) -> str:
    """A service account id (6 to 30 characters, lowercase, digits, ``-``), stable for a name."""
    base = re.sub(r"[^a-z0-9-]", "-", f"{prefix}{name}".lower()).strip("-")
    if len(base) <= 30:
        return base.ljust(6, "0")
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    return f"{base[:23].rstrip('-')}-{digest}"


class Resources:
    """The project-wide parts of a plan (APIs, ledger, topics, buckets, identities, secrets), and the
    helpers every part uses; :class:`shared.deploy.plan._Builder` adds the functions."""

    def __init__(
        self, config: PipelineConfig, entries: tuple[EntryPoint, ...], root: Path, env: Mapping[str, str]
    ):
        self.config, self.entries, self.root, self.env = config, entries, root, env
        self.project, self.region, self.prefix = config.project, config.region, config.topic_prefix
        self.steps: list[Step] = []
        self.notes: list[str] = []
        self.keys: set[str] = set()
        self.number = Lookup(
            ("gcloud", "projects", "describe", self.project, "--format=value(projectNumber)")
        )

    # -- helpers -------------------------------------------------------------------------------------------

    def add(self, step: Step) -> None:
        if step.key not in self.keys:  # a grant wanted by two functions is one step
            self.keys.add(step.key)
            self.steps.append(step)

    def sa(self, name: str) -> str:
        return f"{account_id(self.prefix, name)}@{self.project}.iam.gserviceaccount.com"

    def agent(self, domain: str) -> Lookup:
        return Lookup(self.number.argv, f"serviceAccount:service-{{}}@{domain}.iam.gserviceaccount.com")

    def url(self, function: str) -> str:
        return f"https://{self.region}-{self.project}.cloudfunctions.net/{function}"

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def grant(self, kind: str, resource: str | Lookup, member: str | Lookup, role: str, why: str) -> None:
        """One IAM binding on a resource (project, topic, subscription, bucket, secret or account)."""
        groups = {
            "project": ("projects",),
            "topic": ("pubsub", "topics"),
            "subscription": ("pubsub", "subscriptions"),
            "bucket": ("storage", "buckets"),
            "secret": ("secrets",),
            "account": ("iam", "service-accounts"),
        }[kind]
        target: str | Lookup = (
            f"gs://{resource}" if kind == "bucket" and isinstance(resource, str) else resource
        )
        member_text = member.template.format("NUMBER") if isinstance(member, Lookup) else member
        resource_text = resource.render() if isinstance(resource, Lookup) else resource
        member_arg: str | Lookup = (
            f"--member={member}"
            if isinstance(member, str)
            else Lookup(member.argv, "--member=" + member.template)
        )
        extra = ("--condition=None",) if kind == "project" else ()  # no prompt when conditions exist
        binding = gcloud(*groups, "add-iam-policy-binding", target, member_arg, f"--role={role}", *extra)
        self.add(
            Step(
                "grant",
                f"{role} to {member_text} on {kind} {resource_text}",
                gcloud(*groups, "get-iam-policy", target, "--format=json"),
                binding,
                binding,  # the policy exists without this binding: add it
                desired={"bindings": [{"role": role, "members": [member]}]},  # a Lookup is read at apply time
                why=why,
            )
        )

    # -- the parts -------------------------------------------------------------------------------------------

    def apis(self) -> None:
        self.add(
            Step(
                "api",
                f"{len(APIS)} APIs",
                gcloud("services", "list", "--enabled", "--format=json"),
                gcloud("services", "enable", *APIS),
                desired=[{"config": {"name": api}} for api in APIS],
                why="the services the pipeline calls and is built on",
            )
        )

    def registry(self) -> None:
        parts = self.config.chain.image_repository.split("/")
        if len(parts) < 3 or not parts[0].endswith("-docker.pkg.dev"):
            self.notes.append(
                f"spec.artifacts.imageRepository {self.config.chain.image_repository!r} is not an "
                "Artifact Registry path (REGION-docker.pkg.dev/PROJECT/REPO): not created"
            )
            return
        location, repository = parts[0].removesuffix("-docker.pkg.dev"), parts[2]
        self.add(
            Step(
                "repository",
                repository,
                gcloud(
                    "artifacts",
                    "repositories",
                    "describe",
                    repository,
                    f"--location={location}",
                    "--format=json",
                ),
                gcloud(
                    "artifacts",
                    "repositories",
                    "create",
                    repository,
                    "--repository-format=docker",
                    f"--location={location}",
                    "--description=images built by the pipeline",
                ),
                why="the trainer and server images our builds push",
            )
        )

    def account(self, name: str, what: str) -> str:
        email = self.sa(name)
        self.add(
            Step(
                "identity",
                email,
                gcloud("iam", "service-accounts", "describe", email, "--format=json"),
                gcloud("iam", "service-accounts", "create", email.split("@")[0], f"--display-name={what}"),
                why=what,
            )
        )
        return email

    def database(self) -> None:
        self.add(
            Step(
                "database",
                "(default)",
                gcloud("firestore", "databases", "describe", "--database=(default)", "--format=json"),
                gcloud(
                    "firestore", "databases", "create", f"--location={self.region}", "--type=firestore-native"
                ),
                why="the run ledger",
            )
        )
        prefix = self.config.ledger_prefix
        for collection, fields in LEDGER_INDEXES:
            group = f"{prefix}{collection}"
            self.add(
                Step(
                    "index",
                    f"{group}({', '.join(f'{name} {order}' for name, order in fields)})",
                    gcloud(
                        "firestore",
                        "indexes",
                        "composite",
                        "list",
                        f"--filter=name:/collectionGroups/{group}/",
                        "--format=json",
                    ),
                    gcloud(
                        "firestore",
                        "indexes",
                        "composite",
                        "create",
                        f"--collection-group={group}",
                        "--query-scope=COLLECTION",
                        *(f"--field-config=field-path={name},order={order}" for name, order in fields),
                    ),
                    desired=[
                        {"fields": [{"fieldPath": name, "order": order.upper()} for name, order in fields]}
                    ],
                    why="a ledger query (shared/ledger/firestore.py)",
                )
            )
        for collection, why in TTL_COLLECTIONS:
            group = f"{prefix}{collection}"
            self.add(
                Step(
                    "ttl",
                    f"{group}.{TTL_FIELD}",
                    gcloud(
                        "firestore",
                        "fields",
                        "ttls",
                        "list",
                        f"--collection-group={group}",
                        f"--filter=name:/fields/{TTL_FIELD}",
                        "--format=json",
                    ),
                    gcloud(
                        "firestore",
                        "fields",
                        "ttls",
                        "update",
                        TTL_FIELD,
                        f"--collection-group={group}",
                        "--enable-ttl",
                    ),
                    desired=[{"ttlConfig": {"state": "ACTIVE"}}],
                    why=why,
                )
            )

    def bucket(self, bucket: str, why: str) -> None:
        self.add(
            Step(
                "bucket",
                bucket,
                gcloud("storage", "buckets", "describe", f"gs://{bucket}", "--format=json"),
                gcloud(
                    "storage",
                    "buckets",
                    "create",
                    f"gs://{bucket}",
                    f"--location={self.region}",
                    "--uniform-bucket-level-access",
                ),
                why=why,
            )
        )

    def topic(self, topic: str, why: str) -> None:
        self.add(
            Step(
                "topic",
                topic,
                gcloud("pubsub", "topics", "describe", topic, "--format=json"),
                gcloud("pubsub", "topics", "create", topic),
                why=why,
            )
        )

    def secret(self, variable: str, functions: list[str]) -> str:
        name = f"{self.prefix}{variable.lower().replace('_', '-')}"
        self.add(
            Step(
                "secret",
                name,
                gcloud("secrets", "describe", name, "--format=json"),
                gcloud("secrets", "create", name, "--replication-policy=automatic"),
                why=f"{variable} of {', '.join(functions)}",
            )
        )
        generate = "WEBHOOK" in variable and variable.endswith(("SECRET", "TOKEN"))
        self.add(
            Step(
                "secret-version",
                name,
                gcloud("secrets", "versions", "describe", "latest", f"--secret={name}", "--format=json"),
                gcloud("secrets", "versions", "add", name, "--data-file=-", stdin=Secret(variable, generate)),
                desired={"state": "ENABLED"},
                why=(
                    "generated when missing (we choose a webhook's shared secret)"
                    if generate
                    else f"the value of ${variable} in the deployer's shell"
                ),
            )
        )
        return name

    def dead_letter(self, topic: str) -> None:
        self.topic(topic, "dead letters of one function")
        hold = f"{topic}-hold"
        self.add(
            Step(
                "subscription",
                hold,
                gcloud("pubsub", "subscriptions", "describe", hold, "--format=json"),
                gcloud(
                    "pubsub",
                    "subscriptions",
                    "create",
                    hold,
                    f"--topic={topic}",
                    "--message-retention-duration=7d",
                    "--expiration-period=never",
                ),
                why="keeps dead letters for inspection and replay (7 days)",
            )
        )
        self.grant(
            "topic",
            topic,
            self.agent("gcp-sa-pubsub"),
            "roles/pubsub.publisher",
            "the Pub/Sub service agent publishes dead letters",
        )

    def drift_channel(self) -> None:
        if "drift.alert" not in self.config.topics:
            return
        topic = self.config.topic_for("drift.alert")
        name = f"{self.prefix}drift-alerts"
        self.add(
            Step(
                "channel",
                name,
                gcloud(
                    "beta",
                    "monitoring",
                    "channels",
                    "list",
                    f'--filter=displayName="{name}"',
                    "--format=json",
                ),
                gcloud(
                    "beta",
                    "monitoring",
                    "channels",
                    "create",
                    f"--display-name={name}",
                    "--type=pubsub",
                    f"--channel-labels=topic={self.topic_path(topic)}",
                ),
                desired=[{"type": "pubsub", "labels": {"topic": self.topic_path(topic)}}],
                why="alert policies notify this channel; on_drift_alert reads it",
            )
        )
        self.grant(
            "topic",
            topic,
            self.agent("gcp-sa-monitoring-notification"),
            "roles/pubsub.publisher",
            "Cloud Monitoring publishes incidents on the drift topic",
        )
