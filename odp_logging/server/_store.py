"""SQLite storage of accepted events and of the request log."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, TypedDict

try:
    import orjson
except ImportError:  # pragma: no cover - the `fast` extra is not installed
    orjson = None  # type: ignore[assignment]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    connection INTEGER NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    fault TEXT,
    key_ok INTEGER NOT NULL,
    body_bytes INTEGER NOT NULL,
    events INTEGER NOT NULL,
    invalid INTEGER NOT NULL,
    idempotence_ids TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    action TEXT NOT NULL,
    event TEXT NOT NULL
);
"""

_REQUEST_COLUMNS = (
    "received_at, connection, method, path, status, fault, key_ok, body_bytes, events, invalid, "
    "idempotence_ids"
)
# Named placeholders (:received_at, ...), so that a RequestInfo is the INSERT's parameters.
_INSERT_REQUEST = "INSERT INTO requests ({}) VALUES ({})".format(  # noqa: S608 - constants
    _REQUEST_COLUMNS, ", ".join(f":{column}" for column in _REQUEST_COLUMNS.split(", "))
)

# An identifier filter matches a value, or a `name=value` pair (values may contain "=").
_EVENTS_QUERY = """
SELECT id, request_id, received_at, event FROM events
WHERE (:action IS NULL OR action = :action)
  AND (:identifier IS NULL OR EXISTS (
      SELECT 1 FROM json_each(events.event, '$.identifiers') AS i
      WHERE i.value = :identifier OR (i.key = :name AND i.value = :value)))
ORDER BY id
"""


class RequestInfo(TypedDict):
    """What the receiver logs about one request to the ODP API (never the API key)."""

    received_at: str
    connection: int
    method: str
    path: str
    status: int | None
    fault: str | None
    key_ok: bool
    body_bytes: int
    events: int
    invalid: int
    idempotence_ids: list[str | None]


class RequestRecord(RequestInfo):
    """A logged request: `RequestInfo` plus its id, which stored events refer to.

    Attributes:
        received_at: Receipt time, ISO 8601 UTC with milliseconds (`...T20:59:52.046Z`).
        connection: Number of the TCP connection it came on, counted from 1: equal numbers
            show that the client kept the connection alive.
        status: The HTTP status answered, or `None` when the connection was dropped or reset.
        fault: The kind of injected fault that played on it, if any.
        key_ok: Whether `x-api-key` was accepted.
        body_bytes: Size of the body.
        events: Number of events in the body (0 when it did not parse).
        invalid: Number of events the answer named invalid.
        idempotence_ids: Each event's `data.idempotence_id`, `None` where missing.
    """

    id: int


class Stats(TypedDict):
    """Counters over the logged requests."""

    requests: int
    events_accepted: int
    events_rejected: int
    by_status: dict[str, int]


class EventStore:
    """Events and request log in one SQLite connection shared by all threads.

    Every method is thread-safe; the lock also backs the condition that
    `wait_for_events` waits on.
    """

    def __init__(self, path: str | None) -> None:
        """Open (creating if needed) the database at `path`, or an in-memory one if `None`."""
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False)
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        with self._cond, self._conn:
            # WAL with synchronous=NORMAL commits without an fsync, so a file database keeps
            # up with the in-memory one; a crash may lose the last commits, fine for a test tool.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._count = self._event_count()

    def record(self, request: RequestInfo, events: Sequence[dict[str, Any]]) -> None:
        """Log `request` and store its accepted `events`, in one transaction."""
        params = {**request, "idempotence_ids": json.dumps(request["idempotence_ids"])}
        with self._cond, self._conn:
            cursor = self._conn.execute(_INSERT_REQUEST, params)
            rows = [
                (cursor.lastrowid, request["received_at"], event["action"], _compact(event))
                for event in events
            ]
            self._conn.executemany(
                "INSERT INTO events (request_id, received_at, action, event) VALUES (?, ?, ?, ?)",
                rows,
            )
            self._count += len(rows)
            self._cond.notify_all()

    def events(
        self, action: str | None = None, identifier: str | None = None
    ) -> list[dict[str, Any]]:
        """Return stored events, oldest first; see `Receiver.events` for the filters."""
        name, _, value = (identifier or "").partition("=")
        params = {"action": action, "identifier": identifier, "name": name, "value": value}
        with self._cond:
            rows = self._conn.execute(_EVENTS_QUERY, params).fetchall()
        return [
            {"id": id_, "request_id": request_id, "received_at": received_at, **json.loads(event)}
            for id_, request_id, received_at, event in rows
        ]

    def requests(self) -> list[RequestRecord]:
        """Return the request log, oldest first."""
        with self._cond:
            rows = self._conn.execute(
                f"SELECT id, {_REQUEST_COLUMNS} FROM requests ORDER BY id"  # noqa: S608 - constant columns
            ).fetchall()
        return [
            RequestRecord(
                id=row[0],
                received_at=row[1],
                connection=row[2],
                method=row[3],
                path=row[4],
                status=row[5],
                fault=row[6],
                key_ok=bool(row[7]),
                body_bytes=row[8],
                events=row[9],
                invalid=row[10],
                idempotence_ids=json.loads(row[11]),
            )
            for row in rows
        ]

    def stats(self) -> Stats:
        """Count requests, stored events, events named invalid, and answers by status.

        `by_status` keys are status codes as strings, or the fault kind (`"drop"`,
        `"reset"`) for requests that got no answer.
        """
        with self._cond:
            by_status = self._conn.execute(
                "SELECT COALESCE(CAST(status AS TEXT), fault), COUNT(*) FROM requests GROUP BY 1"
            ).fetchall()
            (rejected,) = self._conn.execute(
                "SELECT COALESCE(SUM(invalid), 0) FROM requests"
            ).fetchone()
            accepted = self._count
        return Stats(
            requests=sum(count for _, count in by_status),
            events_accepted=accepted,
            events_rejected=rejected,
            by_status=dict(by_status),
        )

    def wait_for_events(self, n: int, timeout: float) -> bool:
        """Block until at least `n` events are stored; `False` on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._count >= n or self._closed, timeout)
            return self._count >= n and not self._closed

    def clear(self) -> None:
        """Delete every stored event and logged request; ids start again from 1."""
        with self._cond, self._conn:
            self._conn.execute("DELETE FROM events")
            self._conn.execute("DELETE FROM requests")
            self._count = 0

    def close(self) -> None:
        """Close the database and wake `wait_for_events` callers; idempotent."""
        with self._cond:
            self._closed = True
            self._conn.close()
            self._cond.notify_all()

    def _event_count(self) -> int:
        (count,) = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)


# ASCII with escapes: SQLite cannot store a lone surrogate, which JSON text may escape.
_std_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _compact(event: dict[str, Any]) -> str:
    """An event as stored: compact JSON, by orjson when installed (the `fast` extra).

    Encoding is most of what storing costs; what orjson refuses (lone surrogates,
    integers beyond 64 bits) falls back to the stdlib.
    """
    if orjson is not None:
        try:
            return orjson.dumps(event).decode()
        except orjson.JSONEncodeError:
            pass
    return _std_compact(event)
