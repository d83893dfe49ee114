"""Per-channel escaping, so event data can never become markup: no mentions, no planted links.

Slack mrkdwn and Google Chat text both treat ``<…>`` as control sequences (``<!channel>``, ``<users/all>``,
``<https://x|label>``) and both document the same escape for literal text: ``&`` → ``&amp;``,
``<`` → ``&lt;``, ``>`` → ``&gt;``. Every value a template prints goes through the channel's escaper
(Jinja's ``finalize``), while the template's own literal text keeps its markup. Links are allowed only
with http(s) URLs, and the characters that would end a ``<url|label>`` early are percent-encoded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

SAFE_LINK_SCHEMES = frozenset({"http", "https"})

_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_markup(value: Any) -> Any:
    """Slack / Google Chat text escape for a value printed by a template (non-strings are left to Jinja)."""
    if isinstance(value, str):
        return value.translate(_MARKUP)
    return value


def no_escape(value: Any) -> Any:
    return value


def safe_url(url: str) -> str | None:
    """The URL made safe to place inside ``<url|label>``; None when it is not an absolute http(s) URL."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in SAFE_LINK_SCHEMES or not parts.netloc:
        return None
    # Characters that end or split link markup, and whitespace, are percent-encoded; the rest is kept.
    return quote(text, safe="/:?#[]@!$&'()*+,;=%-._~")
