"""`ReceiverProcess`: the receiver in a subprocess, driven through its control API."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlencode

from ._app import CONTROL_PREFIX
from ._faults import Fault
from ._store import RequestRecord, Stats

# The directory holding the odp_logging package, so the child imports this very copy.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class ReceiverProcess:
    """A receiver run as `python -m odp_logging.server` in a subprocess.

    It has the methods of `Receiver` and forwards them over the control API
    (`/_receiver/...`), so a test or benchmark does not share the GIL with the receiver.

    Args:
        host: Loopback address to listen on.
        port: Port to listen on; 0 (default) lets the child pick a free one.
        db_path: SQLite file for the child to store into; `None` keeps events in its memory.
        api_key: The only `x-api-key` accepted; `None` accepts any non-empty key.
        startup_timeout: Seconds `start()` waits for the child to be ready.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        db_path: str | None = None,
        api_key: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self._command = [sys.executable, "-m", "odp_logging.server", "--host", host]
        self._command += ["--port", str(port)]
        if db_path is not None:
            self._command += ["--db", db_path]
        if api_key is not None:
            self._command += ["--api-key", api_key]
        self._host = host
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    def start(self) -> ReceiverProcess:
        """Start the child and wait until it serves; returns `self`.

        Raises:
            RuntimeError: If it was started before, or the child exits or is not ready
                within `startup_timeout` (it is then killed).
        """
        if self._process is not None:
            msg = "a ReceiverProcess can be started once"
            raise RuntimeError(msg)
        pythonpath = os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self._command,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
        assert self._process.stdout is not None
        line = _read_line(self._process.stdout, self._startup_timeout)
        match = re.search(r"http://\S+", line or "")
        if match is None:
            self._process.kill()
            self._process.wait()
            msg = f"the receiver did not start (exit code {self._process.returncode}): {line!r}"
            raise RuntimeError(msg)
        self._url = match.group()
        return self

    @property
    def pid(self) -> int:
        """The receiver child's process id (the benchmarks read its CPU time)."""
        if self._process is None:
            raise RuntimeError("the ReceiverProcess is not started")
        return self._process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the child with SIGTERM (killing it after `timeout` seconds); idempotent."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        assert self._process.stdout is not None
        self._process.stdout.close()

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL such as `http://127.0.0.1:PORT`, to use as the client's `api_host`."""
        if self._url is None:
            msg = "the ReceiverProcess is not started"
            raise RuntimeError(msg)
        return self._url

    @property
    def port(self) -> int:
        """The port the child listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def events(
        self, action: str | None = None, identifier: str | None = None
    ) -> list[dict[str, Any]]:
        """Return stored events, oldest first; see `Receiver.events`."""
        query = {
            name: value for name, value in [("action", action), ("identifier", identifier)] if value
        }
        result: list[dict[str, Any]] = self._call("GET", "events", query)
        return result

    def requests(self) -> list[RequestRecord]:
        """Return the log of requests to the ODP API, oldest first."""
        result: list[RequestRecord] = self._call("GET", "requests")
        return result

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at least `n` events are stored; `False` if `timeout` seconds pass first."""
        result = self._call("GET", "wait", {"events": n, "timeout": timeout}, timeout=timeout + 5)
        return bool(result["ok"])

    def inject(self, *faults: Fault) -> None:
        """Queue `faults` for the next requests to `/v3/events`, behind any waiting ones."""
        self._call("POST", "faults", body=[fault.to_json() for fault in faults])

    def clear_faults(self) -> None:
        """Drop waiting faults, ending an outage."""
        self._call("DELETE", "faults")

    def reset(self) -> None:
        """Forget stored events, the request log and waiting faults."""
        self._call("POST", "reset")

    def stats(self) -> Stats:
        """Return counters: requests, events accepted and named invalid, answers by status."""
        result: Stats = self._call("GET", "stats")
        return result

    def _call(
        self,
        method: str,
        route: str,
        query: dict[str, Any] | None = None,
        body: object = None,
        timeout: float = 10.0,
    ) -> Any:
        """Send one control request on a fresh connection and return its decoded JSON.

        Raises:
            RuntimeError: If the control API answers an error.
        """
        target = CONTROL_PREFIX + route + (f"?{urlencode(query)}" if query else "")
        connection = http.client.HTTPConnection(self._host, self.port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, target, payload, {"content-type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status != 200:
            msg = f"control API {method} {route}: {response.status} {data.decode(errors='replace')}"
            raise RuntimeError(msg)
        return json.loads(data)


def _read_line(stream: IO[str], timeout: float) -> str | None:
    """Read one line from `stream`, or return `None` after `timeout` seconds.

    A thread does the read because pipes cannot be waited on with a timeout portably.
    """
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None
