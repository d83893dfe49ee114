"""The ``object.v1.finalized`` CloudEvent of an object write, and the routes that say where it goes.

Each event is sent in binary content mode, as Eventarc does: ``ce-specversion: 1.0``, ``ce-id`` (a UUIDv5
of ``bucket/name/generation``, so a re-send is recognisably the same event; see :func:`event_id`),
``ce-source: //storage.googleapis.com/projects/_/buckets/BUCKET``, ``ce-type``, ``ce-subject:
objects/NAME``, ``ce-time`` (the object's ``updated``), ``ce-bucket: BUCKET`` and ``Content-Type:
application/json``; the body is the object resource exactly as the JSON API returned it for the write.
Header values are sent verbatim except characters outside printable ASCII, which are percent-encoded as
UTF-8 (the CloudEvents HTTP binding's rule; HTTP headers cannot carry them raw).

Routes map a bucket to target URLs: ``{"BUCKET": ["http://127.0.0.1:PORT/on_data_object", ...]}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

FINALIZED: Final = "google.cloud.storage.object.v1.finalized"
_EVENT_NAMESPACE: Final = uuid.UUID("6f1b8f3e-5a52-4c55-9a43-0c6d1f6b2a10")


def event_id(bucket: str, name: str, generation: int | str) -> str:
    """The ``ce-id`` of the finalized event of one object generation: deterministic, so re-sends match."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{bucket}/{name}/{generation}"))


def header_value(text: str) -> str:
    """Percent-encode (UTF-8) what an HTTP header cannot carry: characters outside printable ASCII."""
    return "".join(c if " " <= c <= "~" else quote(c, safe="") for c in text)


def finalized_event(resource: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
    """Binary-mode CloudEvent headers and body of the ``finalized`` event of one object resource."""
    bucket = str(resource["bucket"])
    name = str(resource["name"])
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id(bucket, name, resource["generation"]),
        "ce-source": header_value(f"//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "ce-type": FINALIZED,
        "ce-subject": header_value(f"objects/{name}"),
        "ce-time": str(resource["updated"]),
        "ce-bucket": header_value(bucket),
        "Content-Type": "application/json",
    }
    return headers, json.dumps(resource).encode()


def parse_routes(data: Any, origin: str) -> dict[str, list[str]]:
    """Validate ``{"BUCKET": ["http://host:port/path", ...]}``; ``ValueError`` says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a JSON object mapping bucket names to lists of target URLs")
    routes: dict[str, list[str]] = {}
    for bucket, targets in data.items():
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"{origin}: bucket names must be non-empty strings")
        if not isinstance(targets, list):
            raise ValueError(f"{origin}: routes of bucket {bucket!r} must be a list of URLs")
        for target in targets:
            parts = urlsplit(target) if isinstance(target, str) else None
            if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(f"{origin}: route {target!r} of bucket {bucket!r} is not an http(s) URL")
        routes[bucket] = list(targets)
    return routes


def load_routes(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read routes file {path}: {error}") from None
    except ValueError as error:
        raise ValueError(f"routes file {path} is not JSON: {error}") from None
    return parse_routes(data, str(path))
