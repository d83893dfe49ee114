"""What a function needs, built lazily once per process; tests swap in fakes with ``use``.

A :class:`Runtime` carries the configuration, the two pieces of plumbing every step uses (the ledger and the
publisher), the notification transport, and the typed ports for the Google services the chain drives
(:class:`shared.ports.Ports`). Nothing else: domain code asks for a port, never for a raw client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.config import PipelineConfig, get_config
from shared.ledger import Ledger
from shared.notify import Transport
from shared.publisher import Publisher

if TYPE_CHECKING:
    from shared.ports import Ports
    from shared.steps import StepRunner


def utc_now() -> datetime:
    return datetime.now(UTC)


def _fake_ports() -> Ports:
    from shared.ports import fake_ports

    return fake_ports()


@dataclass
class Runtime:
    config: PipelineConfig
    ledger: Ledger
    publisher: Publisher
    transport: Transport
    ports: Ports = field(default_factory=_fake_ports)  # production_runtime passes the real adapters
    clock: Callable[[], datetime] = field(default=utc_now)

    def steps(self) -> StepRunner:
        """A step runner over this runtime's ledger and publisher, bounded by the current deadline."""
        from shared.steps import StepRunner

        return StepRunner(self.ledger, self.publisher, self.config)


_current: Runtime | None = None
_lock = threading.Lock()


def production_runtime() -> Runtime:
    """The real thing: Firestore ledger, Pub/Sub publisher, HTTP/SMTP notifier, the Google services' ports;
    every client is made on first use."""
    from shared import clients
    from shared.ledger import FirestoreLedger
    from shared.notify import HttpTransport
    from shared.ports import production_ports
    from shared.publisher import PubSubPublisher

    config = get_config()
    return Runtime(
        config=config,
        ledger=FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix),
        publisher=PubSubPublisher(config.project),
        transport=HttpTransport(),
        ports=production_ports(config),
    )


def get_runtime() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            _current = production_runtime()
        return _current


@contextmanager
def use(runtime: Runtime) -> Iterator[Runtime]:
    """Run the enclosed code (a test) with ``runtime`` in place of the production one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        with _lock:
            _current = previous
