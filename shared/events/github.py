"""GitHub webhooks: ``push`` and ``ping`` (``X-GitHub-Event``), keyed by ``X-GitHub-Delivery``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.events.common import invalid, strings
from shared.events.git import ZERO_SHA, GitPush, commits, delivery
from shared.problems import Problems


def github_push(body: Any, delivery_id: str = "") -> GitPush:
    """A GitHub ``push`` webhook (header ``X-GitHub-Event: push``)."""
    problems = Problems()
    payload = problems.reader(body)
    delivered = delivery(payload, delivery_id)
    ref = payload.string("ref", "", required=True)
    after = payload.string("after", "", required=True)
    before = payload.string("before", "")
    repository = payload.child("repository")
    name = repository.string("full_name", "", required=True)
    clone_url = repository.string("clone_url", "")
    pusher = payload.child("pusher").string("name", "")
    pushed = commits(payload)
    problems.raise_if_any(invalid("GitHub push"))
    deleted = bool(payload.get("deleted")) or after == ZERO_SHA
    return GitPush("github", delivered, ref, before, after, name, clone_url, pusher, pushed, deleted, body)


@dataclass(frozen=True)
class GitHubPing:
    """GitHub's ``ping`` sent when a webhook is created."""

    delivery_id: str
    zen: str
    hook_id: int
    events: tuple[str, ...]
    repository: str
    raw: Mapping[str, Any] = field(repr=False)


def github_ping(body: Any, delivery_id: str = "") -> GitHubPing:
    problems = Problems()
    payload = problems.reader(body)
    delivered = delivery(payload, delivery_id)
    zen = payload.string("zen", "")
    hook_id = payload.int64("hook_id", required=True)
    hook = payload.mapping("hook")
    repository = payload.child("repository").string("full_name", "")
    problems.raise_if_any(invalid("GitHub ping"))
    return GitHubPing(delivered, zen, hook_id, strings(hook.get("events")), repository, body)
