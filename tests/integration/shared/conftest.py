"""A Firestore emulator per test module for the shared/ integration tests that need only Firestore (module
scope: its environment variables must not outlive the module, or they would shadow the live stack's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from emulators.stack import Stack, applied_env

PROJECT = "ledger-contract-test"


@pytest.fixture(scope="module")
def firestore_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[firestore.Client]:
    """The project's stack with just Firestore (the Cloud CLI's own launcher), stopped by process group."""
    stack = Stack(tmp_path_factory.mktemp("firestore"), project=PROJECT, components=["firestore"])
    state = stack.up(progress=lambda _line: None)
    try:
        with applied_env(state.env):
            client = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
            try:
                yield client
            finally:
                client.close()
    finally:
        stack.down(progress=lambda _line: None)
