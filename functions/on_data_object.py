"""``on_data_object``: a new Cloud Storage object → validated, then quarantined or admitted to a batch.

Eventarc delivers the ``google.cloud.storage.object.v1.finalized`` CloudEvent (the storage emulator does the
same locally, in binary mode). Objects outside every configured dataset are acknowledged and ignored; the
rest go to :func:`shared.chain.data.handle_object`. Batches are closed by the reconciler
(:func:`shared.chain.data.close_due_batches`), or here at once when one is full.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.chain import data
from shared.errors import InvalidInput
from shared.events import STORAGE_FINALIZED, CloudEventInfo, storage_object
from shared.function import cloudevent_endpoint
from shared.runtime import Runtime


def handle(event: CloudEventInfo, payload: Any, runtime: Runtime) -> None:
    if event.type != STORAGE_FINALIZED:
        # The trigger filters on this type; anything else is a wiring mistake worth a record, not a retry.
        raise InvalidInput(
            "storage event", [f"type: expected {STORAGE_FINALIZED!r}, got {event.type[:200]!r}"]
        )
    data.handle_object(runtime, storage_object(payload), causation_id=event.id)


@functions_framework.http
def on_data_object(request: Any) -> tuple[str, int]:
    """Entry point: a storage ``finalized`` CloudEvent (binary or structured).

    An HTTP function so that our adapter reads the body (see ``shared.function``): every delivery ends
    handled, recorded as rejected (200), or answered 5xx for a retry, then the trigger's dead letter.
    """
    return cloudevent_endpoint("on_data_object", request, handle)
