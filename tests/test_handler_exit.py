"""OdpHandler at interpreter exit, in real subprocesses that only configure logging and log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from odp_logging.server import Receiver
from tests.conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIGURE_AND_LOG = textwrap.dedent("""
    import logging, logging.config, os

    logging.config.dictConfig({
        "version": 1,
        "handlers": {"odp": {"class": "odp_logging.OdpHandler", "level": "INFO"}},
        "root": {"handlers": ["odp"], "level": "INFO"},
    })
    log = logging.getLogger("shop")
    for i in range(5):
        log.info("purchased", extra={"odp": {
            "identifiers": {"fs_user_id": f"user{i}"}, "data": {"price": 10.0 * i},
        }})
""")


def _run(receiver: Receiver, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter configured by ``ODP_*`` variables for ``receiver``."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "ODP_API_KEY": API_KEY,
        "ODP_API_HOST": receiver.url,
        "ODP_FLUSH_INTERVAL": "60",  # nothing is sent before exit
    }
    return subprocess.run(  # hang guard: delivery is bounded by shutdown_timeout (5 s)
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestExit:
    """What is queued when the interpreter exits reaches the receiver."""

    def test_normal_exit_delivers(self, receiver: Receiver) -> None:
        """A program that configures logging, logs and ends delivers every event."""
        result = _run(receiver, CONFIGURE_AND_LOG)
        assert (0, "") == (result.returncode, result.stderr)
        assert [f"user{i}" for i in range(5)] == [
            event["identifiers"]["fs_user_id"] for event in receiver.events()
        ]

    def test_logging_shutdown_delivers(self, receiver: Receiver) -> None:
        """``logging.shutdown()`` alone (no atexit hooks after it) delivers what is queued."""
        result = _run(receiver, CONFIGURE_AND_LOG + "\nlogging.shutdown()\nos._exit(0)\n")
        assert (0, "") == (result.returncode, result.stderr)
        assert 5 == len(receiver.events())

    def test_exit_with_http_debug_logging(self, receiver: Receiver) -> None:
        """Exit neither hangs nor loops when the worker's urllib3 records reach the handler."""
        code = CONFIGURE_AND_LOG + textwrap.dedent("""
            logging.getLogger().setLevel(logging.DEBUG)
            logging.getLogger().handlers[0].setLevel(logging.DEBUG)
        """)
        result = _run(receiver, code)
        assert (0, "") == (result.returncode, result.stderr)
        assert 5 == len(receiver.events())
