"""What the receiver answers, independent of sockets: the ODP API and the control API."""

from __future__ import annotations

import dataclasses
import hmac
import http
import json
import threading
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import parse_qs

from ._faults import Fault, FaultQueue
from ._page import PAGE
from ._store import EventStore, RequestInfo
from ._validate import BadBody, find_invalids, parse_events

EVENTS_PATH = "/v3/events"
CONTROL_PREFIX = "/_receiver/"

Abort = Literal["drop", "reset"]
"""Close the connection without answering: gracefully, or with a TCP reset."""


@dataclasses.dataclass(frozen=True)
class Request:
    """The parts of an HTTP request that the receiver looks at."""

    connection: int
    method: str
    target: str
    api_key: str
    content_type: str
    body: bytes


@dataclasses.dataclass(frozen=True)
class Reply:
    """A complete answer: JSON, except for the web page."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


class App:
    """The receiver's behaviour: store, faults and the rules for answering.

    Args:
        store: Where accepted events and the request log go.
        api_key: The only `x-api-key` accepted, or `None` to accept any non-empty key.
    """

    def __init__(self, store: EventStore, api_key: str | None) -> None:
        self.store = store
        self.faults = FaultQueue()
        # Set when the server stops, to cut injected delays short.
        self.stopping = threading.Event()
        self._api_key = api_key

    def reset(self) -> None:
        """Forget stored events, the request log and waiting faults."""
        self.store.clear()
        self.faults.clear()

    def handle(self, request: Request) -> Reply | Abort:
        """Answer one request; may block for an injected delay."""
        path, _, query = _origin_form(request.target).partition("?")
        if path == "/" and request.method in ("GET", "HEAD"):
            return _PAGE_REPLY
        if path.startswith(CONTROL_PREFIX):
            return self._control(
                request.method, path.removeprefix(CONTROL_PREFIX), query, request.body
            )
        return self._api(request, path)

    def _api(self, request: Request, path: str) -> Reply | Abort:
        """Answer a request outside the control API as ODP would, unless a fault plays."""
        events: list[Any] = []
        body_problem = None
        if path == EVENTS_PATH and request.method == "POST":
            try:
                events = parse_events(request.body)
            except BadBody as exc:
                body_problem = str(exc)
        info = RequestInfo(
            received_at=_timestamp(),
            connection=request.connection,
            method=request.method,
            path=path,
            status=None,
            fault=None,
            key_ok=self._key_ok(request.api_key),
            body_bytes=len(request.body),
            events=len(events),
            invalid=0,
            idempotence_ids=[_idempotence_id(event) for event in events],
        )

        fault = self.faults.take() if path == EVENTS_PATH else None
        if fault is not None:
            info["fault"] = fault.kind
            if self.stopping.wait(fault.delay):
                return "drop"  # stopped while delaying: a stopped receiver answers nothing
            if fault.kind in ("drop", "reset"):
                self.store.record(info, [])
                return fault.kind
            if fault.kind == "status":
                info["status"] = fault.status
                self.store.record(info, [])
                return _fault_reply(fault)

        reply, accepted, info["invalid"] = self._answer(request, path, events, body_problem, info)
        info["status"] = reply.status
        self.store.record(info, accepted)
        return reply

    def _answer(
        self,
        request: Request,
        path: str,
        events: list[Any],
        body_problem: str | None,
        info: RequestInfo,
    ) -> tuple[Reply, list[Any], int]:
        """Return ODP's answer, the events to store and how many events it named invalid."""
        if path != EVENTS_PATH:
            return _json_reply(404, {"message": "Not Found"}), [], 0
        if request.method != "POST":
            return _json_reply(405, {"message": "Method Not Allowed"}, ("Allow", "POST")), [], 0
        if not info["key_ok"]:
            return _json_reply(403, {"message": "Forbidden"}), [], 0
        if request.content_type.partition(";")[0].strip().lower() != "application/json":
            body_problem = "content-type must be application/json"
        if body_problem is not None:
            return _bad_request(info["received_at"], {"message": body_problem}), [], 0
        invalids = find_invalids(events)
        if invalids:
            return _bad_request(info["received_at"], {"invalids": invalids}), [], len(invalids)
        accepted = {"title": "Accepted", "status": 202, "timestamp": info["received_at"]}
        return _json_reply(202, accepted), events, 0

    def _key_ok(self, key: str) -> bool:
        if self._api_key is None:
            return bool(key)
        return hmac.compare_digest(key.encode(), self._api_key.encode())

    def _control(self, method: str, route: str, query: str, body: bytes) -> Reply:
        """Answer the control API that `ReceiverProcess` drives; see docs/receiver.md."""
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        try:
            match method, route:
                case "GET", "events":
                    result: object = self.store.events(
                        params.get("action"), params.get("identifier")
                    )
                case "GET", "requests":
                    result = self.store.requests()
                case "GET", "stats":
                    result = self.store.stats()
                case "GET", "wait":
                    n, timeout = int(params["events"]), float(params.get("timeout", "5"))
                    result = {"ok": self.store.wait_for_events(n, timeout)}
                case "POST", "faults":
                    described = json.loads(body)
                    if isinstance(described, dict):
                        described = [described]
                    faults = [Fault.from_json(fault) for fault in described]
                    self.faults.push(faults)
                    result = {"queued": len(faults)}
                case "DELETE", "faults":
                    self.faults.clear()
                    result = {}
                case "POST", "reset":
                    self.reset()
                    result = {}
                case _:
                    return _json_reply(404, {"message": f"no control route {method} {route}"})
        except (KeyError, ValueError, TypeError) as exc:
            return _json_reply(400, {"message": f"bad control request: {exc!r}"})
        return _json_reply(200, result)


_PAGE_REPLY = Reply(200, PAGE, (("Cache-Control", "no-store"),), "text/html; charset=utf-8")
"""The web page listing the stored events (see `_page`); not logged, like the control API."""


def _origin_form(target: str) -> str:
    """The path and query of a request target, also of one in absolute form.

    A client sends ``POST http://host/v3/events`` to an HTTP proxy, and an HTTP/1.1
    server must accept that form too (RFC 9112, 3.2.2): so the receiver can play the
    proxy that tests point ``HTTP_PROXY`` at.
    """
    scheme, separator, rest = target.partition("://")
    if not separator or "/" in scheme:
        return target
    _, slash, path = rest.partition("/")
    return slash + path if slash else "/"


def _idempotence_id(event: object) -> str | None:
    data = event.get("data") if isinstance(event, dict) else None
    value = data.get("idempotence_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _timestamp() -> str:
    """Now as ODP writes it: ISO 8601 UTC with milliseconds, `2022-06-30T20:59:52.046Z`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_reply(status: int, payload: object, *headers: tuple[str, str]) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers)


def _bad_request(timestamp: str, detail: dict[str, object]) -> Reply:
    payload = {"title": "Bad Request", "status": 400, "timestamp": timestamp, "detail": detail}
    return _json_reply(400, payload)


def _fault_reply(fault: Fault) -> Reply:
    if fault.body is not None:
        body = fault.body.encode()
    else:
        body = json.dumps({"message": reason_phrase(fault.status)}).encode()
    headers = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
    return Reply(fault.status, body, headers)


def reason_phrase(status: int) -> str:
    """Return the standard reason phrase of `status`, or "" for unassigned codes."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
