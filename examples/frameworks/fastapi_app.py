"""FastAPI: ODP events from async endpoints, with the user identified by a middleware.

Run: ``python examples/frameworks/fastapi_app.py`` (uses FastAPI's TestClient), or serve it
with ``uvicorn --factory --app-dir examples/frameworks fastapi_app:create_app``.

Logging from an ``async def`` endpoint is safe: the handler only queues the event, it
never waits on the network. ``odp_logging.context`` is based on contextvars, so the
middleware's identifiers reach the endpoint, and concurrent requests never mix them up.
The ``X-User-Id`` header stands in for your authentication.
"""

from __future__ import annotations

import logging.config
from collections.abc import Awaitable, Callable

from _local import odp_destination, report
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel

import odp_logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"odp": {"class": "odp_logging.OdpHandler", "level": "INFO"}},
    "loggers": {"shop": {"handlers": ["odp"], "level": "INFO"}},
}
log = logging.getLogger("shop")


class Order(BaseModel):
    item: str
    price: float


def create_app() -> FastAPI:
    """Configure logging (key and host from ODP_API_KEY / ODP_API_HOST), then build the app."""
    logging.config.dictConfig(LOGGING)
    app = FastAPI()

    @app.middleware("http")
    async def identify_user(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        user_id = request.headers.get("x-user-id")
        if user_id is None:
            return await call_next(request)
        with odp_logging.context(identifiers={"fs_user_id": user_id}):
            return await call_next(request)

    @app.post("/orders")
    async def place_order(order: Order) -> dict[str, bool]:
        log.info("purchased", extra={"odp": {"data": {"item": order.item, "price": order.price}}})
        return {"ok": True}

    return app


def main() -> None:
    """Place orders as two users, and show what arrived."""
    with odp_destination() as receiver:
        with TestClient(create_app()) as client:
            client.post("/orders", json={"item": "shirt", "price": 50}, headers={"X-User-Id": "u1"})
            client.post("/orders", json={"item": "hat", "price": 20}, headers={"X-User-Id": "u2"})
        odp_logging.get_client().flush()  # the shared client behind the handler
        report(receiver)


if __name__ == "__main__":
    main()
