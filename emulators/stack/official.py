"""The official Google emulators shipped with the Cloud CLI: Pub/Sub and Firestore.

We start their own launchers rather than ``gcloud beta emulators ...``: the launchers skip gcloud's
Python start-up and component check, and start in about two seconds.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from emulators.common.proc import StackError

INSTALL_HINT = (
    "Install the Google Cloud CLI with its emulator components, e.g. "
    "`gcloud components install pubsub-emulator cloud-firestore-emulator` or, on Debian/Ubuntu, "
    "`apt-get install google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator`; "
    "both need Java 11+ (`apt-get install openjdk-17-jre-headless`)."
)


@functools.cache
def sdk_root() -> Path:
    """The Cloud CLI's installation root, as ``gcloud info`` reports it (``CLOUDSDK_ROOT`` overrides)."""
    override = os.environ.get("CLOUDSDK_ROOT")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise StackError(f"`gcloud` is not on PATH. {INSTALL_HINT}")
    try:
        output = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as error:
        raise StackError(f"`gcloud info` failed ({error}). {INSTALL_HINT}") from error
    if not output:
        raise StackError(f"`gcloud info` did not report the SDK root. {INSTALL_HINT}")
    return Path(output)


def require_java() -> None:
    if shutil.which(os.environ.get("JAVA", "java")) is None:
        raise StackError(
            "Java is not installed; the Pub/Sub and Firestore emulators need Java 11 or newer "
            "(`apt-get install openjdk-17-jre-headless`)."
        )


def pubsub_launcher() -> Path:
    path = sdk_root() / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not path.exists():
        raise StackError(f"Pub/Sub emulator not found at {path}. {INSTALL_HINT}")
    return path


def firestore_launcher() -> Path:
    path = sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    if not path.exists():
        raise StackError(f"Firestore emulator not found at {path}. {INSTALL_HINT}")
    return path


def pubsub_argv(host: str, port: int, project: str) -> list[str]:
    """The Pub/Sub emulator's own launcher, on ``host:port``, for ``project``."""
    require_java()
    return [str(pubsub_launcher()), f"--host={host}", f"--port={port}", f"--projects={project}"]


def firestore_argv(host: str, port: int, project: str) -> list[str]:
    """The Firestore emulator's own launcher (native mode), on ``host:port``, for ``project``."""
    require_java()
    return [str(firestore_launcher()), "start", f"--host={host}", f"--port={port}", f"--project_id={project}"]


def reset_firestore(host: str, project: str) -> None:
    """Delete every document in the emulator's default database (the emulator's own reset endpoint)."""
    import urllib.request

    request = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
