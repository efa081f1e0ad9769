"""The durable spool: outages, size limit, SIGKILL and restart, shared files, its commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import odp_logging
from odp_logging._spool import Spool
from odp_logging._spool import status as spool_status
from odp_logging._spool_cli import add_spool_commands
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import (
    FAST_RETRY,
    FAST_RETRY_SOURCE,
    dead_url,
    run_python,
    spooled_rows,
    start_python,
    wait_until,
)

_POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and modes")


@pytest.fixture(name="spool_path")
def _spool_path(tmp_path: Path) -> str:
    """A spool file path in a directory that does not exist yet."""
    return str(tmp_path / "state" / "odp-spool.db")


def _client(api_host: str, spool_path: str, **options: Any) -> odp_logging.OdpClient:
    """A spooling client with the fast retry policy and a 50 ms flush interval."""
    defaults: dict[str, Any] = {"api_key": API_KEY, "flush_interval": 0.05}
    return odp_logging.OdpClient(
        api_host=api_host, spool_path=spool_path, retry_policy=FAST_RETRY, **{**defaults, **options}
    )


def _send(client: odp_logging.OdpClient, count: int, action: str = "a") -> None:
    for i in range(count):
        client.send_odp_event(action, identifiers={"fs_user_id": f"u{i}"}, data={"i": i})


def _ids(receiver: Receiver) -> list[str]:
    return [event["data"]["idempotence_id"] for event in receiver.events()]


@contextlib.contextmanager
def _killed_at_end(process: Any) -> Iterator[None]:
    """Make sure a child does not outlive the test."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


# The script of a process that logs to an unreachable host, then waits to be killed.
_LOG_AND_WAIT = (
    FAST_RETRY_SOURCE
    + """
import os, sys, time, odp_logging
client = odp_logging.OdpClient(
    spool_path=os.environ["SPOOL"], flush_interval=0.1, retry_policy=FAST_RETRY
)
for i in range(int(os.environ["COUNT"])):
    client.send_odp_event(os.environ["ACTION"], identifiers={"fs_user_id": str(i)})
print("logged", flush=True)
time.sleep(60)
"""
)

# The script of a process that sends what the spool holds, then prints its stats.
_DRAIN = """
import os, odp_logging
client = odp_logging.OdpClient(spool_path=os.environ["SPOOL"], flush_interval=0.05)
for i in range(int(os.environ.get("COUNT", "0"))):
    client.send_odp_event(os.environ["ACTION"], identifiers={"fs_user_id": str(i)})
print("flushed", client.flush(20))
stats = client.stats()
print("recovered", stats.recovered, "sent", stats.sent, "spooled", stats.spooled)
"""


def _spool_then_kill(spool_path: str, count: int, action: str = "crashed") -> None:
    """Run a process that spools ``count`` events (host unreachable), then SIGKILL it."""
    child = start_python(
        _LOG_AND_WAIT,
        ODP_API_KEY=API_KEY,
        ODP_API_HOST=dead_url(),
        SPOOL=spool_path,
        COUNT=str(count),
        ACTION=action,
    )
    with _killed_at_end(child):
        assert child.stdout is not None
        assert "logged" == child.stdout.readline().strip()
        # On disk within flush_interval (0.1 s); 10 s is only a guard against a hang.
        assert wait_until(lambda: spooled_rows(spool_path) == count, timeout=10)
        child.send_signal(signal.SIGKILL)
        child.wait(10)


class TestSpoolFile:
    """The file itself: created private, never someone else's database."""

    @_POSIX_ONLY
    def test_created_private(self, spool_path: str) -> None:
        """The directory is created and the file, its WAL and SHM are mode 0600."""
        client = _client(dead_url(), spool_path)
        _send(client, 5)
        assert wait_until(lambda: client.stats().spooled == 5)
        files = [name for name in os.listdir(Path(spool_path).parent) if "odp-spool" in name]
        assert {"odp-spool.db", "odp-spool.db-wal", "odp-spool.db-shm"} == set(files)
        for name in files:
            mode = stat.S_IMODE(os.stat(Path(spool_path).parent / name).st_mode)
            assert 0o600 == mode, name
        client.close(timeout=0)

    def test_foreign_database_left_alone(
        self, tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Another SQLite database is not written to; events are sent from memory."""
        path = str(tmp_path / "app.db")
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE users (name TEXT)")
        client = _client(receiver.url, path)
        _send(client, 3)
        assert client.flush(5)
        assert 3 == len(receiver.events())
        assert "not an odp-logging spool" in caplog.text
        with contextlib.closing(sqlite3.connect(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"users"} == tables
        client.close()


class TestOutage:
    """An outage of any length loses nothing, up to the size limit."""

    def test_nothing_lost(self, receiver: Receiver, spool_path: str) -> None:
        """Events logged during an outage wait on disk and are each sent once after it."""
        client = _client(receiver.url, spool_path, max_queue_size=100)
        receiver.inject(Fault("reset", times=None))
        for _ in range(5):  # more than max_queue_size in all: the queue drains to disk
            _send(client, 100)
            assert wait_until(lambda: client.stats().queued == 0)
        assert 500 == client.stats().spooled == spooled_rows(spool_path)
        assert not client.flush(0.2)
        receiver.clear_faults()
        assert client.flush(10)
        assert 500 == len(set(_ids(receiver))) == len(_ids(receiver))
        stats = client.stats()
        assert (500, 0, 0, 0) == (stats.sent, stats.spooled, stats.queued, stats.total_dropped)
        assert 0 == spooled_rows(spool_path)
        client.close()

    def test_size_limit(self, spool_path: str) -> None:
        """Past spool_max_bytes events are dropped as spool_full, and counted."""
        client = _client(dead_url(), spool_path, spool_max_bytes=100_000)
        _send(client, 1000)
        assert wait_until(lambda: client.stats().queued == 0)
        stats = client.stats()
        assert 0 < stats.dropped["spool_full"] < 1000
        assert 1000 == stats.spooled + stats.dropped["spool_full"] == stats.total
        assert stats.spooled == spooled_rows(spool_path)
        assert os.path.getsize(spool_path) <= 100_000
        client.close(timeout=0)


@_POSIX_ONLY
class TestCrash:
    """SIGKILL loses nothing that reached the disk; the next process sends it."""

    def test_sigkill_then_restart(self, receiver: Receiver, spool_path: str) -> None:
        """A killed process's spooled events are sent once by the restarted one."""
        _spool_then_kill(spool_path, 300)
        result = run_python(
            _DRAIN, ODP_API_KEY=API_KEY, ODP_API_HOST=receiver.url, SPOOL=spool_path
        )
        assert "flushed True" in result.stdout, result.stderr
        assert "recovered 300 sent 300 spooled 0" in result.stdout
        assert 300 == len(set(_ids(receiver))) == len(receiver.events(action="crashed"))

    def test_leftovers_at_exit_spooled(self, receiver: Receiver, spool_path: str) -> None:
        """At exit with the host down, queued events go to the spool, and are reported."""
        source = """
            import os, odp_logging
            client = odp_logging.OdpClient(spool_path=os.environ["SPOOL"], flush_interval=30)
            for i in range(40):
                client.send_odp_event("left", identifiers={"fs_user_id": str(i)})
        """
        result = run_python(
            source,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=dead_url(),
            ODP_SHUTDOWN_TIMEOUT="0.5",
            SPOOL=spool_path,
        )
        assert 0 == result.returncode, result.stderr
        assert "40 event(s) are kept in the spool" in result.stderr
        assert 40 == spooled_rows(spool_path)
        result = run_python(
            _DRAIN, ODP_API_KEY=API_KEY, ODP_API_HOST=receiver.url, SPOOL=spool_path
        )
        assert "recovered 40 sent 40" in result.stdout, result.stderr
        assert 40 == len(receiver.events(action="left"))


@_POSIX_ONLY
class TestSharedSpool:
    """Several processes on one spool: each event sent once."""

    def test_two_live_processes(self, receiver: Receiver, spool_path: str) -> None:
        """Two processes spooling through an outage each send their own events, once."""
        receiver.inject(Fault("reset", times=None))
        children = [
            start_python(
                FAST_RETRY_SOURCE
                + """
import os, odp_logging
client = odp_logging.OdpClient(
    spool_path=os.environ["SPOOL"], flush_interval=0.05, retry_policy=FAST_RETRY
)
for i in range(200):
    client.send_odp_event(os.environ["ACTION"], identifiers={"fs_user_id": str(i)})
print("logged", flush=True)
print("flushed", client.flush(30), "sent", client.stats().sent, flush=True)
""",
                ODP_API_KEY=API_KEY,
                ODP_API_HOST=receiver.url,
                SPOOL=spool_path,
                ACTION=action,
            )
            for action in ("first", "second")
        ]
        with _killed_at_end(children[0]), _killed_at_end(children[1]):
            for child in children:
                assert child.stdout is not None
                assert "logged" == child.stdout.readline().strip()
            assert wait_until(lambda: spooled_rows(spool_path) == 400, timeout=30)
            receiver.clear_faults()
            outputs = [child.communicate(timeout=30) for child in children]
        results = [stdout.strip() for stdout, _ in outputs]
        assert ["flushed True sent 200"] * 2 == results, [stderr for _, stderr in outputs]
        ids = _ids(receiver)
        assert 400 == len(ids) == len(set(ids))
        assert 200 == len(receiver.events(action="first")) == len(receiver.events(action="second"))

    def test_dead_process_adopted(self, receiver: Receiver, spool_path: str) -> None:
        """A new process sends its own events and those of a killed one, each once."""
        _spool_then_kill(spool_path, 100)
        result = run_python(
            _DRAIN,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
            SPOOL=spool_path,
            COUNT="50",
            ACTION="fresh",
        )
        assert "recovered 100 sent 150 spooled 0" in result.stdout, result.stderr
        assert (100, 50) == (
            len(receiver.events(action="crashed")),
            len(receiver.events(action="fresh")),
        )
        assert 150 == len(set(_ids(receiver)))


class TestOwnership:
    """Who sends what in a shared file: two Spool objects stand for two processes."""

    def test_live_owner_keeps_its_events(self, spool_path: str) -> None:
        """A running owner's events are never taken by another."""
        first, second = Spool(spool_path, 10**8, 60), Spool(spool_path, 10**8, 60)
        first.open()
        assert 3 == first.add([b"{}"] * 3)
        assert 0 == second.open()
        assert ([], 3) == (second.take(100, 10**6), first.held)
        first.close()
        second.close()

    def test_closed_owner_adopted_by_running_process(self, spool_path: str) -> None:
        """Events left by an owner that closed go to a process already running."""
        first, second = Spool(spool_path, 10**8, 60), Spool(spool_path, 10**8, 60)
        first.open()
        second.open()
        first.add([b"{}"] * 3)
        first.close()
        assert 3 == second.maintain(force=True)
        assert 3 == second.held == len(second.take(100, 10**6))
        second.close()

    def test_silent_owner_adopted_after_lease(self, spool_path: str) -> None:
        """An owner whose heartbeat is older than the lease (another host, say) is adopted."""
        first, second = Spool(spool_path, 10**8, 60), Spool(spool_path, 10**8, 60)
        first.open()
        first.add([b"{}"] * 2)
        with contextlib.closing(sqlite3.connect(spool_path)) as db, db:
            db.execute("UPDATE owners SET heartbeat = heartbeat - 61, host = 'elsewhere'")
        assert 2 == second.open()
        first.close()
        second.close()

    def test_take_respects_bytes_and_remove_settles(self, spool_path: str) -> None:
        """A batch stops before the byte limit; removed events are no longer held."""
        spool = Spool(spool_path, 10**8, 60)
        spool.open()
        spool.add([b"x" * 100] * 5)
        batch = spool.take(100, 350)
        assert 3 == len(batch)
        spool.remove([event_id for event_id, _ in batch])
        assert (2, 2) == (spool.held, len(spool.take(100, 10**6)))
        spool.close()


def _cli(*argv: str) -> int:
    """Run ``odp-logging spool ...`` in this process and return its exit status."""
    parser = argparse.ArgumentParser(prog="odp-logging")
    add_spool_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["spool", *argv])
    status: int = args.run(args)
    return status


def _orphaned_spool(spool_path: str, count: int) -> None:
    """Leave ``count`` events in the spool, as a process that closed with the host down."""
    client = _client(dead_url(), spool_path)
    _send(client, count, action="orphan")
    assert wait_until(lambda: client.stats().spooled == count)
    client.close(timeout=0)
    # close() returned at once; the worker leaves the spool right after.
    assert wait_until(lambda: not any(owner.alive for owner in spool_status(spool_path).owners))


class TestSpoolCommands:
    """odp-logging spool status|replay|purge."""

    def test_status(self, spool_path: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`spool status` shows the waiting events and changes nothing."""
        _orphaned_spool(spool_path, 7)
        capsys.readouterr()
        assert 0 == _cli("status", "--path", spool_path)
        assert "events waiting: 7" in capsys.readouterr().out
        assert 0 == _cli("status", "--path", spool_path, "--json")
        report = json.loads(capsys.readouterr().out)
        assert (7, spool_path) == (report["events"], report["path"])
        assert report["oldest_age"] >= 0
        assert 7 == spooled_rows(spool_path)

    def test_status_without_spool(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`spool status` of a missing file is a usage error, and creates nothing."""
        path = str(tmp_path / "missing.db")
        assert 2 == _cli("status", "--path", path)
        assert "no spool at" in capsys.readouterr().err
        assert not os.path.exists(path)

    def test_replay(
        self, receiver: Receiver, spool_path: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`spool replay` sends what a gone process left, once, and empties the spool."""
        _orphaned_spool(spool_path, 12)
        capsys.readouterr()
        status = _cli(
            "replay", "--path", spool_path, "--api-key", API_KEY, "--api-host", receiver.url
        )
        assert 0 == status
        assert "adopted 12 event(s); sent 12" in capsys.readouterr().out
        assert 12 == len(set(_ids(receiver))) == len(receiver.events(action="orphan"))
        assert 0 == spooled_rows(spool_path)

    def test_replay_unreachable(self, spool_path: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`spool replay` to an unreachable host keeps the events and exits 1."""
        _orphaned_spool(spool_path, 3)
        status = _cli(
            "replay", "--path", spool_path, "--api-key", API_KEY, "--api-host", dead_url(),
            "--timeout", "0.3",
        )  # fmt: skip
        assert 1 == status
        assert "3 left in the spool" in capsys.readouterr().out
        assert 3 == spooled_rows(spool_path)

    def test_purge(self, spool_path: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`spool purge` needs --yes, then deletes every event."""
        _orphaned_spool(spool_path, 5)
        assert 2 == _cli("purge", "--path", spool_path)
        assert 5 == spooled_rows(spool_path)
        assert 0 == _cli("purge", "--path", spool_path, "--yes")
        assert "deleted 5 event(s)" in capsys.readouterr().out
        assert 0 == spooled_rows(spool_path)

    def test_purge_spares_running_process(
        self, spool_path: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`spool purge` refuses to delete the events of a running process unless --force."""
        client = _client(dead_url(), spool_path)
        _send(client, 4)
        assert wait_until(lambda: client.stats().spooled == 4)
        assert 1 == _cli("purge", "--path", spool_path, "--yes")
        assert "held by running processes" in capsys.readouterr().err
        assert 0 == _cli("purge", "--path", spool_path, "--yes", "--force")
        assert 0 == spooled_rows(spool_path)
        client.close(timeout=0)


@pytest.fixture(autouse=True)
def _quiet_spool_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """Capture odp_logging's warnings (retries against dead hosts) instead of printing them."""
    caplog.set_level(logging.WARNING, logger="odp_logging")
