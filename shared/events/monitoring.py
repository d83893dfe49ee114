"""Drift alerts: a Cloud Monitoring incident notification (webhook or Pub/Sub channel, schema version 1.2),
or a plain alert ``{"model", "metric", "value", "threshold"}`` that any monitor can publish."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.common import identifier, invalid, labels
from shared.events.limits import MAX_LABELS, MAX_METRIC_LABEL_KEY_BYTES, MAX_METRIC_LABEL_VALUE_BYTES
from shared.problems import Problems, Reader


@dataclass(frozen=True)
class DriftAlert:
    """A Cloud Monitoring incident notification (webhook / Pub/Sub channel, schema version 1.2), or a plain
    alert read into the same shape (``declared_model`` set, state ``open`` unless it says ``closed``)."""

    incident_id: str
    state: str
    policy_name: str
    condition_name: str
    metric_type: str
    resource_labels: Mapping[str, str]
    metric_labels: Mapping[str, str]
    policy_labels: Mapping[str, str]
    observed_value: str
    threshold_value: str
    started_at: datetime | None
    summary: str
    url: str
    raw: Mapping[str, Any] = field(repr=False)
    declared_model: str = ""  # a plain alert names its model outright
    #: the monitored resource's own user labels (``incident.metadata.user_labels``, schema 1.2)
    resource_user_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.state.lower() == "open"

    @property
    def model(self) -> str:
        """The model the alert is about: named by a plain alert, else a ``model`` label on the policy, metric
        or resource (its type labels, then its user labels)."""
        if self.declared_model:
            return self.declared_model
        owners = (self.policy_labels, self.metric_labels, self.resource_labels, self.resource_user_labels)
        for found in owners:
            for key in ("model", "model_id", "model_name"):
                if found.get(key):
                    return found[key]
        return ""


def _monitoring_labels(owner: Reader) -> dict[str, str]:
    """Metric and monitored-resource labels: Monitoring's limits, not those of resource labels."""
    return owner.string_map(
        "labels",
        max_entries=MAX_LABELS,
        max_key_bytes=MAX_METRIC_LABEL_KEY_BYTES,
        max_value_bytes=MAX_METRIC_LABEL_VALUE_BYTES,
    )


def drift_alert(body: Any, *, default_id: str = "") -> DriftAlert:
    """A Monitoring incident notification (``{"incident": {...}, "version": "1.2"}``) or a plain alert.

    A plain alert is an object with a ``model`` and no ``incident``: ``{"model", "metric", "value",
    "threshold"}`` (required), optionally ``id`` and ``state`` (``open`` or ``closed``; default ``open``).
    Without an ``id`` its id is ``default_id`` (the Pub/Sub message id, so a redelivery is the same alert).
    """
    if isinstance(body, Mapping) and "incident" not in body and "model" in body:
        return _plain_alert(body, default_id)
    problems = Problems()
    incident = problems.reader(body).child("incident", required=True)
    incident_id = identifier(incident, "incident_id")
    state = incident.string("state", "", required=True)
    if state and state.lower() not in ("open", "closed"):
        incident.add("state", f"expected open or closed, got {state[:40]!r}")
    metric = incident.child("metric")

    alert = DriftAlert(
        incident_id=incident_id,
        state=state,
        policy_name=incident.string("policy_name", ""),
        condition_name=incident.string("condition_name", ""),
        metric_type=metric.string("type", ""),
        resource_labels=_monitoring_labels(incident.child("resource")),
        metric_labels=_monitoring_labels(metric),
        policy_labels=labels(incident, "policy_user_labels"),
        observed_value=incident.string("observed_value", ""),
        threshold_value=incident.string("threshold_value", ""),
        started_at=incident.timestamp("started_at"),
        summary=incident.string("summary", ""),
        url=incident.string("url", ""),
        raw=body,
        resource_user_labels=labels(incident.child("metadata"), "user_labels"),
    )
    problems.raise_if_any(invalid("drift alert"))
    return alert


def _plain_alert(body: Mapping[str, Any], default_id: str) -> DriftAlert:
    problems = Problems()
    reader = problems.reader(body)
    alert_id = identifier(reader, "id", required=False) or default_id
    if not alert_id:
        reader.add("id", "required when the delivery carries no message id")
    state = reader.string("state", "open")
    if state.lower() not in ("open", "closed"):
        reader.add("state", f"expected open or closed, got {state[:40]!r}")
    model = identifier(reader, "model")
    metric = reader.string("metric", "", required=True, max_bytes=MAX_METRIC_LABEL_VALUE_BYTES)
    value, threshold = (_plain_number(reader, key) for key in ("value", "threshold"))
    alert = DriftAlert(
        incident_id=alert_id,
        state=state,
        policy_name="",
        condition_name="",
        metric_type=metric,
        resource_labels={},
        metric_labels={},
        policy_labels={},
        observed_value=format(value, ".12g"),
        threshold_value=format(threshold, ".12g"),
        started_at=reader.timestamp("time"),
        summary=reader.string("summary", "", max_bytes=MAX_METRIC_LABEL_VALUE_BYTES),
        url="",
        raw=body,
        declared_model=model,
    )
    problems.raise_if_any(invalid("drift alert"))
    return alert


def _plain_number(reader: Reader, key: str) -> float:
    """A required finite number; a decimal string is accepted too, as Monitoring writes its values."""
    raw = reader.get(key)
    if raw is None or raw == "":
        reader.add(key, "required")
        return 0.0
    if isinstance(raw, str) and len(raw) <= 64:
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        reader.add(key, f"must be a finite number, got {raw[:40]!r}")
        return 0.0
    return reader.number(key, 0.0)
