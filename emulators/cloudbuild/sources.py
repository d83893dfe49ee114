"""Fetch a build's source into its workspace, as Cloud Build does before the first step.

- ``storage_source``: a ``.tar.gz`` (what ``gcloud builds submit`` uploads) or ``.zip`` object, read from the
  storage emulator (``STORAGE_EMULATOR_HOST``) with the real ``google-cloud-storage`` client.
- ``git_source``: a local repository path or ``file://`` URL, cloned and checked out at ``revision`` (branch,
  tag or commit; default ``HEAD``); ``dir`` selects the folder the steps run in.
Other source kinds are refused when the build is created (see ``service.py``).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


class SourceError(RuntimeError):
    """The source cannot be fetched; the message is the build's failure detail."""


@dataclass
class GitRevision:
    commit: str
    branch: str = ""
    tag: str = ""
    substitutions: dict[str, str] = field(default_factory=dict)


def local_git_path(url: str) -> Path:
    """``file:///x/repo`` or ``/x/repo`` → a local path; any remote URL is refused (no network here)."""
    if url.startswith("file://"):
        path = Path(url[len("file://") :])
    elif "://" in url or url.startswith("git@"):
        raise SourceError(
            f"git source {url!r} is remote; the emulator only fetches local repositories "
            "(a path or file:// URL)"
        )
    else:
        path = Path(url)
    if not path.exists():
        raise SourceError(f"git source {url!r} does not exist")
    return path


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SourceError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def resolve_git(url: str, revision: str) -> GitRevision:
    """The commit ``revision`` names in the local repository at ``url``, and the built-ins it implies."""
    path = local_git_path(url)
    rev = revision or "HEAD"
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=path)
    branch = ""
    tag = ""
    if rev != commit and not commit.startswith(rev):
        if (
            subprocess.run(
                ["git", "show-ref", "--verify", "--quiet", f"refs/tags/{rev.removeprefix('refs/tags/')}"],
                cwd=str(path),
                check=False,
            ).returncode
            == 0
        ):
            tag = rev.removeprefix("refs/tags/")
        elif rev != "HEAD":
            branch = rev.removeprefix("refs/heads/")
    if rev == "HEAD":
        branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=path)
        branch = "" if branch == "HEAD" else branch
    repo_name = path.resolve().name.removesuffix(".git")
    subs = {"COMMIT_SHA": commit, "REPO_NAME": repo_name, "BRANCH_NAME": branch, "TAG_NAME": tag}
    return GitRevision(commit=commit, branch=branch, tag=tag, substitutions=subs)


def fetch_git(url: str, revision: str, workspace: Path) -> GitRevision:
    resolved = resolve_git(url, revision)
    path = local_git_path(url)
    if workspace.exists():
        shutil.rmtree(workspace)
    _git("clone", "--quiet", "--no-hardlinks", str(path), str(workspace))
    _git("-c", "advice.detachedHead=false", "checkout", "--quiet", resolved.commit, cwd=workspace)
    return resolved


def fetch_storage(bucket: str, name: str, generation: int, workspace: Path, project: str) -> int:
    """Download ``gs://bucket/name`` (optionally at ``generation``) and unpack it; returns the generation."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        raise SourceError("storage_source needs the storage emulator: STORAGE_EMULATOR_HOST is not set")
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    client = Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    blob = client.bucket(bucket).blob(name, generation=generation or None)
    try:
        data = blob.download_as_bytes()
    except exceptions.NotFound as error:
        raise SourceError(f"source object gs://{bucket}/{name} not found") from error
    except exceptions.GoogleAPICallError as error:
        raise SourceError(f"cannot read source gs://{bucket}/{name}: {error}") from error
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    target = (workspace / member).resolve()
                    if not target.is_relative_to(workspace.resolve()):
                        raise SourceError(f"source archive member {member!r} escapes the workspace")
                archive.extractall(workspace)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                archive.extractall(workspace, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        raise SourceError(f"source gs://{bucket}/{name} is not a .tar.gz or .zip archive: {error}") from error
    return int(blob.generation or 0)


def pack_source(source: Path) -> bytes:
    """A ``.tar.gz`` of ``source``'s contents, as ``gcloud builds submit`` uploads it (caches left out)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            archive.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return buffer.getvalue()
