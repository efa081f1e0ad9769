"""The durable spool: encoded events in an SQLite file that outlives the process.

With ``spool_path`` set, a client's worker thread writes every event it accepts to
this file (WAL mode, ``synchronous=NORMAL``: a commit survives the process being
killed) and deletes it once ODP has answered for it. The file may be shared by
several processes, say the workers of one gunicorn master:

* each process registers as an *owner* (a row of ``owners``: host, pid, heartbeat)
  and sends only the events it owns, so no event is sent by two live processes;
* the events of an owner that is gone (its pid no longer exists on this host, or its
  heartbeat is older than the lease, or it closed with events unsent) are *adopted*
  by the next process that looks, and sent by it.

Events are stored as their final JSON, ``idempotence_id`` included, so a replay
resends exactly what would have been sent. The file is created with mode 0600 (it
holds personal data). Only the worker thread of a client, or an ``odp-logging
spool`` command, opens it; the application's threads never touch it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Final

SCHEMA_VERSION: Final = 1
ROW_OVERHEAD: Final = 100
"""Bytes one stored event costs beyond its JSON (row header, owner, index entry)."""
BUSY_TIMEOUT: Final = 5.0
"""Seconds a writer waits for another process's transaction before giving up."""
MAX_MAINTENANCE_INTERVAL: Final = 10.0
"""Longest time between two heartbeats (and looks for events of dead owners)."""

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        created REAL NOT NULL,
        body BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_owner ON events (owner, id)",
    """CREATE TABLE IF NOT EXISTS owners (
        token TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        heartbeat REAL NOT NULL
    )""",
)

_FOREIGN_TABLES: Final = (
    "SELECT name FROM sqlite_master WHERE type = 'table' "
    "AND name NOT IN ('events', 'owners', 'sqlite_sequence')"
)

SpooledEvent = tuple[int, bytes]
"""A stored event: its row id (increasing in the order events were stored) and its JSON."""

_live_tokens: Final[set[str]] = set()
"""Owner tokens of the spools open in this process: an owner with this process's pid
and a token not in here is a previous process that had the same pid (a restarted
container's pid 1, say), so it is dead."""


class SpoolError(Exception):
    """The spool file cannot be used: unreadable, not a spool, full disk, locked too long."""


@contextlib.contextmanager
def _spool_errors(path: str, action: str) -> Iterator[None]:
    """Turn SQLite and OS errors into :class:`SpoolError` naming the file and the action."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise SpoolError(f"cannot {action} the spool {path} ({type(exc).__name__}: {exc})") from exc


class Spool:
    """The spool file as one owner sees it; used by one thread only.

    Args:
        path: The SQLite file; created (mode 0600, with its directory) if missing.
        max_bytes: Most bytes the events may take in the file; events past it are
            refused by :meth:`add`.
        lease: Seconds after its last heartbeat at which an owner counts as dead
            even if its pid cannot be checked (another host or container).
    """

    def __init__(self, path: str, max_bytes: int, lease: float) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._lease = lease
        self._maintenance_interval = min(MAX_MAINTENANCE_INTERVAL, lease / 4)
        self._connection: sqlite3.Connection | None = None
        self._token = ""
        self._host = socket.gethostname()
        self.held = 0
        """Events this owner holds in the file, in flight included."""
        self.last_id = 0
        """The highest row id this owner stored or adopted."""
        self.next_maintenance = 0.0
        """When :meth:`maintain` has work to do next (``time.monotonic()``)."""

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise SpoolError(f"the spool {self.path} is not open")
        return self._connection

    def open(self) -> int:
        """Open (creating if needed) the file, register as an owner, adopt orphans.

        Returns:
            How many events of dead owners were adopted.

        Raises:
            SpoolError: The file cannot be opened or is not a spool of this version.
        """
        with _spool_errors(self.path, "open"):
            self._connection = connect(self.path)
            self._token = f"{os.getpid()}-{secrets.token_hex(6)}"
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO owners (token, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
                    (self._token, self._host, os.getpid(), time.time()),
                )
            _live_tokens.add(self._token)
        return self.maintain(force=True)

    def add(self, events: Sequence[bytes]) -> int:
        """Store ``events`` in order, as many as fit under the size limit, in one transaction.

        Returns:
            How many were stored: the first ones; the rest did not fit.

        Raises:
            SpoolError: The file cannot be written.
        """
        if not events:
            return 0
        with _spool_errors(self.path, "write to"), self._transaction() as db:
            room = self._max_bytes - _used_bytes(db)
            fitting = 0
            for body in events:
                room -= len(body) + ROW_OVERHEAD
                if room < 0:
                    break
                fitting += 1
            if fitting:
                now = time.time()
                db.executemany(
                    "INSERT INTO events (owner, created, body) VALUES (?, ?, ?)",
                    [(self._token, now, body) for body in events[:fitting]],
                )
                (self.last_id,) = db.execute("SELECT last_insert_rowid()").fetchone()
        self.held += fitting
        return fitting

    def take(self, max_count: int, max_bytes: int) -> list[SpooledEvent]:
        """Return this owner's oldest events for one request (they stay in the file).

        Args:
            max_count: Most events.
            max_bytes: Most bytes of the JSON array they make; the first event is
                returned whatever its size.

        Raises:
            SpoolError: The file cannot be read.
        """
        with _spool_errors(self.path, "read"):
            rows = self._db.execute(
                "SELECT id, body FROM events WHERE owner = ? ORDER BY id LIMIT ?",
                (self._token, max_count),
            ).fetchall()
        return cut_batch([(row_id, bytes(body)) for row_id, body in rows], max_bytes)

    def remove(self, ids: Sequence[int]) -> None:
        """Delete settled (sent or dropped) events.

        Raises:
            SpoolError: The file cannot be written.
        """
        with _spool_errors(self.path, "delete from"), self._transaction() as db:
            removed = db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
        self.held -= removed.rowcount

    def oldest_id(self) -> int | None:
        """Return the id of this owner's oldest event, or None when it holds none.

        Raises:
            SpoolError: The file cannot be read.
        """
        with _spool_errors(self.path, "read"):
            (oldest,) = self._db.execute(
                "SELECT MIN(id) FROM events WHERE owner = ?", (self._token,)
            ).fetchone()
        return None if oldest is None else int(oldest)

    def maintain(self, *, force: bool = False) -> int:
        """Renew the heartbeat and adopt the events of dead owners, when due.

        Args:
            force: Do it now, due or not.

        Returns:
            How many events were adopted.

        Raises:
            SpoolError: The file cannot be written.
        """
        if not force and time.monotonic() < self.next_maintenance:
            return 0
        self.next_maintenance = time.monotonic() + self._maintenance_interval
        adopted = 0
        with _spool_errors(self.path, "maintain"), self._transaction() as db:
            now = time.time()
            beat = db.execute("UPDATE owners SET heartbeat = ? WHERE token = ?", (now, self._token))
            if beat.rowcount == 0:  # we looked dead to another process, which adopted our events
                db.execute(
                    "INSERT INTO owners (token, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
                    (self._token, self._host, os.getpid(), now),
                )
            owners = db.execute(
                "SELECT token, host, pid, heartbeat FROM owners WHERE token != ?", (self._token,)
            ).fetchall()
            for token, host, pid, heartbeat in owners:
                if self._is_alive(token, host, pid, heartbeat, now):
                    continue
                moved = db.execute(
                    "UPDATE events SET owner = ? WHERE owner = ?", (self._token, token)
                )
                adopted += moved.rowcount
                db.execute("DELETE FROM owners WHERE token = ?", (token,))
            if force:  # at open: events whose owner row is missing would never be sent
                adopted += db.execute(
                    "UPDATE events SET owner = ? WHERE owner NOT IN (SELECT token FROM owners)",
                    (self._token,),
                ).rowcount
            held, last_id = db.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM events WHERE owner = ?",
                (self._token,),
            ).fetchone()
        self.held = held
        self.last_id = max(self.last_id, last_id)
        return adopted

    def close(self) -> None:
        """Leave: events still held are left to the next process that looks (within seconds).

        The owner's heartbeat is zeroed rather than its row deleted, so that processes
        already running adopt the events at their next maintenance, not only new ones.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        _live_tokens.discard(self._token)
        leave = (
            "UPDATE owners SET heartbeat = 0 WHERE token = ?"
            if self.held
            else "DELETE FROM owners WHERE token = ?"
        )
        try:
            with _spool_errors(self.path, "close"):
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(leave, (self._token,))
                connection.execute("COMMIT")
        finally:
            connection.close()

    def _is_alive(self, token: str, host: str, pid: int, heartbeat: float, now: float) -> bool:
        if heartbeat < now - self._lease:
            return False
        if host != self._host:
            return True  # another machine or container: only its heartbeat tells
        if pid == os.getpid():
            return token in _live_tokens
        return pid_alive(pid)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once (no upgrade deadlock)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def connect(path: str) -> sqlite3.Connection:
    """Open the spool at ``path`` (creating it mode 0600) with its schema, in WAL mode.

    Processes opening one new spool at the same moment are retried for up to
    :data:`BUSY_TIMEOUT`: SQLite calls no busy handler for the lock that switching a
    file to WAL takes, so the others get "database is locked" at once.

    Raises:
        sqlite3.Error, OSError: The file cannot be opened or created.
        SpoolError: The file is another database, or a spool of a newer odp-logging.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            return _connect_once(path)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _connect_once(path: str) -> sqlite3.Connection:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    # Create the file ourselves: SQLite would use 0644, and its -wal and -shm files
    # copy the database's permissions.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL survives a killed process (not a power cut) without an fsync
        # per commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA journal_size_limit=4194304")
        db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise SpoolError(f"the spool {path} was written by a newer odp-logging")
            if version == 0 and db.execute(_FOREIGN_TABLES).fetchone() is not None:
                raise SpoolError(f"{path} is an SQLite database but not an odp-logging spool")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def cut_batch(events: list[SpooledEvent], max_bytes: int) -> list[SpooledEvent]:
    """Return the longest prefix of ``events`` whose JSON array fits in ``max_bytes``.

    The first event is always kept: one event larger than a request never gets here.
    """
    size = 1  # the brackets, with one comma fewer than events
    for count, (_, body) in enumerate(events):
        size += len(body) + 1
        if count and size > max_bytes:
            return events[:count]
    return events


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (True when it cannot tell)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user
        return True
    return True


def _used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the database file in use (free pages left by deletes excluded)."""
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    return int((pages - free) * page_size)


@dataclasses.dataclass(frozen=True)
class OwnerStatus:
    """One process registered in a spool, as ``odp-logging spool status`` shows it.

    Attributes:
        host: The host name it ran on.
        pid: Its process id.
        heartbeat_age: Seconds since its last heartbeat.
        alive: Whether it is still running and has not left, as far as this host can tell.
        events: Events it holds.
    """

    host: str
    pid: int
    heartbeat_age: float
    alive: bool
    events: int


@dataclasses.dataclass(frozen=True)
class SpoolStatus:
    """What a spool holds.

    Attributes:
        path: The file.
        events: Events waiting to be sent.
        event_bytes: Bytes of their JSON.
        file_bytes: Bytes of the file, its WAL included.
        oldest_age: Seconds since the oldest event was stored, None when empty.
        owners: The registered processes.
    """

    path: str
    events: int
    event_bytes: int
    file_bytes: int
    oldest_age: float | None
    owners: tuple[OwnerStatus, ...]


def status(path: str) -> SpoolStatus:
    """Describe the spool at ``path`` without changing it.

    Raises:
        SpoolError: The file does not exist or is not a spool.
    """
    if not os.path.exists(path):
        raise SpoolError(f"there is no spool at {path}")
    now = time.time()
    with _spool_errors(path, "read"), contextlib.closing(connect(path)) as db:
        events, event_bytes, oldest = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(body)), 0), MIN(created) FROM events"
        ).fetchone()
        held = dict(db.execute("SELECT owner, COUNT(*) FROM events GROUP BY owner").fetchall())
        owners = tuple(
            OwnerStatus(
                host,
                pid,
                max(now - heartbeat, 0.0),
                heartbeat > 0 and host == socket.gethostname() and pid_alive(pid),
                held.get(token, 0),
            )
            for token, host, pid, heartbeat in db.execute(
                "SELECT token, host, pid, heartbeat FROM owners ORDER BY heartbeat DESC"
            )
        )
    file_bytes = sum(
        os.path.getsize(name) for name in (path, f"{path}-wal") if os.path.exists(name)
    )
    return SpoolStatus(
        path,
        events,
        event_bytes,
        file_bytes,
        None if oldest is None else max(now - oldest, 0.0),
        owners,
    )


def purge(path: str) -> int:
    """Delete every event in the spool at ``path`` and compact the file.

    Returns:
        How many events were deleted.

    Raises:
        SpoolError: The file does not exist or cannot be written.
    """
    if not os.path.exists(path):
        raise SpoolError(f"there is no spool at {path}")
    with _spool_errors(path, "purge"), contextlib.closing(connect(path)) as db:
        deleted = db.execute("DELETE FROM events").rowcount
        db.execute("VACUUM")
    return int(deleted)
