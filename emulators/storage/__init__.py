"""A Cloud Storage emulator that also plays Eventarc's part: it delivers ``object.v1.finalized`` CloudEvents.

Google's storage emulators (and fake-gcs-server) emit no notifications, so an object upload could never
trigger a function locally. This emulator serves the subset of the Cloud Storage JSON API that the
unmodified ``google-cloud-storage`` client uses, and after every successful object write (any upload
kind, copy, rewrite, compose) POSTs a ``google.cloud.storage.object.v1.finalized`` CloudEvent in binary
content mode to every URL routed for the bucket, the way an Eventarc trigger would.

Pointing the client at it
-------------------------
``STORAGE_EMULATOR_HOST`` must include the scheme: ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``.
``google-cloud-storage`` uses the variable verbatim as its API base URL (``_helpers.py`` says "Despite name,
includes scheme"); it builds ``{base}/storage/v1/...``, ``{base}/upload/storage/v1/...`` and
``{base}/download/storage/v1/...``. Without the scheme (``127.0.0.1:PORT``) every request fails in
``requests`` with ``InvalidSchema: No connection adapters were found``. With the variable set the client
needs no credentials (it falls back to ``AnonymousCredentials``); ``storage.Client(project=P,
credentials=AnonymousCredentials())`` and ``storage.Client.create_anonymous_client()`` both work.

State
-----
Buckets, object metadata, upload sessions and deliveries live in memory and are lost on exit. Object bytes
live in memory too, unless ``--data-dir DIR`` is given: then they are files under ``DIR/objects`` (one per
object generation, written through ``DIR/uploads`` while an upload is in flight), so large tarballs never
sit in RAM, and dead letters are appended to ``DIR/dead-letters.jsonl``. At start-up, leftover object and
upload files from a previous run are deleted (their metadata is gone); ``dead-letters.jsonl`` is kept.
``--project`` is the project of buckets created without one (the client sends ``<none>`` when it has no
project) and the project that ``buckets.list`` without a project lists.

Fidelity
--------
The ``ifGenerationMatch``/``ifGenerationNotMatch``/``ifMetagenerationMatch``/``ifMetagenerationNotMatch``
preconditions (and their ``ifSource...`` forms) are honoured; a failed one answers 412 (304 on reads).
Uploads are checked against the client's ``crc32c``/``md5Hash``. Downloads carry ``x-goog-hash:
crc32c=...,md5=...`` and ``x-goog-generation``. Object versioning, ACLs/IAM, batch requests, signed URLs and
the XML API are not emulated; unsupported list filters (``matchGlob``, ``includeTrailingDelimiter``) are
refused with 400 rather than ignored. Errors have the JSON API's shape (:mod:`.errors`).

Modules
-------
- :mod:`.service`: the WSGI application and its routes (buckets, object metadata, copy, rewrite, compose);
  :mod:`.uploads` and :mod:`.downloads`: media in and out;
- :mod:`.store`: buckets, objects and generations; :mod:`.model`: records, resources and preconditions;
  :mod:`.payloads`: object bytes in memory or on disk; :mod:`.wire`: request parsing and page tokens;
- :mod:`.events`: the finalized CloudEvent and its routes; :mod:`.delivery`: delivery with retries, backoff
  and dead letters;
- :mod:`.admin`: the ``/_emulator/`` endpoints (deliveries, dead letters, routes, reset, faults, latency)
  and :class:`StorageEmulatorAdmin`, their client; ``python -m emulators.storage``: :mod:`.__main__`.
"""

from __future__ import annotations

from emulators.storage.admin import StorageEmulatorAdmin
from emulators.storage.delivery import DeadLetterView, DeliveryPolicy, DeliveryView
from emulators.storage.events import FINALIZED, event_id, finalized_event
from emulators.storage.service import EmulatorConfig, StorageEmulator

__all__ = [
    "FINALIZED",
    "DeadLetterView",
    "DeliveryPolicy",
    "DeliveryView",
    "EmulatorConfig",
    "StorageEmulator",
    "StorageEmulatorAdmin",
    "event_id",
    "finalized_event",
]
