"""The Cloud Monitoring filter language, as far as ListTimeSeries needs it.

Supported: comparisons ``SELECTOR = VALUE``, ``!=`` and ``:`` (has substring) where SELECTOR is
``metric.type``, ``resource.type``, ``project``, ``metric.labels.KEY`` / ``metric.label.KEY`` or
``resource.labels.KEY`` / ``resource.label.KEY``; VALUE is a quoted string, a number or one of the functions
``starts_with("…")``, ``ends_with("…")``, ``has_substring("…")``, ``one_of("…", …)`` and
``monitoring.regex.full_match("…")``; ``AND``, ``OR``, ``NOT`` and parentheses. The filter must name a
metric type (``metric.type = "…"``), as the real API requires. Anything else → INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emulators.apiserver.errors import ApiError, invalid
from emulators.apiserver.tokens import Token, TokenCursor
from emulators.monitoring.store import SeriesKey

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|=|:)|(?P<punct>[(),])"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_./-]*|-?\d+(?:\.\d+)?))"""
)

Predicate = Callable[[SeriesKey, str], bool]  # (series, project id) → matches
Matcher = Callable[[str], bool]

_FUNCTIONS = {"starts_with", "ends_with", "has_substring", "one_of", "monitoring.regex.full_match"}


@dataclass
class Filter:
    text: str
    predicate: Predicate
    metric_types: set[str]  # types named with "=" (or one_of) — the ones the filter can match

    def __call__(self, key: SeriesKey, project: str) -> bool:
        return self.predicate(key, project)


def _selector_value(selector: str, key: SeriesKey, project: str) -> str | None:
    if selector == "metric.type":
        return key.metric_type
    if selector == "resource.type":
        return key.resource_type
    if selector == "project":
        return project
    for prefix in ("metric.labels.", "metric.label."):
        if selector.startswith(prefix):
            return key.metric_label(selector[len(prefix) :])
    for prefix in ("resource.labels.", "resource.label."):
        if selector.startswith(prefix):
            return key.resource_label(selector[len(prefix) :])
    raise AssertionError(selector)


def _valid_selector(selector: str) -> bool:
    if selector in ("metric.type", "resource.type", "project"):
        return True
    return bool(re.fullmatch(r"(?:metric|resource)\.labels?\.[A-Za-z_][A-Za-z0-9_]*", selector))


class _Parser(TokenCursor):
    def __init__(self, text: str) -> None:
        super().__init__(text, _TOKEN)
        self.metric_types: set[str] = set()

    def error(self, why: str) -> ApiError:
        return invalid(f"The filter {self.text!r} is invalid: {why}.")

    def take(self, end_message: str = "unexpected end of filter") -> Token:
        return super().take(end_message)

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> None:
        token = self.take()
        if token.kind != kind or token.text != text:
            raise self.error(f"expected {text!r}, found {token.text!r}")

    def parse(self) -> Predicate:
        if not self.tokens:
            raise self.error("it is empty")
        result = self.expression(top=True)
        if self.peek() is not None:
            raise self.error(f"unexpected {self.take().text!r}")
        return result

    def expression(self, top: bool = False) -> Predicate:
        parts = [self.conjunction(top)]
        while self.keyword("OR"):
            parts.append(self.conjunction(False))
        if len(parts) == 1:
            return parts[0]
        return lambda key, project: any(part(key, project) for part in parts)

    def conjunction(self, top: bool) -> Predicate:
        parts = [self.unary(top)]
        while self.keyword("AND"):
            parts.append(self.unary(top))
        if len(parts) == 1:
            return parts[0]
        return lambda key, project: all(part(key, project) for part in parts)

    def unary(self, top: bool) -> Predicate:
        if self.keyword("NOT"):
            inner = self.unary(False)
            return lambda key, project: not inner(key, project)
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.take()
            inner = self.expression(False)
            self.expect("punct", ")")
            return inner
        return self.comparison(top)

    def comparison(self, top: bool) -> Predicate:
        token = self.take()
        if token.kind != "word" or not _valid_selector(token.text):
            raise self.error(
                f"{token.text!r} is not a supported selector (use metric.type, resource.type, project, "
                "metric.labels.KEY or resource.labels.KEY)"
            )
        selector = token.text
        operator = self.take()
        if operator.kind != "op":
            raise self.error(f"expected =, != or : after {selector}, found {operator.text!r}")
        matcher, literals = self.value(operator.text)
        if selector == "metric.type" and operator.text == "=":
            self.metric_types.update(literals)

        def compare(key: SeriesKey, project: str) -> bool:
            actual = _selector_value(selector, key, project)
            if operator.text == "!=":
                return actual is None or not matcher(actual)
            return actual is not None and matcher(actual)

        return compare

    def value(self, operator: str) -> tuple[Matcher, list[str]]:
        token = self.take()
        if token.kind == "string" or (token.kind == "word" and token.text not in _FUNCTIONS):
            literal = token.text
            if operator == ":":
                return (lambda actual: literal in actual), []
            return (lambda actual: actual == literal), [literal]
        if token.kind != "word":
            raise self.error(f"expected a value, found {token.text!r}")
        if operator == ":":
            raise self.error(f"{token.text}() cannot follow ':'")
        name = token.text
        self.expect("punct", "(")
        args: list[str] = []
        while True:
            arg = self.take()
            if arg.kind != "string":
                raise self.error(f"{name}() takes quoted strings, found {arg.text!r}")
            args.append(arg.text)
            closing = self.take()
            if closing.kind == "punct" and closing.text == ")":
                break
            if closing.kind != "punct" or closing.text != ",":
                raise self.error(f"expected ',' or ')' in {name}(), found {closing.text!r}")
        if name == "one_of":
            choices = set(args)
            return (lambda actual: actual in choices), list(args)
        if len(args) != 1:
            raise self.error(f"{name}() takes one argument")
        arg_value = args[0]
        if name == "starts_with":
            return (lambda actual: actual.startswith(arg_value)), []
        if name == "ends_with":
            return (lambda actual: actual.endswith(arg_value)), []
        if name == "has_substring":
            return (lambda actual: arg_value in actual), []
        try:
            pattern = re.compile(arg_value)
        except re.error as error:
            raise self.error(f"bad regular expression {arg_value!r}: {error}") from error
        return (lambda actual: pattern.fullmatch(actual) is not None), []


def parse_filter(text: str) -> Filter:
    """Compile a ListTimeSeries filter; it must name a metric type (``metric.type = "…"``)."""
    parser = _Parser(text.strip())
    predicate = parser.parse()
    if not parser.metric_types:
        raise invalid(
            f'The filter {text!r} is invalid: it must specify a metric type, as in metric.type = "TYPE".'
        )
    return Filter(text=text, predicate=predicate, metric_types=parser.metric_types)
