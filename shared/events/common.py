"""What every event view shares: the error, bounded JSON parsing, and small readers for ids and labels."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import InvalidInput
from shared.events.limits import (
    MAX_ID_BYTES,
    MAX_JSON_DEPTH,
    MAX_LABEL_BYTES,
    MAX_LABEL_CHARS,
    MAX_LABELS,
)
from shared.problems import Reader

JSON = dict[str, Any]

#: The error every view raises: a payload that can never be understood (a permanent error, so the event is
#: recorded as rejected and acknowledged, not retried). The name predates the one error model.
InvalidEvent = InvalidInput


def invalid(what: str) -> Callable[[list[str]], InvalidInput]:
    """The ``raise_if_any`` factory for a view of ``what`` (``"GitHub push"``)."""
    return functools.partial(InvalidInput, what)


def parse_json(
    raw: bytes | str,
    *,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "JSON document",
    field: str = "(body)",
) -> Any:
    """Parse ``raw`` as JSON, raising only :class:`InvalidInput` (naming ``field``) whatever it holds.

    Bounded explicitly: more than ``max_bytes`` is refused before parsing, nesting deeper than
    ``max_depth`` after (the C parser's own recursion guard, a ``RecursionError`` near 1,000 levels, is
    caught too); ``NaN``/``Infinity`` (not JSON), integers too long to convert, and strings holding a lone
    UTF-16 surrogate (I-JSON, RFC 7493: no client library can send them on) are refused as well.
    """
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise InvalidInput(what, [f"{field}: at most {max_bytes} bytes, got {size}"])
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidInput(what, [f"{field}: JSON nested deeper than {max_depth} levels"]) from None
    except json.JSONDecodeError as error:
        raise InvalidInput(what, [f"{field}: not JSON ({error.msg} at {error.pos})"]) from None
    except ValueError as error:  # undecodable bytes, NaN, an integer over Python's digit limit
        raise InvalidInput(what, [f"{field}: not JSON ({error})"]) from None
    check_json_value(value, max_depth=max_depth, what=what, field=field)
    return value


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH, what: str, field: str) -> None:
    """Refuse a parsed JSON value nested deeper than ``max_depth`` or holding a lone surrogate.

    Iterative (an explicit stack), so a value of any depth is measured without recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                raise InvalidInput(what, [f"{field}: a string holds a lone UTF-16 surrogate"])
            continue
        if isinstance(node, Mapping):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth + 1 > max_depth:
            raise InvalidInput(what, [f"{field}: JSON nested deeper than {max_depth} levels"])
        stack.extend((child, depth + 1) for child in children)


def _encodable(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (which no UTF-8 encoder, so no client library, accepts).

    ``isascii`` is a flag check in CPython; strict encoding is a fast C loop, far cheaper than a regex.
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def strings(values: Any) -> tuple[str, ...]:
    """The strings of a list (anything else dropped); () when it is not a list."""
    if not isinstance(values, list):
        return ()
    return tuple(value for value in values if isinstance(value, str))


def identifier(reader: Reader, key: str, *, required: bool = True) -> str:
    """An id that may become a ledger key: a string of at most :data:`MAX_ID_BYTES` bytes."""
    return reader.string(key, "", required=required, max_bytes=MAX_ID_BYTES)


def labels(reader: Reader, key: str) -> dict[str, str]:
    """A map of Google Cloud labels, within their documented limits (64 entries, 63 characters, 128 bytes)."""
    return reader.string_map(
        key,
        max_entries=MAX_LABELS,
        max_key_bytes=MAX_LABEL_BYTES,
        max_value_bytes=MAX_LABEL_BYTES,
        max_chars=MAX_LABEL_CHARS,
    )
