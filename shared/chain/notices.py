"""Notifications the chain's stages emit: one helper so every stage fills the same fields the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.chain.contracts import NOTIFICATION
from shared.steps import Emit


def notice(
    kind: str,
    title: str,
    *,
    severity: str = "info",
    text: str = "",
    model: str = "",
    context: Mapping[str, Any] | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> Emit:
    """A ``notification`` event (see docs/events.md): ``kind`` such as ``build.failed``, labelled by model."""
    return Emit(
        NOTIFICATION,
        {
            "kind": kind,
            "severity": severity,
            "title": title,
            "text": text,
            "labels": {"model": model} if model else {},
            "context": {**({"model": model} if model else {}), **dict(context or {})},
            "links": [{"title": label, "url": url} for label, url in links],
        },
    )
