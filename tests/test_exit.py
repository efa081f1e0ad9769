"""Interpreter exit: bounded with the receiver down, delivering with it up, never a hang.

Each scenario runs in a real subprocess; the time is measured from the moment the
child has logged its events to the moment it has exited.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import odp_logging
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import black_hole, dead_url, spooled_rows, start_python

SHUTDOWN_TIMEOUT = 1.0

# Logs 200 events through the shared client or a logging handler, then ends.
_LOG_AND_EXIT = """
import logging, os, threading, odp_logging
if os.environ.get("VIA") == "handler":
    logging.getLogger().addHandler(odp_logging.OdpHandler())
    logging.getLogger().setLevel(logging.INFO)
    for i in range(200):
        logging.info("logged", extra={"odp": {"identifiers": {"fs_user_id": str(i)}}})
else:
    client = odp_logging.get_client()
    for i in range(200):
        client.send_odp_event("logged", identifiers={"fs_user_id": str(i)})
if os.environ.get("BUSY"):  # a daemon thread that goes on logging while the process exits
    def keep_logging():
        while True:
            odp_logging.get_client().send_odp_event("late", identifiers={"fs_user_id": "x"})
    threading.Thread(target=keep_logging, daemon=True).start()
if os.environ.get("SHUTDOWN_LOGGING"):
    logging.shutdown()
print("logged", flush=True)
"""


def _exit_time(api_host: str, **variables: str) -> tuple[float, str]:
    """Run _LOG_AND_EXIT; return the seconds from "logged" to exit, and the child's stderr."""
    child = start_python(
        _LOG_AND_EXIT,
        ODP_API_KEY=API_KEY,
        ODP_API_HOST=api_host,
        ODP_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        ODP_FLUSH_INTERVAL="30",
        **variables,
    )
    assert child.stdout is not None
    try:
        assert "logged" == child.stdout.readline().strip()
        logged = time.monotonic()
        _, stderr = child.communicate(timeout=30)
        elapsed = time.monotonic() - logged
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert 0 == child.returncode, stderr
    assert API_KEY not in stderr
    return elapsed, stderr


@contextlib.contextmanager
def _endpoint(kind: str) -> Iterator[str]:
    """A receiver that is down in the way ``kind`` names; yields its URL."""
    if kind == "refused":
        yield dead_url()
    elif kind == "black_hole":
        with black_hole() as url:
            yield url
    else:
        with Receiver(api_key=API_KEY) as receiver:
            receiver.inject(Fault("status", status=503, retry_after="60", times=None))
            yield receiver.url


class TestReceiverDown:
    """With nowhere to deliver, the process exits within shutdown_timeout + 1 s."""

    @pytest.mark.parametrize("kind", ["refused", "black_hole", "retry_after"])
    @pytest.mark.parametrize("via", ["client", "handler"])
    def test_bounded_exit(self, kind: str, via: str) -> None:
        """Exit is bounded whatever the failure, and the loss is reported on stderr."""
        with _endpoint(kind) as url:
            elapsed, stderr = _exit_time(url, VIA=via)
        assert elapsed < SHUTDOWN_TIMEOUT + 1
        assert "were not sent" in stderr

    def test_bounded_with_spool(self, tmp_path: Path) -> None:
        """With a spool, exit is as prompt and the events are kept on disk."""
        spool = str(tmp_path / "spool.db")
        elapsed, stderr = _exit_time(dead_url(), ODP_SPOOL_PATH=spool)
        assert elapsed < SHUTDOWN_TIMEOUT + 1
        assert "200 event(s) are kept in the spool" in stderr
        assert 200 == spooled_rows(spool)

    def test_bounded_while_still_logging(self) -> None:
        """A daemon thread logging during exit does not keep the process alive."""
        elapsed, _ = _exit_time(dead_url(), BUSY="1")
        assert elapsed < SHUTDOWN_TIMEOUT + 1

    def test_logging_shutdown_called_by_the_program(self) -> None:
        """logging.shutdown() then exit: each waits at most shutdown_timeout, never hangs."""
        with black_hole() as url:
            elapsed, _ = _exit_time(url, VIA="handler", SHUTDOWN_LOGGING="1")
        assert elapsed < 2 * SHUTDOWN_TIMEOUT + 1


class TestReceiverUp:
    """With the receiver up, what is queued at exit is delivered."""

    @pytest.mark.parametrize("via", ["client", "handler"])
    def test_delivered_at_exit(self, via: str, receiver: Receiver) -> None:
        """200 events queued with a 30 s flush interval all arrive when the process exits."""
        _exit_time(receiver.url, VIA=via)
        assert 200 == len(receiver.events(action="logged"))

    def test_delivered_at_exit_with_spool(self, receiver: Receiver, tmp_path: Path) -> None:
        """With a spool, the events are delivered at exit and the spool is left empty."""
        spool = str(tmp_path / "spool.db")
        _exit_time(receiver.url, ODP_SPOOL_PATH=spool)
        assert 200 == len(receiver.events(action="logged"))
        assert 0 == spooled_rows(spool)


class TestClose:
    """close() in this process."""

    def test_close_bounded_on_black_hole(self) -> None:
        """close() returns within its timeout when the request in flight never ends."""
        with black_hole() as url:
            client = odp_logging.OdpClient(api_key=API_KEY, api_host=url, flush_interval=0.01)
            client.send_odp_event("a", identifiers={"fs_user_id": "u"})
            time.sleep(0.1)  # let the worker start its request
            started = time.monotonic()
            client.close(timeout=0.5)
            assert time.monotonic() - started < 0.5 + 1
        assert client.closed
