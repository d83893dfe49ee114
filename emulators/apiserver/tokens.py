"""Tokenizing and walking the small filter languages the emulated APIs accept (AIP-160 list filters,
Cloud Monitoring filters): one regex with named groups per language, shared mechanics here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emulators.apiserver.errors import ApiError


@dataclass(frozen=True)
class Token:
    kind: str  # the name of the regex group that matched (string, op, paren, word, ...)
    text: str  # for strings: unquoted and unescaped


def tokenize(text: str, pattern: re.Pattern[str], error: Callable[[str], ApiError]) -> list[Token]:
    """Split ``text`` with ``pattern`` (alternatives as named groups; a ``string`` group is unquoted)."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        found = pattern.match(text, position)
        if found is None or found.end() == position:
            raise error(f"unexpected text at position {position}")
        kind = found.lastgroup or "word"
        value = found.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value))
        position = found.end()
    return tokens


class TokenCursor:
    """A recursive-descent parser's position in a token list; ``error`` builds the INVALID_ARGUMENT."""

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self.text = text
        self.tokens = tokenize(text, pattern, self.error)
        self.index = 0

    def error(self, why: str) -> ApiError:
        raise NotImplementedError  # each language words its errors as its real API does

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, end_message: str = "unexpected end") -> Token:
        token = self.peek()
        if token is None:
            raise self.error(end_message)
        self.index += 1
        return token
