"""Helpers shared by the delivery tests: subprocesses, dead endpoints, a fast retry policy."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import odp_logging
from odp_logging._retry import RetryPolicy

FAST_RETRY = RetryPolicy(
    max_attempts=1000, backoff_initial=0.05, backoff_max=0.2, max_elapsed=600.0
)
"""Backoff in tens of milliseconds, never giving up: a test sees several retries a second."""

FAST_RETRY_SOURCE = (
    "from odp_logging._retry import RetryPolicy\n"
    "FAST_RETRY = RetryPolicy(\n"
    "    max_attempts=1000, backoff_initial=0.05, backoff_max=0.2, max_elapsed=600.0\n"
    ")\n"
)
"""The same policy, for the scripts that tests run in subprocesses."""

PACKAGE_PARENT = str(Path(odp_logging.__file__).absolute().parent.parent)
"""Where the odp_logging under test lives, so that subprocesses import the same copy."""


def python_env(**variables: str) -> dict[str, str]:
    """The environment for a child Python: ours, importing this odp_logging, plus ``variables``."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **variables}


def script(source: str) -> list[str]:
    """The command line running ``source`` (dedented) with this interpreter."""
    return [sys.executable, "-c", textwrap.dedent(source)]


def run_python(
    source: str, timeout: float = 30.0, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a child Python and return its outcome (output captured as text)."""
    return subprocess.run(
        script(source),
        env=python_env(**variables),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_python(source: str, **variables: str) -> subprocess.Popen[str]:
    """Start ``source`` in a child Python with piped, line-buffered text output."""
    return subprocess.Popen(
        script(source),
        env=python_env(**variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A loopback URL that accepts connections and never answers; yields the URL."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for sock in accepted:
            sock.close()
        server.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds; False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def spooled_rows(path: str | os.PathLike[str]) -> int:
    """How many events the spool at ``path`` holds (0 when it does not exist yet)."""
    import sqlite3

    if not os.path.exists(path):
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
        try:
            (count,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0
    return int(count)
