"""Send ODP events with standard logging configured by ``logging.config.dictConfig``.

Run: ``python examples/logging_dictconfig.py``

The configuration holds no secret: the handler reads ``ODP_API_KEY`` (and
``ODP_API_HOST``) from the environment. With ``ODP_API_KEY`` set, the events go to ODP.
Without it, the example starts a local receiver, points those variables at it, and
prints what arrived: no account and no network needed.
"""

from __future__ import annotations

import logging
import logging.config
import os

import odp_logging
from odp_logging.server import Receiver

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Any extra top-level key can be shared with cfg:// references.
    "app": {"service": "shop", "release": "2.0.1"},
    "formatters": {"plain": {"format": "%(levelname)-7s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "odp": {
            "class": "odp_logging.OdpHandler",
            "level": "INFO",
            # Client options, as keywords; the key and host come from ODP_* variables.
            "flush_interval": 2.0,
            # Added to every event's data (the event's own keys win).
            "static_data": {
                "service": "cfg://app.service",
                "release": "cfg://app.release",
                "platform": "ext://sys.platform",
            },
        },
    },
    "root": {"handlers": ["console", "odp"], "level": "INFO"},
}


def run() -> None:
    """Configure logging, then log a sign-up and a purchase."""
    logging.config.dictConfig(LOGGING)
    log = logging.getLogger("shop")
    log.info("signed_up", extra={"odp": {"identifiers": {"email": "user@example.com"}}})
    log.info(
        "purchased",
        extra={"odp": {"identifiers": {"fs_user_id": "user123"}, "data": {"price": 50.0}}},
    )
    odp_logging.get_client().flush()  # the handler's shared client; at exit this is automatic


def main() -> None:
    """Send to ODP when configured, else to a local receiver, and report."""
    if os.environ.get("ODP_API_KEY"):
        run()
        print(f"sent {odp_logging.get_client().stats().sent} events")
        return
    with Receiver() as receiver:
        os.environ.update(ODP_API_KEY="local-example-key", ODP_API_HOST=receiver.url)
        run()
        events = receiver.events()
        print(f"received {len(events)} events at {receiver.url}:")
        for event in events:
            data = {key: event["data"][key] for key in ("service", "release", "platform")}
            print(f"  {event['action']:<10} {event['identifiers']} {data}")


if __name__ == "__main__":
    main()
