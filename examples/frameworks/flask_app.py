"""Flask: ODP events from views, with logging configured in the app factory.

Run: ``python examples/frameworks/flask_app.py`` (uses Flask's test client), or serve it
with ``flask --app examples/frameworks/flask_app run``.

The user here comes from an ``X-User-Id`` header, standing in for your authentication
(flask-login's ``current_user.id``, a session...). ``before_request`` opens an
``odp_logging.context`` for the request and ``teardown_request`` closes it, so every ODP
event a view logs carries the user's identifiers.
"""

from __future__ import annotations

import contextlib
import logging.config

from _local import odp_destination, report
from flask import Flask, g, request

import odp_logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"odp": {"class": "odp_logging.OdpHandler", "level": "INFO"}},
    "loggers": {"shop": {"handlers": ["odp"], "level": "INFO"}},
}
log = logging.getLogger("shop")


def create_app() -> Flask:
    """Configure logging (key and host from ODP_API_KEY / ODP_API_HOST), then build the app."""
    logging.config.dictConfig(LOGGING)
    app = Flask(__name__)

    @app.before_request
    def identify_user() -> None:
        g.odp = contextlib.ExitStack()
        user_id = request.headers.get("X-User-Id")
        if user_id:
            g.odp.enter_context(odp_logging.context(identifiers={"fs_user_id": user_id}))

    @app.teardown_request
    def forget_user(_exc: BaseException | None) -> None:
        g.pop("odp").close()

    @app.post("/cart")
    def add_to_cart() -> dict[str, bool]:
        log.info("added_to_cart", extra={"odp": {"data": {"item": request.form["item"]}}})
        return {"ok": True}

    @app.post("/checkout")
    def checkout() -> dict[str, bool]:
        price = float(request.form["price"])
        log.info("purchased", extra={"odp": {"data": {"price": price, "currency": "USD"}}})
        return {"ok": True}

    return app


def main() -> None:
    """Add to the cart and check out as a user, and show what arrived."""
    with odp_destination() as receiver:
        client = create_app().test_client()
        headers = {"X-User-Id": "user123"}
        client.post("/cart", data={"item": "shirt"}, headers=headers)
        client.post("/checkout", data={"price": "50"}, headers=headers)
        odp_logging.get_client().flush()  # the shared client behind the handler
        report(receiver)


if __name__ == "__main__":
    main()
