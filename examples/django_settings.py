"""Django: the ``LOGGING`` setting with OdpHandler, and a middleware that identifies the user.

Copy ``LOGGING`` into your ``settings.py``, and ``OdpUserMiddleware`` into a module of
your project (say ``shop/middleware.py``), listed in ``MIDDLEWARE`` after Django's
``AuthenticationMiddleware``. Django applies ``LOGGING`` with
``logging.config.dictConfig`` at startup.

Run: ``python examples/django_settings.py`` (Django need not be installed). It applies
``LOGGING`` as Django does and sends one request through the middleware to a view that
logs a purchase. With ``ODP_API_KEY`` set, the event goes to ODP; without it, the example
starts a local receiver, points ``ODP_API_KEY``/``ODP_API_HOST`` at it and prints what
arrived.
"""

from __future__ import annotations

import logging
import logging.config
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import odp_logging
from odp_logging.server import Receiver

# -- settings.py ------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)-7s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # The key and host come from ODP_API_KEY / ODP_API_HOST; any client option
        # (flush_interval, shutdown_timeout, ...) can be added here as a key.
        "odp": {
            "class": "odp_logging.OdpHandler",
            "level": "INFO",
            "static_data": {"environment": os.environ.get("DJANGO_ENV", "development")},
        },
    },
    # On the root logger, it sees your apps' records and Django's; only records
    # carrying an "odp" payload become events.
    "root": {"handlers": ["console", "odp"], "level": "INFO"},
}

# -- shop/middleware.py -----------------------------------------------------------------


class OdpUserMiddleware:
    """Give every ODP event logged while handling a request the signed-in user's identifiers."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        identifiers = {"fs_user_id": str(user.pk), "email": user.email}
        with odp_logging.context(identifiers=identifiers):
            return self.get_response(request)


# -- shop/views.py ----------------------------------------------------------------------


def checkout(request: Any) -> str:
    """A view: the identifiers come from the middleware, the data from the view."""
    logging.getLogger("shop.views").info(
        "purchased", extra={"odp": {"data": {"order": request.order, "price": 50.0}}}
    )
    return "thank you"


# -- the demonstration ------------------------------------------------------------------


def run() -> None:
    """Configure logging as Django would, then handle one request."""
    logging.config.dictConfig(LOGGING)
    user = SimpleNamespace(pk=42, email="user@example.com", is_authenticated=True)
    OdpUserMiddleware(checkout)(SimpleNamespace(user=user, order="A-1001"))
    odp_logging.get_client().flush()  # at exit this is automatic


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
            print(f"  {event['action']:<10} {event['identifiers']} {event['data']['order']}")


if __name__ == "__main__":
    main()
