"""Send ODP events from structlog log calls.

Run: ``python examples/structlog_app.py``

With ``ODP_API_KEY`` set (and ``ODP_API_HOST`` if needed), the events go to ODP. Without
it, the example starts a local receiver, sends to it and prints what arrived: no account
and no network needed.
"""

from __future__ import annotations

import os

import structlog
from structlog.contextvars import bound_contextvars

import odp_logging
from odp_logging.server import Receiver
from odp_logging.structlog import OdpProcessor


def run(client: odp_logging.OdpClient) -> None:
    """Log a sign-up and a checkout; three of the lines are ODP events."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            OdpProcessor(client=client),  # after merge_contextvars, before the renderer
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ]
    )
    log = structlog.get_logger()

    log.info(
        "signed_up",
        odp={"identifiers": {"email": "user@example.com"}, "data": {"plan": "pro"}},
    )
    # The bound odp is merged into each ODP event of the block; on its own it sends nothing.
    with bound_contextvars(request_id="r-42", odp={"identifiers": {"fs_user_id": "user123"}}):
        log.info("checkout started")
        log.info("cart updated", odp={"action": "added_to_cart", "data": {"sku": "shirt-42"}})
        log.info("purchased", odp={"data": {"price": 50.0, "currency": "USD"}})


def main() -> None:
    """Send to ODP when configured, else to a local receiver, and report."""
    if os.environ.get("ODP_API_KEY"):
        client = odp_logging.OdpClient()
        run(client)
        client.close()
        print(f"sent {client.stats().sent} events to {client.options.api_host}")
        return
    with Receiver() as receiver:
        client = odp_logging.OdpClient(api_key="local-example-key", api_host=receiver.url)
        run(client)
        client.close()
        events = receiver.events()
        print(f"received {len(events)} events at {receiver.url}:")
        for event in events:
            print(f"  {event['action']:<14} {event['identifiers']} {_own_data(event['data'])}")


def _own_data(data: dict[str, object]) -> dict[str, object]:
    """The event's data without the defaults odp-logging adds to every event."""
    defaults = {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
    return {key: value for key, value in data.items() if key not in defaults}


if __name__ == "__main__":
    main()
