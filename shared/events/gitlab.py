"""GitLab webhooks: ``Push Hook`` and ``Tag Push Hook`` (``X-Gitlab-Event``), keyed by the event UUID."""

from __future__ import annotations

from typing import Any

from shared.events.common import invalid
from shared.events.git import ZERO_SHA, GitPush, commits, delivery
from shared.problems import Problems


def gitlab_push(body: Any, delivery_id: str = "") -> GitPush:
    """A GitLab ``Push Hook`` (``object_kind: push``) or ``Tag Push Hook``."""
    problems = Problems()
    payload = problems.reader(body)
    delivered = delivery(payload, delivery_id)
    kind = payload.string("object_kind", "", required=True)
    if kind and kind not in ("push", "tag_push"):
        payload.add("object_kind", f"expected push or tag_push, got {kind[:40]!r}")
    ref = payload.string("ref", "", required=True)
    after = payload.string("after", "", required=True)
    before = payload.string("before", "")
    project = payload.child("project")
    repository = project.string("path_with_namespace", "", required=True)
    clone_url = project.string("git_http_url", "")
    pusher = payload.string("user_username", "") or payload.string("user_name", "")
    pushed = commits(payload)
    problems.raise_if_any(invalid("GitLab push"))
    deleted = after == ZERO_SHA
    return GitPush(
        "gitlab", delivered, ref, before, after, repository, clone_url, pusher, pushed, deleted, body
    )
