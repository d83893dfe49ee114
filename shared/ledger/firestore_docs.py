"""How :class:`~shared.ledger.firestore.FirestoreLedger` maps the ledger's values to Firestore documents and
back (the layout is described in :mod:`shared.ledger.firestore`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.ledger import rules
from shared.ledger.model import (
    IdempotencyRecord,
    RecordState,
    RejectedEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StoredDoc,
    canonical_json,
)

if TYPE_CHECKING:
    from google.cloud.firestore_v1.base_document import DocumentSnapshot
    from google.cloud.firestore_v1.document import DocumentReference

    _Snapshot = DocumentSnapshot[DocumentReference]


def _version(update_time: Any) -> str:
    """A document's ``update_time`` (a ``DatetimeWithNanoseconds``) as the text ``put_doc`` takes back."""
    return str(update_time.rfc3339())


def _stored_doc(collection: str, snapshot: _Snapshot) -> StoredDoc:
    doc = _fields(snapshot)
    return StoredDoc(
        collection=collection,
        doc_id=str(doc["doc_id"]),
        data=rules.load_object(str(doc["data_json"])),
        version=_version(snapshot.update_time),
        updated_at=rules.as_utc(doc["updated_at"]),
    )


def _fields(snapshot: _Snapshot) -> dict[str, Any]:
    data = snapshot.to_dict()
    if data is None:
        raise LookupError(f"document {snapshot.reference.path} does not exist")
    return data


def _record_from(snapshot: _Snapshot) -> IdempotencyRecord | None:
    return _record_from_doc(_fields(snapshot)) if snapshot.exists else None


def _step_from(snapshot: _Snapshot) -> Step | None:
    return _step_from_doc(_fields(snapshot)) if snapshot.exists else None


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else rules.as_utc(value)


def _record_to_doc(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "payload_hash": record.payload_hash,
        "state": record.state.value,
        "token": record.token,
        "attempt": record.attempt,
        "lease_expires_at": record.lease_expires_at,
        "expires_at": record.expires_at,
        "ttl_seconds": record.ttl_seconds,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "result_json": None if record.result is None else canonical_json(record.result),
    }


def _record_from_doc(doc: dict[str, Any]) -> IdempotencyRecord:
    result_json = doc.get("result_json")
    return IdempotencyRecord(
        key=str(doc["key"]),
        payload_hash=str(doc["payload_hash"]),
        state=RecordState(doc["state"]),
        token=str(doc["token"]),
        attempt=int(doc["attempt"]),
        lease_expires_at=rules.as_utc(doc["lease_expires_at"]),
        expires_at=rules.as_utc(doc["expires_at"]),
        ttl_seconds=float(doc["ttl_seconds"]),
        created_at=rules.as_utc(doc["created_at"]),
        updated_at=rules.as_utc(doc["updated_at"]),
        result=None if result_json is None else rules.load_object(str(result_json)),
    )


def _run_to_doc(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "cause_json": canonical_json(run.cause),
        "labels": dict(run.labels),
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


def _run_from_doc(doc: dict[str, Any], steps: tuple[Step, ...]) -> Run:
    return Run(
        run_id=str(doc["run_id"]),
        status=RunStatus(doc["status"]),
        cause=rules.load_object(str(doc["cause_json"])),
        labels={str(k): str(v) for k, v in (doc.get("labels") or {}).items()},
        started_at=rules.as_utc(doc["started_at"]),
        updated_at=rules.as_utc(doc["updated_at"]),
        finished_at=_optional_utc(doc.get("finished_at")),
        steps=steps,
    )


def _step_to_doc(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": step.status.value,
        "started_at": step.started_at,
        "updated_at": step.updated_at,
        "finished_at": step.finished_at,
        "detail_json": canonical_json(step.detail),
    }


def _step_from_doc(doc: dict[str, Any]) -> Step:
    return Step(
        name=str(doc["name"]),
        status=StepStatus(doc["status"]),
        started_at=rules.as_utc(doc["started_at"]),
        updated_at=rules.as_utc(doc["updated_at"]),
        finished_at=_optional_utc(doc.get("finished_at")),
        detail=rules.load_object(str(doc.get("detail_json") or "{}")),
    )


def _rejected_from_doc(doc: dict[str, Any]) -> RejectedEvent:
    text = str(doc["payload_text"])
    return RejectedEvent(
        event_id=str(doc["event_id"]),
        reason=str(doc["reason"]),
        problems=tuple(str(p) for p in doc.get("problems") or ()),
        source=str(doc["source"]),
        payload=rules.load_object(text) if doc.get("payload_is_json") else text,
        payload_truncated=bool(doc.get("payload_truncated")),
        recorded_at=rules.as_utc(doc["recorded_at"]),
    )
