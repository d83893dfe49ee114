"""The server-side defaults the Cloud Run Admin API v2 fills into a Service, so a read shows what was applied.

From the v2 REST reference (``Service``, ``RevisionTemplate``, ``Container``, ``ResourceRequirements``,
``Probe``) and what the real API answers for a service created with an image only:

- ``ingress`` → ``INGRESS_TRAFFIC_ALL``; ``launch_stage`` → ``GA``;
- template ``timeout`` → 300 s, ``max_instance_request_concurrency`` → 80, ``scaling.max_instance_count``
  → 100;
- each container: ``ports`` → one port ``http1`` on 8080 (a port's missing name or number filled the same
  way); ``resources`` → limits ``cpu: 1000m``, ``memory: 512Mi`` with ``cpu_idle`` (when the caller sets
  ``resources``, only missing limits are filled: the reference says ``cpu_idle`` must then be set
  explicitly); ``startup_probe`` → a TCP probe on the container port, 240 s timeout and period, failure
  threshold 1; a probe the caller sets gets the documented defaults (1 s timeout, 10 s period, threshold 3,
  the container port).

A value the caller set is never replaced. The defaults are applied to every template before it is compared
with the current one, so resending what a read returned — or what was first sent — is no change.
"""

from __future__ import annotations

from typing import Any

from google.api import launch_stage_pb2
from google.cloud import run_v2

INGRESS_TRAFFIC_ALL = int(run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL)
LAUNCH_STAGE_GA = int(launch_stage_pb2.LaunchStage.GA)
TIMEOUT_SECONDS = 300
REQUEST_CONCURRENCY = 80
MAX_INSTANCES = 100
PORT_NAME = "http1"
CONTAINER_PORT = 8080
LIMITS = {"cpu": "1000m", "memory": "512Mi"}
# The startup probe Cloud Run adds when none is given (the longest it allows: 240 s).
STARTUP_PROBE_SECONDS = 240
STARTUP_PROBE_FAILURES = 1
# Defaults of a probe the caller sets, per the Probe reference.
PROBE_TIMEOUT_SECONDS = 1
PROBE_PERIOD_SECONDS = 10
PROBE_FAILURES = 3


def apply_service_defaults(service: Any) -> None:
    """Fill the server-side defaults into ``service`` (a raw ``run.v2.Service``) in place."""
    if not service.ingress:
        service.ingress = INGRESS_TRAFFIC_ALL
    if not service.launch_stage:
        service.launch_stage = LAUNCH_STAGE_GA
    apply_template_defaults(service.template)


def apply_template_defaults(template: Any) -> None:
    """Fill the defaults of a raw ``run.v2.RevisionTemplate`` in place."""
    if not template.HasField("timeout"):
        template.timeout.FromSeconds(TIMEOUT_SECONDS)
    if not template.max_instance_request_concurrency:
        template.max_instance_request_concurrency = REQUEST_CONCURRENCY
    if not template.scaling.max_instance_count:
        template.scaling.max_instance_count = MAX_INSTANCES
    for container in template.containers:
        _container_defaults(container)


def _container_defaults(container: Any) -> None:
    if len(container.ports) == 0:
        container.ports.add()
    for port in container.ports:
        port.name = port.name or PORT_NAME
        port.container_port = port.container_port or CONTAINER_PORT
    container_port = container.ports[0].container_port
    if not container.HasField("resources"):
        container.resources.cpu_idle = True
    for key, value in LIMITS.items():
        container.resources.limits.setdefault(key, value)
    if not container.HasField("startup_probe"):
        probe = container.startup_probe
        probe.timeout_seconds = STARTUP_PROBE_SECONDS
        probe.period_seconds = STARTUP_PROBE_SECONDS
        probe.failure_threshold = STARTUP_PROBE_FAILURES
        probe.tcp_socket.port = container_port
    else:
        _probe_defaults(container.startup_probe, container_port)
    if container.HasField("liveness_probe"):
        _probe_defaults(container.liveness_probe, container_port)


def _probe_defaults(probe: Any, container_port: int) -> None:
    probe.timeout_seconds = probe.timeout_seconds or PROBE_TIMEOUT_SECONDS
    probe.period_seconds = probe.period_seconds or PROBE_PERIOD_SECONDS
    probe.failure_threshold = probe.failure_threshold or PROBE_FAILURES
    action = probe.WhichOneof("probe_type")
    if action is not None:
        target = getattr(probe, action)
        target.port = target.port or container_port
