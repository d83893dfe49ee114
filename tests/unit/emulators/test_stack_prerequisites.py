"""The stack explains what to install when Java or an emulator component is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.common.proc import StackError, free_port, port_open
from emulators.stack import official

pytestmark = pytest.mark.unit


def test_missing_emulator_component_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official.sdk_root.cache_clear()
    monkeypatch.setenv("CLOUDSDK_ROOT", str(tmp_path))
    try:
        with pytest.raises(StackError, match=r"Pub/Sub emulator not found .*gcloud components install"):
            official.pubsub_launcher()
        with pytest.raises(StackError, match=r"Firestore emulator not found .*cloud-firestore-emulator"):
            official.firestore_launcher()
    finally:
        official.sdk_root.cache_clear()


def test_missing_java_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA", "/nonexistent/java-for-test")
    with pytest.raises(StackError, match=r"Java is not installed.*openjdk-17-jre-headless"):
        official.require_java()


def test_free_port_is_on_loopback_and_free() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not port_open("127.0.0.1", port)
