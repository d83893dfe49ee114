"""A git push, the same for every provider: what a build decision needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.events.common import strings
from shared.events.limits import MAX_ID_BYTES
from shared.problems import Reader, utf8_size

ZERO_SHA = "0" * 40
#: Commits listed in a push: GitHub sends at most 2,048 (and 20 in the payload's ``commits``), GitLab 20.
MAX_COMMITS = 2048


@dataclass(frozen=True)
class Commit:
    id: str
    message: str
    url: str
    author: str
    added: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class GitPush:
    """A push, from GitHub or GitLab, reduced to what a build decision needs."""

    provider: str
    delivery_id: str
    ref: str
    before: str
    after: str
    repository: str
    clone_url: str
    pusher: str
    commits: tuple[Commit, ...]
    deleted: bool
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None

    @property
    def short_sha(self) -> str:
        return self.after[:7]

    @property
    def changed_paths(self) -> frozenset[str]:
        return frozenset(path for c in self.commits for path in (*c.added, *c.modified, *c.removed))


def commits(reader: Reader) -> tuple[Commit, ...]:
    """The ``commits`` list, leniently: an item that is not an object is skipped."""
    result: list[Commit] = []
    for item in reader.sequence("commits", max_items=MAX_COMMITS):
        if not isinstance(item, Mapping):
            continue
        author = item.get("author") if isinstance(item.get("author"), Mapping) else {}
        result.append(
            Commit(
                id=str(item.get("id", "")),
                message=str(item.get("message", "")),
                url=str(item.get("url", "")),
                author=str((author or {}).get("name") or (author or {}).get("username") or ""),
                added=strings(item.get("added")),
                modified=strings(item.get("modified")),
                removed=strings(item.get("removed")),
            )
        )
    return tuple(result)


def delivery(reader: Reader, delivery_id: str) -> str:
    """The delivery id header (the push's idempotency key), checked like any other id."""
    size = utf8_size(delivery_id)
    if size > MAX_ID_BYTES:
        reader.problems.add("(delivery id)", f"must be at most {MAX_ID_BYTES} bytes, got {size}")
        return ""
    return delivery_id
