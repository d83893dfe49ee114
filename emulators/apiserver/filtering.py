"""List filters in the AIP-160 style the Google APIs accept, evaluated against a resource's JSON mapping.

Supported: ``field op value`` with ``= != < <= > >= :``; ``AND``, ``OR``, ``NOT``/``-``, parentheses,
implicit AND between terms; a parenthesised ``OR`` list on the right (``tags=("a" OR "b")``); dotted
fields into maps and messages (``labels.team="ml"``, ``substitutions._ENV=prod``); ``:*`` for presence;
``*`` wildcards in ``=`` values; RFC 3339 times and numbers compared by value; a list field matches when
any element does. Field names may be snake_case or camelCase. Anything else is an ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from emulators.apiserver.errors import ApiError, invalid
from emulators.apiserver.tokens import TokenCursor

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op><=|>=|!=|=|<|>|:)|(?P<paren>[()])"""
    r"""|(?P<minus>-(?=[A-Za-z_(]))|(?P<word>[^\s()=<>!:"']+))"""
)
_OPS = ("=", "!=", "<", "<=", ">", ">=", ":")


Predicate = Callable[[Mapping[str, Any]], bool]


class _Parser(TokenCursor):
    def __init__(self, text: str) -> None:
        super().__init__(text, _TOKEN)

    def error(self, why: str) -> ApiError:
        return invalid(f'invalid filter "{self.text}": {why}')

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    def parse(self) -> Predicate:
        predicate = self.expression()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.take().text!r}")
        return predicate

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.is_word("OR"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda r: any(term(r) for term in terms))

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while True:
            token = self.peek()
            if token is None or (token.kind == "paren" and token.text == ")") or self.is_word("OR"):
                break
            if self.is_word("AND"):
                self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda r: all(term(r) for term in terms))

    def unary(self) -> Predicate:
        token = self.peek()
        if token is not None and (token.kind == "minus" or (token.kind == "word" and token.text == "NOT")):
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        if token is not None and token.kind == "paren" and token.text == "(":
            self.take()
            inner = self.expression()
            closing = self.take()
            if closing.text != ")":
                raise self.error("missing ')'")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.take()
        if name.kind != "word":
            raise self.error(f"expected a field name, got {name.text!r}")
        op = self.take()
        if op.kind != "op" or op.text not in _OPS:
            raise self.error(f"expected an operator after {name.text!r}")
        values: list[str] = []
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.take()
            values.append(self.value())
            while self.is_word("OR"):
                self.take()
                values.append(self.value())
            if self.take().text != ")":
                raise self.error("missing ')' after value list")
        else:
            values.append(self.value())
        path = name.text
        operator = op.text
        return lambda r: any(_compare(_lookup(r, path), operator, value) for value in values)

    def value(self) -> str:
        token = self.take()
        if token.kind not in ("string", "word"):
            raise self.error(f"expected a value, got {token.text!r}")
        return token.text


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


_MISSING = object()


def _lookup(resource: Mapping[str, Any], path: str) -> Any:
    current: Any = resource
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return _MISSING
        if part in current:
            current = current[part]
        elif _snake(part) in current:
            current = current[_snake(part)]
        else:
            return _MISSING
    return current


def _as_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(actual: Any, operator: str, expected: str) -> bool:
    if actual is _MISSING or actual is None:
        return operator == "!="
    if isinstance(actual, list):
        if operator == "!=":
            return all(_compare(item, "!=", expected) for item in actual)
        return any(_compare(item, operator, expected) for item in actual)
    if isinstance(actual, Mapping):
        if operator == ":":
            return expected == "*" or expected in actual
        return False
    if operator == ":" and expected == "*":
        return actual not in ("", 0, False)
    if isinstance(actual, bool):
        actual = "true" if actual else "false"
    left_time = _as_time(actual) if isinstance(actual, str) else None
    right_time = _as_time(expected)
    left: Any
    right: Any
    if left_time is not None and right_time is not None:
        left, right = left_time, right_time
    elif _as_number(actual) is not None and _as_number(expected) is not None:
        left, right = _as_number(actual), _as_number(expected)
    else:
        left, right = str(actual), expected
    if operator == "=":
        if isinstance(left, str) and "*" in right:
            return fnmatch.fnmatchcase(left, right)
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if operator == ":":
        return str(right) in str(left) if isinstance(left, str) else bool(left == right)
    try:
        if operator == "<":
            return bool(left < right)
        if operator == "<=":
            return bool(left <= right)
        if operator == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def compile_filter(text: str) -> Predicate:
    """Parse ``text`` once; the predicate takes a resource's JSON mapping (an empty filter matches all)."""
    if not text or not text.strip():
        return lambda _: True
    return _Parser(text).parse()
