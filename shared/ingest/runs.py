"""Run ids and idempotency keys, derived from the cause so every redelivery finds the same ones.

A run id follows the work from its cause to the model version: it goes into Cloud Build tags
(``run-<id>``), Vertex AI labels and display names, Model Registry labels and, later, Cloud Run revision
suffixes. So it keeps to the strictest of those rules: at most 63 characters of ``[a-z0-9-]`` (a Google Cloud
label value also allows ``_``, a revision name does not), starting with a letter, no ``--`` runs, no
trailing ``-``.

* ``push-<repository>-<commit>``: the repository slug and the first 12 hex digits of the commit (the
  ``git-commit`` label uses the same 12), so every hook for one commit of one repository shares a run;
* ``data-<dataset>-<batch>``: one coalesced batch of new data objects;
* ``drift-<model>-<window start>``: one debounce window of drift alerts, ``20261122t100000z``.

A name too long for the budget is cut and followed by 6 hex digits of its SHA-256, so two long names that
share a prefix still give different ids.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime

from shared.errors import InvalidInput

MAX_RUN_ID = 63
COMMIT_DIGITS = 12

_RUN_ID = re.compile(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,62}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_HASH_DIGITS = 6


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a well-formed run id (any cause)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def slug(text: str) -> str:
    """``text`` in lowercase ASCII letters and digits joined by single '-' ("" when nothing is left).

    Accents are dropped (``Données`` → ``donnees``), every other run of characters becomes one '-'.
    """
    if not isinstance(text, str):
        raise InvalidInput("run id part", [f"must be text, got {type(text).__name__}"])
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")


def push_run_id(repository: str, commit: str) -> str:
    """``push-<repository slug>-<first 12 hex of the commit>``."""
    sha = _commit(commit)
    return _compose("push", repository, sha[:COMMIT_DIGITS], what="repository")


def data_run_id(dataset: str, batch_id: str) -> str:
    """``data-<dataset slug>-<batch id slug>``."""
    batch = slug(batch_id)
    if not batch:
        raise InvalidInput("run id", [f"batch id {batch_id!r} has no letter or digit"])
    if len(batch) > 24:  # keep room for the dataset name; the hash keeps long batch ids distinct
        batch = _cut(batch, 24, batch_id)
    return _compose("data", dataset, batch, what="dataset")


def drift_run_id(model: str, window_start: datetime) -> str:
    """``drift-<model slug>-<window start, UTC, yyyymmddThhmmssZ in lowercase>``."""
    if not isinstance(window_start, datetime) or window_start.tzinfo is None:
        raise InvalidInput("run id", ["window start must be a timezone-aware datetime"])
    stamp = window_start.astimezone(UTC).strftime("%Y%m%dt%H%M%Sz")
    return _compose("drift", model, stamp, what="model")


def build_key(repository: str, commit: str, image: str) -> str:
    """The idempotency key of building ``image`` for ``commit`` of ``repository``: ``build/REPO/SHA/IMAGE``.

    The repository is compared without case (GitHub and GitLab names are case-insensitive) and the commit
    is the full SHA, so a redelivery, a second hook or the same commit pushed to another branch all land on
    one key, and two repositories never share one.
    """
    if not isinstance(repository, str) or not repository.strip():
        raise InvalidInput("build key", ["repository: required"])
    if not isinstance(image, str) or not image:
        raise InvalidInput("build key", ["image: required"])
    return f"build/{repository.strip().lower()}/{_commit(commit)}/{image}"


def _commit(commit: str) -> str:
    sha = commit.strip().lower() if isinstance(commit, str) else ""
    if not _COMMIT.fullmatch(sha):
        raise InvalidInput("run id", [f"commit {commit!r} is not a 40 or 64 hex digit object id"])
    if sha.strip("0") == "":
        raise InvalidInput("run id", ["commit is all zeros (a deleted ref has no commit)"])
    return sha


def _compose(kind: str, name: str, suffix: str, *, what: str) -> str:
    base = slug(name)
    if not base:
        # A name with no ASCII letter or digit (e.g. all CJK) still needs a stable, distinct id.
        base = "h" + _digest(name)
    room = MAX_RUN_ID - len(kind) - len(suffix) - 2
    if room < 1:
        raise InvalidInput("run id", [f"{what} suffix {suffix!r} leaves no room in {MAX_RUN_ID} characters"])
    if len(base) > room:
        base = _cut(base, room, name)
    run_id = f"{kind}-{base}-{suffix}"
    if not is_run_id(run_id):  # a guard on this module's own logic, not on input
        raise AssertionError(f"composed an invalid run id {run_id!r}")
    return run_id


def _cut(text: str, room: int, original: str) -> str:
    keep = max(room - _HASH_DIGITS - 1, 1)
    return f"{text[:keep].rstrip('-')}-{_digest(original)}"[:room].strip("-")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS]
