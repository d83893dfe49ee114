"""The real Google clients, created lazily on first use and shared per process.

Nothing here is imported or created at module import time: ``google.cloud.aiplatform_v1`` alone costs
seconds of cold start, and a function that never trains should never pay for it.

Endpoints: the official emulators' variables (``PUBSUB_EMULATOR_HOST``, ``FIRESTORE_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``) are honoured by the client libraries themselves; for the APIs Google ships no
emulator for, this module is the one place that reads ``CLOUDBUILD_EMULATOR_HOST``, ``VERTEX_EMULATOR_HOST``,
``RUN_EMULATOR_HOST`` and ``MONITORING_EMULATOR_HOST`` (``host:port``) and points the client at it over REST
with anonymous credentials (gRPC on an insecure channel for Monitoring, whose client has no REST transport).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_cache: dict[str, Any] = {}
_lock = threading.RLock()


def project_id() -> str:
    """The Google Cloud project, from ``GOOGLE_CLOUD_PROJECT`` (or ``GCLOUD_PROJECT``)."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    if not project:
        from shared.config import get_config

        project = get_config().project
    return project


def _cached(name: str, factory: Callable[[], T]) -> T:
    with _lock:
        if name not in _cache:
            _cache[name] = factory()
        client: T = _cache[name]
        return client


def reset() -> None:
    """Forget every client (tests, or after the environment changed)."""
    with _lock:
        _cache.clear()


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def emulator_options(variable: str) -> dict[str, Any] | None:
    """Client keyword arguments that reach the emulator named by ``variable``, or None in the cloud."""
    host = os.environ.get(variable)
    if not host:
        return None
    endpoint = host if host.startswith(("http://", "https://")) else f"http://{host}"
    return {"client_options": {"api_endpoint": endpoint}, "transport": "rest", "credentials": _anonymous()}


def publisher() -> Any:
    def make() -> Any:
        from google.cloud.pubsub_v1 import PublisherClient
        from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

        # Ordering keys (rollout events per service) need ordering enabled on the client; messages without a
        # key are unaffected. One message per batch: every publish of ours is awaited before the function
        # answers, so the client's default wait for more messages (10 ms) would only add to each event's
        # latency (measured: ~20 ms per publish against ~8 ms without it).
        return PublisherClient(
            batch_settings=BatchSettings(max_messages=1),
            publisher_options=PublisherOptions(enable_message_ordering=True),
        )

    return _cached("publisher", make)


def subscriber() -> Any:
    def make() -> Any:
        from google.cloud.pubsub_v1 import SubscriberClient

        return SubscriberClient()

    return _cached("subscriber", make)


def firestore() -> Any:
    def make() -> Any:
        from google.cloud import firestore as firestore_module

        if os.environ.get("FIRESTORE_EMULATOR_HOST"):
            return firestore_module.Client(project=project_id(), credentials=_anonymous())
        return firestore_module.Client(project=project_id())

    return _cached("firestore", make)


def storage() -> Any:
    def make() -> Any:
        from google.cloud.storage import Client

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return Client(project=project_id(), credentials=_anonymous())
        return Client(project=project_id())

    return _cached("storage", make)


def _api_client(name: str, variable: str, factory: Callable[..., Any]) -> Any:
    return _cached(name, lambda: factory(**(emulator_options(variable) or {})))


def cloud_build() -> Any:
    from google.cloud.devtools import cloudbuild_v1

    return _api_client("cloud_build", "CLOUDBUILD_EMULATOR_HOST", cloudbuild_v1.CloudBuildClient)


def vertex_jobs() -> Any:
    from google.cloud.aiplatform_v1.services.job_service import JobServiceClient

    return _api_client("vertex_jobs", "VERTEX_EMULATOR_HOST", JobServiceClient)


def vertex_pipelines() -> Any:
    from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient

    return _api_client("vertex_pipelines", "VERTEX_EMULATOR_HOST", PipelineServiceClient)


def vertex_models() -> Any:
    from google.cloud.aiplatform_v1.services.model_service import ModelServiceClient

    return _api_client("vertex_models", "VERTEX_EMULATOR_HOST", ModelServiceClient)


def run_services() -> Any:
    from google.cloud.run_v2.services.services import ServicesClient

    return _api_client("run_services", "RUN_EMULATOR_HOST", ServicesClient)


def run_revisions() -> Any:
    from google.cloud.run_v2.services.revisions import RevisionsClient

    return _api_client("run_revisions", "RUN_EMULATOR_HOST", RevisionsClient)


def monitoring() -> Any:
    """Monitoring's GAPIC client has no REST transport: locally it speaks gRPC on an insecure channel."""

    def make() -> Any:
        host = os.environ.get("MONITORING_EMULATOR_HOST")
        if host:
            return monitoring_emulator_client(host)
        from google.cloud.monitoring_v3.services.metric_service import MetricServiceClient

        return MetricServiceClient()

    return _cached("monitoring", make)


def monitoring_emulator_client(host: str) -> Any:
    """A ``MetricServiceClient`` for the emulator at ``host:port``: gRPC without TLS, no credentials."""
    import grpc
    from google.cloud.monitoring_v3.services.metric_service import MetricServiceClient
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    channel = grpc.insecure_channel(host.removeprefix("http://"))
    return MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
