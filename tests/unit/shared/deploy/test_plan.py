"""The deploy plan derived from pipeline.yaml and main.py: every function with its trigger, identity, roles,
secrets and dead-letter policy, least privilege, and nothing listed by hand."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shared.config import load_config
from shared.deploy import render
from shared.deploy.discover import entry_points, exported
from shared.deploy.model import Plan, Step
from shared.deploy.plan import build_plan
from tests.unit.shared.deploy.support import PROJECT, ROOT, shipped_plan

pytestmark = pytest.mark.unit

SA = "iam.gserviceaccount.com"


def _function(plan: Plan, name: str):  # type: ignore[no-untyped-def]
    return next(function for function in plan.functions if function.name == name)


def _steps(plan: Plan, kind: str) -> list[Step]:
    return [step for step in plan.steps if step.kind == kind]


def _rendered(plan: Plan) -> str:
    return "\n".join(render.commands(plan))


def test_every_exported_function_is_planned_with_trigger_identity_roles_secrets_and_dead_letter() -> None:
    plan = shipped_plan()
    assert [function.name for function in plan.functions] == list(exported(ROOT))
    for function in plan.functions:
        assert function.identity.endswith(f"@{PROJECT}.{SA}")
        assert "roles/datastore.user" in function.roles  # every function records steps in the ledger
        assert function.trigger
    notify = _function(plan, "notify")
    assert notify.trigger == "Pub/Sub mlops-notifications"
    assert notify.identity == f"mlops-notify@{PROJECT}.{SA}"
    assert notify.dead_letter == "mlops-dead-letter-notify after 5 attempts"
    assert notify.roles == (
        "roles/datastore.user",
    )  # it delivers to webhooks: no Google role beyond the ledger
    push = _function(plan, "on_git_push")
    assert push.trigger == "HTTP, public (checks its signature)"
    assert push.secrets == (
        "GITHUB_WEBHOOK_SECRET=mlops-github-webhook-secret",
        "GITLAB_WEBHOOK_TOKEN=mlops-gitlab-webhook-token",
    )
    assert push.roles == ("roles/datastore.user", "roles/cloudbuild.builds.editor")
    assert push.dead_letter == "-"
    reconcile = _function(plan, "reconcile")
    assert reconcile.trigger == "HTTP, private, Cloud Scheduler '* * * * *' with OIDC"
    data = _function(plan, "on_data_object")
    assert data.trigger == f"storage finalized in {PROJECT}-data"
    assert f"roles/storage.objectAdmin on {PROJECT}-data" in data.roles  # it quarantines in place
    assert data.dead_letter == "mlops-dead-letter-on_data_object after 5 attempts"
    rollout = _function(plan, "start_rollout")
    assert "roles/run.developer" in rollout.roles
    assert f"roles/iam.serviceAccountUser on mlops-serving@{PROJECT}.{SA}" in rollout.roles
    assert "roles/cloudbuild.builds.editor" not in rollout.roles


def test_roles_follow_what_each_path_uses_and_nothing_more() -> None:
    plan = shipped_plan()
    drift = _function(plan, "on_drift_alert")
    assert set(drift.roles) == {
        "roles/datastore.user",
        "roles/pubsub.publisher on mlops-notifications",
        "roles/pubsub.publisher on mlops-training-requests",
    }
    training = _function(plan, "start_training")
    assert "roles/aiplatform.user" in training.roles
    assert f"roles/iam.serviceAccountUser on mlops-trainer@{PROJECT}.{SA}" in training.roles
    assert not any("run." in role or "monitoring" in role for role in training.roles)
    assert not any(
        "publisher on mlops-rollouts" in role
        for f in plan.functions
        if f.name != "start_rollout" and f.name != "reconcile"
        for role in f.roles
    )


def test_every_pubsub_and_storage_trigger_is_an_eventarc_trigger_with_the_eventing_retry_policy() -> None:
    plan = shipped_plan()
    triggers = {step.name for step in _steps(plan, "trigger")}
    event_functions = [f.name for f in plan.functions if f.kind != "http"]
    assert triggers == {f"mlops-{name.replace('_', '-')}" for name in event_functions}
    text = _rendered(plan)
    assert (
        "gcloud eventarc triggers create mlops-notify --location=us-central1 "
        "--destination-run-service=notify --destination-run-region=us-central1 "
        f"--service-account=mlops-eventarc@{PROJECT}.{SA} "
        "--event-filters=type=google.cloud.pubsub.topic.v1.messagePublished "
        f"--transport-topic=projects/{PROJECT}/topics/mlops-notifications"
    ) in text
    assert "--event-filters=type=google.cloud.storage.object.v1.finalized" in text
    for step in _steps(plan, "retry-policy"):
        words = step.create.plain()
        assert "--ack-deadline=30" in words and "--max-delivery-attempts=5" in words
        assert "--min-retry-delay=10s" in words and "--max-retry-delay=600s" in words
    # the Pub/Sub service agent may publish dead letters and pull from the trigger's subscription
    assert "roles/pubsub.publisher to serviceAccount:service-NUMBER@gcp-sa-pubsub" in "\n".join(
        step.name for step in _steps(plan, "grant")
    )
    assert len([s for s in _steps(plan, "grant") if "roles/pubsub.subscriber" in s.name]) == len(
        event_functions
    )


def test_retry_policy_follows_spec_eventing(tmp_path: Path) -> None:
    text = (ROOT / "pipeline.yaml").read_text(encoding="utf-8")
    text = text.replace("maxDeliveryAttempts: 5 ", "maxDeliveryAttempts: 12").replace(
        "ackDeadline: 30s", "ackDeadline: 90s"
    )
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(text, encoding="utf-8")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "churn.yaml").write_text(
        (ROOT / "schemas/churn.yaml").read_text(encoding="utf-8")
    )
    env = {"GOOGLE_CLOUD_PROJECT": PROJECT}
    plan = build_plan(load_config(config_file, env=env), entry_points(ROOT), ROOT, env)
    policy = _steps(plan, "retry-policy")[0]
    assert "--max-delivery-attempts=12" in policy.create.plain()
    assert "--ack-deadline=90" in policy.create.plain()
    assert _function(plan, "notify").dead_letter.endswith("after 12 attempts")
    deploy = next(step for step in _steps(plan, "function") if step.name == "notify")
    assert "--timeout=90s" in deploy.create.plain()  # an invocation ends inside its ack deadline


def test_secrets_are_mounted_never_plain_env_and_only_where_read() -> None:
    plan = shipped_plan(
        env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X", "SLACK_SIGNING_SECRET": "s"}
    )
    deploys = {step.name: step.create.plain() for step in _steps(plan, "function")}
    assert "--set-secrets=SLACK_WEBHOOK_URL=mlops-slack-webhook-url:latest" in deploys["notify"]
    assert (
        "--set-secrets=SLACK_SIGNING_SECRET=mlops-slack-signing-secret:latest" in deploys["on_chat_approval"]
    )
    for name, words in deploys.items():
        env = next(word for word in words if word.startswith("--set-env-vars="))
        assert "SECRET" not in env and "hooks.slack.com" not in env, name
        assert "CHAT_VERIFICATION_TOKEN" not in " ".join(words)  # the local stand-in, never in a project
    assert any(
        "CHAT_AUDIENCE=https://us-central1-acme-ml-prod.cloudfunctions.net/on_chat_approval" in w
        for w in deploys["on_chat_approval"]
    )
    accessors = [s.name for s in _steps(plan, "grant") if "secretAccessor" in s.name]
    assert any("mlops-notify@" in name and "mlops-slack-webhook-url" in name for name in accessors)
    assert not any("mlops-notify@" in name and "github" in name for name in accessors)
    # unset optional values are named in the notes, not mounted
    assert "GOOGLE_CHAT_WEBHOOK_URL (notify) is not set: the config's default applies" in plan.notes


def test_public_and_private_http_functions_and_the_scheduler_job() -> None:
    plan = shipped_plan()
    deploys = {step.name: step.create.plain() for step in _steps(plan, "function")}
    assert "--allow-unauthenticated" in deploys["on_git_push"]
    assert "--allow-unauthenticated" in deploys["on_chat_approval"]
    assert "--no-allow-unauthenticated" in deploys["reconcile"]
    assert "--no-allow-unauthenticated" in deploys["notify"]  # only Eventarc's identity may call it
    (job,) = _steps(plan, "scheduler")
    assert "--schedule=* * * * *" in job.create.plain()
    assert f"--oidc-service-account-email=mlops-scheduler@{PROJECT}.{SA}" in job.create.plain()
    invokers = [s.name for s in _steps(plan, "grant") if "run.invoker" in s.name and "reconcile" in s.name]
    assert invokers == [
        f"roles/run.invoker to serviceAccount:mlops-scheduler@{PROJECT}.{SA} on function reconcile"
    ]


def test_ledger_indexes_ttl_registry_and_drift_channel() -> None:
    plan = shipped_plan()
    text = _rendered(plan)
    assert (
        "gcloud firestore indexes composite create --collection-group=runs --query-scope=COLLECTION "
        "--field-config=field-path=status,order=ascending "
        "--field-config=field-path=started_at,order=descending"
    ) in text
    assert "--field-config=field-path=fields.seen_at,order=ascending" in text
    assert (
        "gcloud firestore fields ttls update expires_at --collection-group=idempotency --enable-ttl" in text
    )
    # Slack's replay records expire too (shared.approval.slack writes expires_at; the ledger a Timestamp).
    assert (
        "gcloud firestore fields ttls update expires_at --collection-group=slack-requests --enable-ttl"
        in text
    )
    from shared.approval.slack import SEEN
    from shared.deploy.resources import TTL_COLLECTIONS

    assert SEEN in {collection for collection, _ in TTL_COLLECTIONS}
    assert (
        "gcloud artifacts repositories create mlops --repository-format=docker --location=us-central1" in text
    )
    assert (
        "gcloud beta monitoring channels create --display-name=mlops-drift-alerts --type=pubsub "
        f"--channel-labels=topic=projects/{PROJECT}/topics/mlops-drift-alerts"
    ) in text
    assert plan.webhooks[0] == (
        f"https://us-central1-{PROJECT}.cloudfunctions.net/on_git_push",
        "mlops-github-webhook-secret",
    )


def test_the_text_plan_is_a_summary_then_one_command_per_line() -> None:
    text = render.text(shipped_plan())
    head, _, commands = text.partition("# the commands `deploy apply` runs")
    assert (
        head.splitlines()[0]
        == f"deploy plan for project {PROJECT}, region us-central1 (from {ROOT / 'pipeline.yaml'})"
    )
    assert "FUNCTION" in head and "DEAD-LETTER" in head
    lines = [line for line in commands.splitlines()[1:] if line and not line.startswith("#")]
    assert lines and all(line.startswith("gcloud ") for line in lines)
    assert len(lines) == len(shipped_plan().steps)


def test_a_function_added_to_main_and_wired_in_the_config_is_planned(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "on_thing.py").write_text(
        textwrap.dedent(
            """
            import functions_framework
            from shared.function import pubsub_endpoint

            def handle(message, runtime):
                pass

            @functions_framework.http
            def on_thing(request):
                return pubsub_endpoint("on_thing", request, handle)
            """
        )
    )
    (tmp_path / "main.py").write_text('from functions.on_thing import on_thing\n__all__ = ["on_thing"]\n')
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(
        "apiVersion: mlops.dev/v1\nkind: Pipeline\nspec:\n  project: p-1\n  topicPrefix: t-\n"
        "  topics: {thing: things}\n  triggers: [{function: on_thing, event: thing}]\n"
    )
    config = load_config(config_file, env={})
    plan = build_plan(config, entry_points(tmp_path), tmp_path, {})
    (function,) = plan.functions
    assert (function.name, function.kind, function.trigger) == ("on_thing", "pubsub", "Pub/Sub t-things")
    assert function.dead_letter == "t-dead-letter-on_thing after 5 attempts"
