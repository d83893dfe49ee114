"""Cloud Monitoring: an incident notification (webhook or Pub/Sub channel, schema 1.2), a drift alert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.common import identifier, invalid, labels
from shared.events.limits import MAX_LABELS, MAX_METRIC_LABEL_KEY_BYTES, MAX_METRIC_LABEL_VALUE_BYTES
from shared.problems import Problems, Reader


@dataclass(frozen=True)
class DriftAlert:
    """A Cloud Monitoring incident notification (webhook / Pub/Sub channel, schema version 1.2)."""

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

    @property
    def is_open(self) -> bool:
        return self.state.lower() == "open"

    @property
    def model(self) -> str:
        """The model the alert is about: a ``model`` label on the policy, metric or resource."""
        for found in (self.policy_labels, self.metric_labels, self.resource_labels):
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


def drift_alert(body: Any) -> DriftAlert:
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
    )
    problems.raise_if_any(invalid("drift alert"))
    return alert
