"""Page tokens for list methods: an opaque offset, as stable as the list order."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from emulators.apiserver.errors import invalid

T = TypeVar("T")


def page(items: Sequence[T], page_size: int, page_token: str, default_size: int = 50) -> tuple[list[T], str]:
    """One page of ``items`` and the token of the next page ("" when this is the last one)."""
    if page_size < 0:
        raise invalid("page_size must not be negative")
    start = 0
    if page_token:
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode()).decode().removeprefix("offset:"))
        except ValueError as error:
            raise invalid(f"invalid page_token {page_token!r}") from error
    size = page_size or default_size
    chunk = list(items[start : start + size])
    end = start + size
    token = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return chunk, token
