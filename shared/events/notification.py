"""The ``notification`` event: what happened, how bad it is, and the run context to render for people.

Moved here from ``shared.notify`` so that every event view lives in one package; ``shared.notify`` (what
channels want it, how it is rendered and delivered) imports it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import SEVERITIES
from shared.events.common import invalid, labels
from shared.events.envelope import Envelope
from shared.events.limits import MAX_NAME_BYTES
from shared.problems import Problems, Reader, shown

NOTIFICATION_TYPE = "notification"

#: The context fields shown as facts, in this order, when present.
FACT_KEYS = ("repo", "branch", "commit", "build_id", "model", "version", "service", "revision", "traffic")


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Action:
    """A button a person can press on the notification (``approval.requested``: approve / reject); the
    channel renders it and the click comes back to ``on_chat_approval`` with ``parameters``."""

    name: str
    title: str
    style: str  # primary | danger | "" (Slack button styles)
    parameters: Mapping[str, str]


#: At most this many buttons on one notification (Slack allows 25 elements in an actions block).
MAX_ACTIONS = 5


@dataclass(frozen=True)
class Notification:
    run_id: str
    event_id: str
    kind: str
    severity: str
    title: str
    text: str
    labels: Mapping[str, str]
    context: Mapping[str, Any]
    links: tuple[Link, ...]
    envelope: Envelope = field(repr=False)
    actions: tuple[Action, ...] = ()

    def facts(self) -> dict[str, str]:
        """The well-known context fields present, in a stable order, plus metrics."""
        facts = {key: str(self.context[key]) for key in FACT_KEYS if self.context.get(key) not in (None, "")}
        metrics = self.context.get("metrics")
        if isinstance(metrics, Mapping):
            for name, value in metrics.items():
                facts[f"metric {name}"] = f"{value:.4g}" if isinstance(value, float) else str(value)
        return facts


def parse_notification(envelope: Envelope) -> Notification:
    """Validate the data of a ``notification`` event; every problem is listed."""
    problems = Problems()
    if envelope.type != NOTIFICATION_TYPE:
        problems.add("type", f"expected {NOTIFICATION_TYPE!r}, got {shown(envelope.type)}")
    data = problems.reader(envelope.data, "data")
    kind = data.string("kind", "", max_bytes=MAX_NAME_BYTES)
    if not kind and data.get("kind") in (None, ""):
        data.add("kind", "required (e.g. 'build.failed')")
    severity = data.get("severity")
    if severity is None:
        severity = "info"
    elif not isinstance(severity, str) or severity not in SEVERITIES:
        data.add("severity", f"{shown(severity)} is not one of {', '.join(SEVERITIES)}")
    title = data.string("title", "", required=True)
    text = data.string("text", "")
    found_labels = labels(data, "labels")
    context = data.mapping("context")
    links: list[Link] = []
    for index, item in enumerate(data.sequence("links")):
        url = item.get("url") if isinstance(item, Mapping) else None
        if isinstance(url, str) and url:
            title_of_link = item.get("title")
            links.append(
                Link(title_of_link if isinstance(title_of_link, str) and title_of_link else url, url)
            )
        else:
            problems.add(f"data.links[{index}]", "must be an object with a url")
    actions = [_action(item) for item in data.items("actions")]
    if len(actions) > MAX_ACTIONS:
        data.add("actions", f"at most {MAX_ACTIONS} actions, got {len(actions)}")
    problems.raise_if_any(invalid("notification"))
    return Notification(
        run_id=envelope.run_id,
        event_id=envelope.event_id,
        kind=kind,
        severity=str(severity),
        title=title,
        text=text,
        labels=found_labels,
        context=dict(context),
        links=tuple(links),
        envelope=envelope,
        actions=tuple(actions[:MAX_ACTIONS]),
    )


def _action(item: Reader) -> Action:
    style = item.string("style", "")
    if style not in ("", "primary", "danger"):
        item.add("style", f"{shown(style)} is not one of primary, danger")
    return Action(
        name=item.string("name", "", required=True, max_bytes=MAX_NAME_BYTES),
        title=item.string("title", "", required=True, max_bytes=MAX_NAME_BYTES),
        style=style if style in ("primary", "danger") else "",
        parameters=item.string_map("parameters", max_entries=10, max_value_bytes=512),
    )
