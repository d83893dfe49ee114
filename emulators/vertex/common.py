"""Names, ids and validation shared by the Vertex AI services."""

from __future__ import annotations

import datetime as dt
import random
import re

from emulators.apiserver.errors import invalid

_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def numeric_id() -> str:
    """Vertex resource ids are 19-digit numbers."""
    return str(random.randint(10**18, 9 * 10**18))


def parse_parent(parent: str) -> tuple[str, str]:
    """``projects/P/locations/L`` → (P, L)."""
    parts = parent.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations" or not parts[1] or not parts[3]:
        raise invalid(f"Invalid parent {parent!r}: expected projects/PROJECT/locations/LOCATION")
    return parts[1], parts[3]


def parse_name(name: str, collection: str) -> tuple[str, str, str]:
    """``projects/P/locations/L/{collection}/ID`` → (P, L, ID)."""
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != collection:
        raise invalid(f"Invalid resource name {name!r}: expected projects/P/locations/L/{collection}/ID")
    return parts[1], parts[3], parts[5]


def validate_labels(labels: dict[str, str], where: str) -> None:
    """Labels as Google Cloud accepts them: lowercase keys and values, at most 64 entries."""
    if len(labels) > 64:
        raise invalid(f"{where}: at most 64 labels are allowed")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise invalid(
                f"{where}: label key {key!r} is invalid (lowercase letters, digits, '_' and '-', "
                "starting with a letter, at most 63 characters)"
            )
        if not _LABEL_VALUE.fullmatch(value):
            raise invalid(
                f"{where}: label value {value!r} of {key!r} is invalid (lowercase letters, digits, '_' "
                "and '-', at most 63 characters)"
            )
