"""What a push touches: repository, branch/tag and path rules → ignored (with the reason) or touched images.

:func:`route` decides, in this order:

1. a deletion (``after`` all zeros, or GitHub's ``deleted``) → ignored;
2. a repository matching none of ``repositories`` → ignored;
3. a ref that is neither a branch matching ``branches`` nor a tag matching ``tags`` → ignored;
4. the images whose path globs match a changed path (added, modified or removed, in any commit) — none →
   ignored. When the change list may be incomplete every image counts as touched, and the reason says why:

   * a new branch or tag (``before`` all zeros): the commits listed are only those new to the repository;
   * a forced push: the listed commits do not describe the change from the old head;
   * fewer commits listed than the payload says were pushed (GitLab's ``total_commits_count``, the events
     API's ``size``/``distinct_size``), or as many as the provider ever lists (GitLab stops at 20; GitHub's
     webhooks at 2048 — the 20-commit cap applies to its events API, not to webhook deliveries);
   * a push with no commit listed, or a commit without its ``added``/``modified``/``removed`` lists (GitHub
     Actions' copy of the payload omits them);
   * more distinct changed paths than :data:`MAX_PATHS` (bounded matching time, so the webhook answers in
     well under a second).

Globs (`wcmatch <https://facelessuser.github.io/wcmatch/glob/>`_ ``globmatch``) are anchored at the start,
as in Cloud Build triggers' ``includedFiles`` and GitHub Actions' ``paths``: ``*`` and ``?`` stay within one
path segment, ``**`` spans any number of segments, ``[...]`` classes, ``{a,b}`` alternatives, a leading
``!`` excludes, dotfiles match. The same rules apply to branches (``release/*``), tags (``v*``) and repository
names (``acme/**``; compared without regard to case, as GitHub and GitLab do).
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from wcmatch import glob

#: Most commits a provider lists in one push payload; a list this long may have been cut.
COMMIT_LIST_CAP = {"github": 2048, "gitlab": 20}
DEFAULT_COMMIT_LIST_CAP = 20
#: Distinct changed paths matched at most; above this every image counts as touched.
MAX_PATHS = 10_000
#: Matching paths kept per image, to explain the decision.
EXAMPLE_PATHS = 5

_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX | glob.NEGATE | glob.BRACE
_IMAGE_NAME_MAX = 40


class CommitLike(Protocol):
    """A commit of a push payload (``shared.events.Commit`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def added(self) -> Sequence[str]: ...
    @property
    def modified(self) -> Sequence[str]: ...
    @property
    def removed(self) -> Sequence[str]: ...


class PushLike(Protocol):
    """A push, from GitHub or GitLab (``shared.events.GitPush`` fits). ``raw`` is the payload as received:
    the completeness hints (``forced``, ``total_commits_count``...) are read from it."""

    @property
    def provider(self) -> str: ...
    @property
    def repository(self) -> str: ...
    @property
    def ref(self) -> str: ...
    @property
    def before(self) -> str: ...
    @property
    def after(self) -> str: ...
    @property
    def clone_url(self) -> str: ...
    @property
    def commits(self) -> Sequence[CommitLike]: ...
    @property
    def raw(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PushCommit:
    id: str
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Push:
    """A plain :class:`PushLike`, for callers that do not hold a ``shared.events.GitPush``."""

    provider: str
    repository: str
    ref: str
    before: str
    after: str
    clone_url: str = ""
    commits: tuple[PushCommit, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ImageRule:
    """One image the pipeline builds from the pushed repository."""

    name: str  # e.g. "trainer": lowercase letters, digits and '-' (it goes into tags and labels)
    paths: tuple[str, ...]  # globs of changed paths that touch it, e.g. ("trainer/**",)
    context: str  # the build's folder in the repository, e.g. "trainer"
    config: str = "cloudbuild/build-image.yaml"  # the Cloud Build config, relative to the pipeline's source
    repository: str = ""  # where the image is pushed, without a tag (the ``_IMAGE`` substitution)

    def problems(self, where: str) -> list[str]:
        found: list[str] = []
        if not self.name or len(self.name) > _IMAGE_NAME_MAX or not _is_slug(self.name):
            found.append(
                f"{where}.name: {self.name!r} must be 1-{_IMAGE_NAME_MAX} lowercase letters, digits or '-', "
                "starting with a letter"
            )
        found += _glob_problems(self.paths, f"{where}.paths", required=True)
        if _outside(self.context, allow_root=True):
            found.append(f"{where}.context: {self.context!r} must be a folder inside the repository")
        if not self.config or _outside(self.config, allow_root=False):
            found.append(f"{where}.config: {self.config!r} must be a relative path to a Cloud Build config")
        return found


@dataclass(frozen=True)
class PushRules:
    """Which pushes start builds (the pipeline configuration's push section, already parsed)."""

    images: tuple[ImageRule, ...]
    repositories: tuple[str, ...] = ("**",)
    branches: tuple[str, ...] = ("main",)
    tags: tuple[str, ...] = ()

    def problems(self, where: str = "push") -> list[str]:
        """Every reason these rules cannot work, each naming its field (empty when they are fine)."""
        found = _glob_problems(self.repositories, f"{where}.repositories", required=True)
        found += _glob_problems(self.branches, f"{where}.branches", required=False)
        found += _glob_problems(self.tags, f"{where}.tags", required=False)
        if not self.branches and not self.tags:
            found.append(f"{where}: give branches or tags, or no push can ever match")
        if not self.images:
            found.append(f"{where}.images: at least one image is required")
        seen: set[str] = set()
        for index, image in enumerate(self.images):
            found += image.problems(f"{where}.images[{index}]")
            if image.name in seen:
                found.append(f"{where}.images[{index}].name: {image.name!r} is used twice")
            seen.add(image.name)
        return found


class Ignored(enum.StrEnum):
    """Why a push starts nothing (the value goes into the HTTP answer and the logs)."""

    DELETION = "deletion"
    REPOSITORY = "repository_not_matched"
    REF = "ref_not_matched"
    NO_IMAGE = "no_image_touched"


@dataclass(frozen=True)
class TouchedImage:
    rule: ImageRule
    paths: tuple[str, ...]  # some changed paths that matched (at most EXAMPLE_PATHS); empty when assumed


@dataclass(frozen=True)
class Decision:
    """What to do with a push: ``ignored`` set and no images, or the images to build."""

    images: tuple[TouchedImage, ...]
    ignored: Ignored | None
    reason: str  # one sentence for people
    complete: bool = True  # False when the change list may be incomplete and every image was assumed

    @property
    def image_names(self) -> tuple[str, ...]:
        return tuple(image.rule.name for image in self.images)

    def to_json(self) -> dict[str, Any]:
        """The body of the webhook's answer."""
        return {
            "ignored": self.ignored.value if self.ignored else None,
            "reason": self.reason,
            "images": [{"name": image.rule.name, "paths": list(image.paths)} for image in self.images],
            "complete": self.complete,
        }


def route(push: PushLike, rules: PushRules) -> Decision:
    """The images ``push`` touches under ``rules``, or why it is ignored."""
    if is_zero_sha(push.after) or push.raw.get("deleted") is True:
        return _ignored(Ignored.DELETION, f"{_shown(push.ref)} was deleted: nothing to build")
    if not _matches(push.repository, rules.repositories, ignore_case=True):
        return _ignored(
            Ignored.REPOSITORY,
            f"repository {_shown(push.repository)} matches none of {list(rules.repositories)}",
        )
    ref_problem = _ref_problem(push.ref, rules)
    if ref_problem:
        return _ignored(Ignored.REF, ref_problem)
    incomplete = _incomplete(push)
    if incomplete:
        return _everything(rules, incomplete)
    paths = changed_paths(push)
    if len(paths) > MAX_PATHS:
        return _everything(rules, f"{len(paths)} changed paths, more than the {MAX_PATHS} matched")
    touched: list[TouchedImage] = []
    for rule in rules.images:
        matched = _matching(paths, rule.paths)
        if matched:
            touched.append(TouchedImage(rule, matched))
    if not touched:
        return _ignored(
            Ignored.NO_IMAGE,
            f"none of the {len(paths)} changed paths is under an image's paths "
            f"({'; '.join(f'{r.name}: {list(r.paths)}' for r in rules.images)})",
        )
    explained = "; ".join(f"{image.rule.name} ({', '.join(image.paths)})" for image in touched)
    return Decision(tuple(touched), None, f"touched: {explained}")


def changed_paths(push: PushLike) -> list[str]:
    """Every path added, modified or removed by the push's commits: normalised, deduplicated, sorted.

    ``a/../b`` counts as ``b``; paths that leave the repository (``../x``, ``/etc/x``), empty ones and
    non-text entries are dropped — git never sends them, so they can touch no image.
    """
    seen: set[str] = set()
    for commit in push.commits:
        for group in (commit.added, commit.modified, commit.removed):
            for path in group:
                normal = _normalise(path)
                if normal:
                    seen.add(normal)
    return sorted(seen)


def is_zero_sha(sha: str) -> bool:
    """The all-zeros object id git uses for "no commit" (SHA-1 or SHA-256 repositories)."""
    return isinstance(sha, str) and len(sha) in (40, 64) and sha.strip("0") == ""


def matches(value: str, patterns: Iterable[str], *, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches ``patterns`` under this module's glob rules (for config checks and tests)."""
    return _matches(value, tuple(patterns), ignore_case=ignore_case)


# -- internals ----------------------------------------------------------------------------------------------


def _ignored(why: Ignored, reason: str) -> Decision:
    return Decision((), why, reason)


def _shown(value: str) -> str:
    """``value`` quoted for a reason, cut so a hostile ref or name cannot bloat answers and logs."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _everything(rules: PushRules, why: str) -> Decision:
    images = tuple(TouchedImage(rule, ()) for rule in rules.images)
    names = ", ".join(rule.name for rule in rules.images)
    return Decision(images, None, f"{why}: building every image ({names})", complete=False)


def _ref_problem(ref: str, rules: PushRules) -> str:
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        if _matches(branch, rules.branches, ignore_case=False):
            return ""
        return f"branch {_shown(branch)} matches none of {list(rules.branches)}"
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        if _matches(tag, rules.tags, ignore_case=False):
            return ""
        return f"tag {_shown(tag)} matches none of {list(rules.tags)}"
    return f"ref {_shown(ref)} is neither a branch nor a tag"


def _incomplete(push: PushLike) -> str:
    """Why the push's change list may miss changes ("" when it is complete)."""
    raw = push.raw
    listed = len(push.commits)
    if is_zero_sha(push.before) or not push.before:
        return f"{_shown(push.ref)} is new, so the payload lists only commits new to the repository"
    if raw.get("forced") is True:
        return "a forced push: the listed commits do not describe the change from the previous head"
    for name in ("total_commits_count", "size", "distinct_size"):
        count = raw.get(name)
        if isinstance(count, int) and not isinstance(count, bool) and count > listed:
            return f"the payload lists {listed} of {count} commits ({name})"
    cap = COMMIT_LIST_CAP.get(push.provider, DEFAULT_COMMIT_LIST_CAP)
    if listed >= cap:
        return f"the payload lists {listed} commits, the most {push.provider or 'a provider'} sends"
    if listed == 0:
        return "the payload lists no commits"
    raw_commits = raw.get("commits")
    if isinstance(raw_commits, list):
        for item in raw_commits:
            if isinstance(item, Mapping) and not any(k in item for k in ("added", "modified", "removed")):
                return "a commit in the payload has no added/modified/removed lists"
    return ""


def _normalise(path: Any) -> str:
    if not isinstance(path, str) or not path or "\x00" in path:
        return ""
    if path.startswith("/"):
        return ""
    normal = posixpath.normpath(path)
    if normal in (".", "..") or normal.startswith("../"):
        return ""
    return normal


def _matching(paths: Sequence[str], patterns: tuple[str, ...]) -> tuple[str, ...]:
    matcher = _compiled(patterns, False)
    found: list[str] = []
    for path in paths:
        if matcher.match(path):
            found.append(path)
            if len(found) >= EXAMPLE_PATHS:
                break
    return tuple(found)


def _matches(value: str, patterns: tuple[str, ...], *, ignore_case: bool) -> bool:
    if not isinstance(value, str) or not value or not patterns:
        return False
    return bool(_compiled(patterns, ignore_case).match(value))


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...], ignore_case: bool) -> Any:
    # Rules come from the configuration, so a process compiles each pattern set once.
    flags = _FLAGS | (glob.IGNORECASE if ignore_case else glob.CASE)
    return glob.compile(list(patterns), flags=flags)


def _glob_problems(patterns: tuple[str, ...], where: str, *, required: bool) -> list[str]:
    found: list[str] = []
    if not isinstance(patterns, tuple) or not all(isinstance(p, str) and p for p in patterns):
        return [f"{where}: must be a list of non-empty glob strings"]
    if required and not any(not p.startswith("!") for p in patterns):
        found.append(f"{where}: at least one pattern that is not an exclusion ('!...') is required")
    try:
        _compiled(patterns, False)
    except Exception as error:  # wcmatch raises ValueError and friends for patterns it cannot compile
        found.append(f"{where}: {error}")
    return found


def _outside(path: str, *, allow_root: bool) -> bool:
    if not isinstance(path, str):
        return True
    if path in ("", "."):
        return not allow_root
    if path.startswith("/") or "\x00" in path:
        return True
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def _is_slug(name: str) -> bool:
    return (
        name[:1].isascii()
        and name[:1].isalpha()
        and name[:1].islower()
        and all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in name)
        and not name.endswith("-")
    )
