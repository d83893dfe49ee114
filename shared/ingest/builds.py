"""One Cloud Build build per touched image: the request as plain data, findable by its tags after a crash.

:func:`plan_build` turns a push and one touched :class:`~shared.ingest.routing.ImageRule` into an
:class:`ImageBuild`: the image's Cloud Build config (a YAML file in ``cloudbuild/``, loaded and checked by
:func:`load_build_config`), a git source (the payload's clone URL at ``after``, ``dir`` = the image's
context; a ``file://`` URL works against the local emulator), substitutions and tags. ``to_build()`` is
the whole ``Build`` resource in Cloud Build's REST JSON; the parts are kept apart for
``BuildRequest.from_config``.

Substitutions. User substitutions (``_``-prefixed) this module offers — a config uses those it needs:

==============  ==============================================================================
``_IMAGE``      where the image goes, without a tag (the image rule's ``repository``); required
``_RUN_ID``     the run id (``push-<repo>-<sha12>``)
``_REPO``       the repository's full name (``owner/name``, GitLab ``group/sub/name``)
``_BRANCH``     the pushed branch ("" for a tag push)
``_TAG``        the pushed tag ("" for a branch push)
==============  ==============================================================================

and two built-ins, ``COMMIT_SHA`` and ``SHORT_SHA`` (first 7 hex). Cloud Build fills those only for
triggered builds; a manual build may set them itself (as ``gcloud builds submit --substitutions`` does), and
does here, so ``$COMMIT_SHA`` means the same in our builds as in a trigger's. Cloud Build refuses a build
whose template names a variable nobody defines, or that is given a user substitution its template never
uses (unless ``ALLOW_LOOSE``): so only the offered substitutions the config refers to are passed, and
:func:`config_problems` finds the rest when the configuration is checked, not at the first push.

Tags: the config's own, plus ``mlops``, ``run-<run id>`` and ``image-<name>`` (Cloud Build tags must match
``^[\\w][\\w.-]{0,127}$``). :attr:`ImageBuild.lookup_tags` is what to search for before starting the build
again after a crash (``Builds.find_by_tags``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from shared.errors import ConfigError, InvalidInput
from shared.ingest import runs
from shared.ingest.routing import ImageRule, PushLike, is_zero_sha
from shared.ports.builds import BUILTINS

OUR_TAG = "mlops"
#: Substitutions this module can pass; a config refers to those it needs (``_IMAGE`` at least).
OFFERED_SUBSTITUTIONS = ("_IMAGE", "_RUN_ID", "_REPO", "_BRANCH", "_TAG")
#: Cloud Build's built-in substitutions (for the template check): one list, kept with the Builds port.
CLOUD_BUILD_BUILTINS = BUILTINS

_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_USER_KEY = re.compile(r"_[A-Z0-9_]+")
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# Fields Cloud Build does not substitute: a reference there neither uses a substitution nor needs one.
_NOT_SUBSTITUTED = frozenset({"substitutions", "script"})


@dataclass(frozen=True)
class GitSourceSpec:
    """Cloud Build's ``gitSource``: the repository at ``revision``, the build running in ``dir``."""

    url: str
    revision: str
    dir: str = ""

    def to_json(self) -> dict[str, str]:
        body = {"url": self.url, "revision": self.revision}
        if self.dir:
            body["dir"] = self.dir
        return body


@dataclass(frozen=True)
class ImageBuild:
    """The build of one image for one pushed commit."""

    image: str  # the image rule's name
    run_id: str
    key: str  # idempotency key: build/REPO/SHA/IMAGE
    source: GitSourceSpec
    config: Mapping[str, Any] = field(repr=False)  # the config file as loaded (never modified)
    substitutions: Mapping[str, str]  # what this push adds (the file's own defaults stay in ``config``)
    tags: tuple[str, ...]  # what this push adds: mlops, run-<id>, image-<name>
    config_path: str = ""

    @property
    def lookup_tags(self) -> tuple[str, ...]:
        """The tags that find this very build again (one per run and image)."""
        return (f"run-{self.run_id}", f"image-{self.image}")

    def to_build(self) -> dict[str, Any]:
        """The ``Build`` resource to create, in Cloud Build's REST JSON (camelCase) — a fresh copy."""
        build = copy.deepcopy(dict(self.config))
        file_substitutions = build.get("substitutions") or {}
        build["substitutions"] = {
            **{str(k): str(v) for k, v in file_substitutions.items()},
            **self.substitutions,
        }
        build["tags"] = list(dict.fromkeys([*(str(t) for t in build.get("tags") or []), *self.tags]))
        build["source"] = {"gitSource": self.source.to_json()}
        return build

    def to_json(self) -> dict[str, Any]:
        """A record of what was asked (for the run ledger)."""
        return {
            "image": self.image,
            "run_id": self.run_id,
            "key": self.key,
            "config": self.config_path,
            "source": self.source.to_json(),
            "substitutions": dict(self.substitutions),
            "tags": list(self.tags),
        }


def build_tags(run_id: str, image: str) -> tuple[str, ...]:
    """``mlops``, ``run-<run id>``, ``image-<name>``: each checked against Cloud Build's tag syntax."""
    tags = (OUR_TAG, f"run-{run_id}", f"image-{image}")
    bad = [tag for tag in tags if not _TAG.fullmatch(tag)]
    if bad:
        raise InvalidInput("build tags", [f"{tag!r} must match [\\w][\\w.-]{{0,127}}" for tag in bad])
    return tags


def plan_build(
    push: PushLike,
    rule: ImageRule,
    config: Mapping[str, Any],
    *,
    run_id: str | None = None,
    config_path: str = "",
) -> ImageBuild:
    """The build of ``rule``'s image for ``push`` with the Cloud Build ``config`` (:func:`load_build_config`).

    Raises :class:`~shared.errors.InvalidInput` when the push cannot be built (a deletion, no clone URL, a
    malformed commit) and :class:`~shared.errors.ConfigError` when the rule or the config cannot build it.
    """
    if is_zero_sha(push.after):
        raise InvalidInput("push", ["after: a deleted ref has no commit to build"])
    if not isinstance(push.clone_url, str) or not push.clone_url.strip():
        raise InvalidInput("push", ["repository clone URL: required to build from git"])
    problems = rule.problems("image")
    if not rule.repository:
        problems.append(f"image {rule.name!r}: repository (where the image is pushed) is required")
    problems += config_problems(config)
    if problems:
        raise ConfigError(f"cannot build image {rule.name!r} with {config_path or 'its config'}", problems)
    commit = push.after.strip().lower()
    the_run_id = run_id or runs.push_run_id(push.repository, commit)
    if not runs.is_run_id(the_run_id):
        raise InvalidInput("run id", [f"{the_run_id!r} is not a lowercase, label-safe run id"])
    ref = push.ref
    offered = {
        "_IMAGE": rule.repository,
        "_RUN_ID": the_run_id,
        "_REPO": push.repository,
        "_BRANCH": ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else "",
        "_TAG": ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else "",
    }
    used = referenced_substitutions(config)
    substitutions = {key: value for key, value in offered.items() if key in used}
    substitutions["COMMIT_SHA"] = commit
    substitutions["SHORT_SHA"] = commit[:7]
    context = "" if rule.context in ("", ".") else rule.context.strip("/")
    return ImageBuild(
        image=rule.name,
        run_id=the_run_id,
        key=runs.build_key(push.repository, commit, rule.name),
        source=GitSourceSpec(url=push.clone_url.strip(), revision=commit, dir=context),
        config=config,
        substitutions=substitutions,
        tags=build_tags(the_run_id, rule.name),
        config_path=config_path,
    )


def load_build_config(path: str | Path) -> Mapping[str, Any]:
    """The Cloud Build config at ``path``, checked by :func:`config_problems`; :class:`ConfigError` naming the
    file and every problem. Cached per file version (configs do not change while a process runs)."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError as error:
        raise ConfigError(f"build config {file}: cannot be read ({error.strerror})") from None
    return _load(str(file), stat.st_mtime_ns, stat.st_size)


def config_problems(config: Any) -> list[str]:
    """Every reason Cloud Build would refuse a push build made from ``config`` (empty when it is fine)."""
    if not isinstance(config, Mapping):
        return [f"must be a mapping (a cloudbuild.yaml), got {type(config).__name__}"]
    problems: list[str] = []
    steps = config.get("steps")
    if not isinstance(steps, list) or not steps:
        problems.append("steps: at least one build step is required")
    elif not all(isinstance(step, Mapping) and step.get("name") for step in steps):
        problems.append("steps: every step must be a mapping with a builder 'name'")
    if "source" in config:
        problems.append("source: must not be set: the push decides the source (its clone URL at its commit)")
    defaults = config.get("substitutions") or {}
    if not isinstance(defaults, Mapping):
        problems.append("substitutions: must be a mapping")
        defaults = {}
    for key in defaults:
        if not isinstance(key, str) or not _USER_KEY.fullmatch(key):
            problems.append(f"substitutions: {key!r} must start with '_' and use A-Z, 0-9 and '_'")
    images = config.get("images")
    if not isinstance(images, list) or not any(isinstance(i, str) and "_IMAGE" in i for i in images):
        problems.append("images: must list the built image by ${_IMAGE} (training finds it by its digest)")
    for tag in config.get("tags") or []:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            problems.append(f"tags: {tag!r} must match [\\w][\\w.-]{{0,127}}")
    options = config.get("options") or {}
    loose = isinstance(options, Mapping) and options.get("substitutionOption") == "ALLOW_LOOSE"
    if not loose:
        defined = set(OFFERED_SUBSTITUTIONS) | set(defaults) | CLOUD_BUILD_BUILTINS
        for name in sorted(referenced_substitutions(config) - defined):
            problems.append(
                f"${{{name}}} is neither a Cloud Build built-in, one of {list(OFFERED_SUBSTITUTIONS)}, nor "
                "defined under substitutions (write $$ for a literal $)"
            )
        for key in sorted(set(defaults) - referenced_substitutions(config)):
            problems.append(f"substitutions: {key} is never used (Cloud Build refuses unused substitutions)")
    return problems


def referenced_substitutions(config: Mapping[str, Any]) -> set[str]:
    """The variables ``config``'s templates refer to (``$NAME`` or ``${NAME}``; ``$$`` is a literal)."""
    names: set[str] = set()
    for text in _template_strings(config):
        for found in _REFERENCE.finditer(text):
            name = found.group(1) or found.group(2)
            if name:
                names.add(name)
    return names


@lru_cache(maxsize=32)
def _load(path: str, _mtime_ns: int, _size: int) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"build config {path}: cannot be loaded ({error})") from None
    problems = config_problems(document)
    if problems:
        raise ConfigError(f"build config {path} cannot build a pushed image", problems)
    return document  # type: ignore[no-any-return]  # config_problems checked it is a mapping


def _template_strings(node: Any, key: str = "") -> Iterator[str]:
    if key in _NOT_SUBSTITUTED:
        return
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for child_key, child in node.items():
            yield from _template_strings(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _template_strings(child)
