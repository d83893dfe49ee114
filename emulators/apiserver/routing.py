"""REST routes from the ``google.api.http`` rules the client libraries use.

A rule is ``{"method": "post", "uri": "/v1/{parent=projects/*/locations/*}/customJobs", "body": "..."}``
exactly as the generated ``transports/rest_base.py`` of each client lists it; :func:`compile_template` turns
the URI template into a regular expression whose groups are the request fields the path binds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A path segment never holds ``/``; ``:`` is excluded too so a custom verb (``.../models/1:listVersions``)
# cannot be swallowed by the resource id of a shorter rule.
_SEGMENT = r"[^/:]+"
_MULTI = r"[^:]+"
_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")


def _pattern_regex(pattern: str) -> str:
    parts = []
    for segment in pattern.split("/"):
        if segment == "*":
            parts.append(_SEGMENT)
        elif segment == "**":
            parts.append(_MULTI)
        else:
            parts.append(re.escape(segment))
    return "/".join(parts)


@dataclass(frozen=True)
class CompiledTemplate:
    template: str
    regex: re.Pattern[str]
    fields: tuple[str, ...] = field(default_factory=tuple)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: found.group(f"v{index}") for index, name in enumerate(self.fields)}


def compile_template(template: str) -> CompiledTemplate:
    """``/v1/{name=projects/*/builds/*}:cancel`` → regex with one group per bound field."""
    out: list[str] = []
    fields: list[str] = []
    position = 0
    for found in _VARIABLE.finditer(template):
        out.append(re.escape(template[position : found.start()]))
        pattern = found.group(2) or "*"
        out.append(f"(?P<v{len(fields)}>{_pattern_regex(pattern)})")
        fields.append(found.group(1))
        position = found.end()
    out.append(re.escape(template[position:]))
    return CompiledTemplate(template=template, regex=re.compile("".join(out)), fields=tuple(fields))


@dataclass(frozen=True)
class HttpRule:
    verb: str  # upper-case HTTP method
    template: CompiledTemplate
    body: str  # "" (no body), "*" (whole request) or a request field name


def rules_from_options(options: list[dict[str, str]]) -> list[HttpRule]:
    """The client's ``_get_http_options()`` list → compiled rules."""
    return [
        HttpRule(
            verb=option["method"].upper(),
            template=compile_template(option["uri"]),
            body=option.get("body", ""),
        )
        for option in options
    ]


def rest_rules(base_transport: type, method: str) -> list[HttpRule]:
    """Rules of ``method`` read from a generated ``_Base...RestTransport`` class (``_Base{method}``)."""
    holder = getattr(base_transport, f"_Base{method}", None)
    if holder is None:
        raise LookupError(f"{base_transport.__name__} has no REST rules for {method}")
    options: list[dict[str, str]] = holder._get_http_options()
    return rules_from_options(options)
