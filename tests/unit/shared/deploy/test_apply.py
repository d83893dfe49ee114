"""``deploy apply`` against a recorded project: describe, then create or update; safe to re-run."""

from __future__ import annotations

import pytest

from shared.deploy.apply import ApplyError, apply, changes
from tests.unit.shared.deploy.support import RecordedProject, shipped_plan

pytestmark = pytest.mark.unit


def _actions(project: RecordedProject) -> dict[str, str]:
    return {change.step.key: change.action for change in changes(project.plan, project)}


def test_the_recorded_project_needs_only_what_it_lacks_or_holds_differently() -> None:
    project = RecordedProject.recorded(shipped_plan())
    actions = _actions(project)
    assert actions["topic:mlops-notifications"] == "none"
    assert actions["topic:cloud-builds"] == "none"
    assert actions["database:(default)"] == "none"
    assert actions["identity:mlops-notify@acme-ml-prod.iam.gserviceaccount.com"] == "none"
    assert (
        actions[
            "grant:roles/datastore.user to serviceAccount:mlops-notify@acme-ml-prod.iam.gserviceaccount.com "
            "on project acme-ml-prod"
        ]
        == "none"
    )
    assert actions["function:notify"] == "update"  # deployed from another source tree
    assert actions["scheduler:mlops-reconcile"] == "update"  # every 5 minutes, the config says every minute
    assert actions["api:13 APIs"] == "create"  # three of thirteen enabled: enable the others
    assert actions["topic:mlops-training-requests"] == "create"
    assert not project.mutations, "planning changes nothing"


def test_after_apply_replanning_against_the_project_plans_no_change() -> None:
    project = RecordedProject.recorded(shipped_plan())
    generated = apply(project.plan, project, env={}, say=lambda line: None)
    assert {action for action in _actions(project).values()} == {"none"}
    # the webhook secrets were generated (we choose them) and went to Secret Manager on stdin only
    assert set(generated) == {"GITHUB_WEBHOOK_SECRET", "GITLAB_WEBHOOK_TOKEN"}
    assert project.stdin["mlops-github-webhook-secret"] == generated["GITHUB_WEBHOOK_SECRET"]
    assert all(generated["GITHUB_WEBHOOK_SECRET"] not in " ".join(argv) for argv in project.calls)
    # the Eventarc subscription (named by Eventarc) got spec.eventing's policy
    name = "projects/acme-ml-prod/subscriptions/eventarc-mlops-notify-sub-123"
    subscription = project.state[f"gcloud pubsub subscriptions describe {name}"]
    assert subscription["ackDeadlineSeconds"] == 30
    assert subscription["deadLetterPolicy"] == {
        "deadLetterTopic": "projects/acme-ml-prod/topics/mlops-dead-letter-notify",
        "maxDeliveryAttempts": 5,
    }
    assert subscription["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}


def test_a_second_apply_changes_nothing() -> None:
    project = RecordedProject.recorded(shipped_plan())
    apply(project.plan, project, env={}, say=lambda line: None)
    done = len(project.mutations)
    lines: list[str] = []
    apply(project.plan, project, env={}, say=lines.append)
    assert len(project.mutations) == done
    assert all(line.endswith(": ok") for line in lines)
    assert len(lines) == len(project.plan.steps)


def test_apply_stops_at_the_first_failure_and_says_what_to_fix() -> None:
    project = RecordedProject.recorded(shipped_plan(), fail_on="eventarc triggers create mlops-notify")
    with pytest.raises(ApplyError) as raised:
        apply(project.plan, project, env={}, say=lambda line: None)
    message = str(raised.value)
    assert "trigger:mlops-notify: create failed" in message
    assert "PERMISSION_DENIED" in message
    assert "fix: the deployer needs Owner" in message
    assert project.mutations[-1][1:5] == ("eventarc", "triggers", "create", "mlops-notify")
    # re-running after the fix goes on from there: what was done is skipped
    project.fail_on = ""
    before = len(project.mutations)
    apply(project.plan, project, env={}, say=lambda line: None)
    first_again = project.mutations[before]
    assert first_again[1:5] == ("eventarc", "triggers", "create", "mlops-notify")


def test_a_secret_the_deployer_must_give_stops_apply_until_it_is_set() -> None:
    plan = shipped_plan(env={"SLACK_SIGNING_SECRET": "from-slack"})
    project = RecordedProject.recorded(plan)
    with pytest.raises(ApplyError, match="set SLACK_SIGNING_SECRET in your shell"):
        apply(plan, project, env={}, say=lambda line: None)
    apply(plan, project, env={"SLACK_SIGNING_SECRET": "from-slack"}, say=lambda line: None)
    assert project.stdin["mlops-slack-signing-secret"] == "from-slack"
