"""The dependencies a function needs, built lazily once per process; tests swap in fakes with ``use``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.config import PipelineConfig, get_config
from shared.ledger import Ledger
from shared.notify import Transport
from shared.publisher import Publisher


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    config: PipelineConfig
    ledger: Ledger
    publisher: Publisher
    transport: Transport
    clock: Callable[[], datetime] = field(default=utc_now)


_current: Runtime | None = None
_lock = threading.Lock()


def production_runtime() -> Runtime:
    """The real thing: Firestore ledger, Pub/Sub publisher, HTTP/SMTP notifier; clients made on first use."""
    from shared import clients
    from shared.ledger import FirestoreLedger
    from shared.notify import HttpTransport
    from shared.publisher import PubSubPublisher

    config = get_config()
    return Runtime(
        config=config,
        ledger=FirestoreLedger(clients.firestore(), prefix=config.ledger_prefix),
        publisher=PubSubPublisher(config.project),
        transport=HttpTransport(),
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
