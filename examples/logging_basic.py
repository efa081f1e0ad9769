"""Send ODP events with standard logging: OdpHandler added in code.

Run: ``python examples/logging_basic.py``

With ``ODP_API_KEY`` set (and ``ODP_API_HOST`` if needed), the events go to ODP. Without
it, the example starts a local receiver, sends to it and prints what arrived: no account
and no network needed.
"""

from __future__ import annotations

import logging
import os

import odp_logging
from odp_logging.server import Receiver

log = logging.getLogger("shop")


def run(handler: odp_logging.OdpHandler) -> None:
    """Log a visit, a cart and a purchase; two of the records are ODP events."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    logging.getLogger().addHandler(handler)

    # Identifiers known once per request apply to every ODP event inside the block.
    with odp_logging.context(identifiers={"fs_user_id": "user123"}):
        log.info("served /products/shirt-42")  # no odp payload: a log line only
        log.info("added_to_cart", extra={"odp": {"data": {"sku": "shirt-42"}}})

    # The message is the action unless the payload names one.
    log.info(
        "order %s paid",
        "A-1001",
        extra={
            "odp": {
                "action": "purchased",
                "identifiers": {"fs_user_id": "user123", "email": "user@example.com"},
                "data": {"order": "A-1001", "price": 50.0, "currency": "USD"},
            }
        },
    )
    handler.flush()  # wait for delivery here; at exit it happens by itself


def main() -> None:
    """Send to ODP when configured, else to a local receiver, and report."""
    if os.environ.get("ODP_API_KEY"):
        handler = odp_logging.OdpHandler()  # key and host from ODP_API_KEY / ODP_API_HOST
        run(handler)
        print(f"sent {handler.client.stats().sent} events to {handler.client.options.api_host}")
        return
    with Receiver() as receiver:
        run(odp_logging.OdpHandler(api_key="local-example-key", api_host=receiver.url))
        events = receiver.events()
        print(f"received {len(events)} events at {receiver.url}:")
        for event in events:
            print(f"  {event['action']:<14} {event['identifiers']}")


if __name__ == "__main__":
    main()
