"""Every gcloud invocation the plan renders exists in the INSTALLED Cloud CLI: its command and each flag.

Read from the SDK's static completion tree (``data/cli/gcloud_completions.py``), once per session: offline
and about a second, where ``--help`` per command would take minutes. Skipped, saying why, without gcloud.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.deploy import render
from shared.deploy.gcloudtree import TREE_FILE, load_tree, problems, sdk_root
from shared.deploy.model import Command, gcloud
from tests.unit.shared.deploy.support import render_all, shipped_plan

pytestmark = pytest.mark.unit


@pytest.fixture(scope="session")
def cli_tree() -> dict[str, Any]:
    root = sdk_root()
    if root is None:
        pytest.skip("the Google Cloud CLI (gcloud) is not installed: rendered commands cannot be checked")
    return load_tree(root / TREE_FILE)


def _invocations(commands: list[Command]) -> list[list[str]]:
    """Each command as the shell passes it, and each command inside a ``$(...)`` lookup."""
    found: list[list[str]] = []
    for command in commands:
        found.append([arg if isinstance(arg, str) else "VALUE" for arg in command.argv])
        found.extend(list(lookup.argv) for lookup in command.lookups())
    return found


def test_every_rendered_command_and_flag_exists_in_the_installed_cli(cli_tree: dict[str, Any]) -> None:
    plan = shipped_plan(env={"SLACK_SIGNING_SECRET": "x", "SLACK_WEBHOOK_URL": "https://hooks.example/x"})
    invocations = _invocations(render_all(plan))
    assert len(invocations) > 300
    wrong = [problem for argv in invocations for problem in problems(argv, cli_tree)]
    assert wrong == []


def test_the_rendered_text_splits_back_into_the_same_commands(cli_tree: dict[str, Any]) -> None:
    plan = shipped_plan()
    for step in plan.steps:
        words = render.shell_words(step.create)
        if not step.create.lookups():
            assert words == list(step.create.plain())
        assert problems([w if "$(" not in w else "VALUE" for w in words], cli_tree) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["gcloud", "functions", "deploy", "f", "--trigger-topik=t"],
            "gcloud functions deploy: no flag --trigger-topik",
        ),
        (["gcloud", "pubsub", "topix", "create", "t"], "gcloud pubsub: 'topix' is not one of its commands"),
        (
            ["gcloud", "scheduler", "jobs", "create", "http", "j", "--oidc-service-account=x"],
            "gcloud scheduler jobs create http: no flag --oidc-service-account",
        ),
        (
            ["gcloud", "functions", "deploy", "f", "--no-region"],
            "gcloud functions deploy: no flag --no-region",
        ),
        (
            ["gcloud", "firestore", "fields", "describe", "x"],
            "gcloud firestore fields: 'describe' is not one of its commands",
        ),
    ],
)
def test_a_typo_is_caught(cli_tree: dict[str, Any], argv: list[str], expected: str) -> None:
    assert expected in problems(argv, cli_tree)


def test_negated_booleans_and_global_flags_are_accepted(cli_tree: dict[str, Any]) -> None:
    command = gcloud(
        "functions", "deploy", "f", "--no-allow-unauthenticated", "--project=p", "--quiet", "--format=json"
    )
    assert problems(list(command.plain()), cli_tree) == []
