"""Reading JSON API requests: raw paths, JSON bodies, integer arguments, page tokens, hash headers."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

from werkzeug.wrappers import Request

from emulators.storage.errors import bad_request, parse_error
from emulators.storage.payloads import BLOCK_SIZE

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MAX_LIST_RESULTS: Final = 1000


def raw_path(environ: WSGIEnvironment) -> str:
    """The request path still percent-encoded, so ``a%2Fb`` (one object name) differs from ``a/b``."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        path = urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0]
        return path or "/"
    return quote(str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace"))


def quote_name(name: str) -> str:
    return quote(name, safe="")


def json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise parse_error(f"request body is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise parse_error("request body must be a JSON object")
    return data


def drain(request: Request) -> None:
    """Read what is left of the request body, so the client is not cut off mid-send."""
    with contextlib.suppress(Exception):
        stream = request.stream
        while stream.read(BLOCK_SIZE):
            pass


def int_arg(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid value for {name}: {value!r} is not an integer") from None


def max_results_arg(args: Mapping[str, str]) -> int:
    value = int_arg(args, "maxResults")
    if value is None or value == 0:
        return MAX_LIST_RESULTS
    if value < 0:
        raise bad_request(f"Invalid value for maxResults: {value}")
    return min(value, MAX_LIST_RESULTS)


# Page tokens name the last entry of the page (GCS's do too), not an offset: a client that deletes what it
# has listed before asking for the next page (``for blob in bucket.list_blobs(): blob.delete()``) would
# skip entries if the next page started at a count.


def encode_token(data: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise bad_request(f"Invalid pageToken {token!r}") from None
    if not isinstance(data, dict):
        raise bad_request(f"Invalid pageToken {token!r}")
    return data


def parse_x_goog_hash(value: str | None) -> dict[str, str]:
    """``crc32c=AAAAAA==,md5=...`` -> ``{"crc32c": ..., "md5": ...}``."""
    hashes: dict[str, str] = {}
    for item in (value or "").split(","):
        key, sep, digest = item.strip().partition("=")
        if sep:
            hashes[key.strip().lower()] = digest.strip()
    return hashes


def base_url(request: Request) -> str:
    """Where the client reached us: the prefix of ``selfLink``, ``mediaLink`` and upload session URLs."""
    return request.host_url.rstrip("/")
