"""What the framework examples share: where events go, and what arrived.

Each example sends to ODP when ``ODP_API_KEY`` is set (and ``ODP_API_HOST`` if needed).
Without it, it starts a local receiver and points ``ODP_API_KEY``/``ODP_API_HOST`` at it,
so the app's own configuration, which reads them, and the servers or workers it starts
send there: no account and no network needed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from odp_logging.server import Receiver

SDK_DATA = {"idempotence_id", "data_source_type", "data_source", "data_source_version"}


@contextlib.contextmanager
def odp_destination() -> Iterator[Receiver | None]:
    """Yield None when ODP is configured, else a local receiver the ODP_* variables name."""
    if os.environ.get("ODP_API_KEY"):
        yield None
        return
    with Receiver() as receiver:
        os.environ.update(ODP_API_KEY="local-example-key", ODP_API_HOST=receiver.url)
        try:
            yield receiver
        finally:
            del os.environ["ODP_API_KEY"], os.environ["ODP_API_HOST"]


def report(receiver: Receiver | None) -> None:
    """Print the events the local receiver got, or where they went."""
    if receiver is None:
        print(f"events sent to {os.environ.get('ODP_API_HOST', 'ODP')}")
        return
    events = receiver.events()
    print(f"received {len(events)} event(s) at {receiver.url}:")
    for event in events:
        data = {key: value for key, value in event["data"].items() if key not in SDK_DATA}
        print(f"  {event['action']:<16} {event['identifiers']} {data}")
