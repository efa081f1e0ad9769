"""gunicorn: ``--preload`` with several workers, each sending its own events.

Run: ``python examples/frameworks/gunicorn_app.py``

It starts ``gunicorn --preload --workers 3 'gunicorn_app:create_app()'`` on a free port of
127.0.0.1, sends concurrent requests until several workers have answered, stops gunicorn
with SIGTERM and shows the events that arrived.

With ``--preload`` the app, and so the handler and its client, is built once in the
master, then the workers are forked from it. odp-logging is fork-safe: each worker starts
its own sending thread on its first event and never sends the master's queue; at a
worker's graceful exit, what it queued is delivered within ``shutdown_timeout``.
"""

from __future__ import annotations

import logging.config
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.request import urlopen

from _local import odp_destination, report

HERE = Path(__file__).resolve().parent
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"odp": {"class": "odp_logging.OdpHandler", "level": "INFO"}},
    "loggers": {"shop": {"handlers": ["odp"], "level": "INFO"}},
}
log = logging.getLogger("shop")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def create_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """Configure logging (key and host from ODP_API_KEY / ODP_API_HOST); return the WSGI app."""
    logging.config.dictConfig(LOGGING)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        user = parse_qs(environ.get("QUERY_STRING", "")).get("user", ["anonymous"])[0]
        log.info(
            "page_viewed",
            extra={"odp": {"identifiers": {"fs_user_id": user}, "data": {"worker": os.getpid()}}},
        )
        time.sleep(0.05)  # stands in for real work, so that concurrent requests spread out
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]

    return app


def main() -> None:
    """Serve with three preloaded workers, send requests, stop, and show what arrived."""
    with odp_destination() as receiver:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--preload", "--workers", "3"),
                *("--bind", "127.0.0.1:0", "gunicorn_app:create_app()"),
            ],
            cwd=HERE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = _listening_url(server)
            workers = _request_until_several_workers_answer(url)
            print(f"workers that answered: {len(workers)}")
        finally:
            server.send_signal(signal.SIGTERM)  # graceful: workers finish, then exit
            server.communicate(timeout=30)
        report(receiver)


def _listening_url(server: subprocess.Popen[str]) -> str:
    """Read gunicorn's log until it says where it listens."""
    assert server.stderr is not None
    for line in server.stderr:
        match = re.search(r"Listening at: (http://\S+)", line)
        if match:
            return match.group(1)
    raise RuntimeError("gunicorn exited before listening")


def _request_until_several_workers_answer(url: str) -> set[str]:
    """Send rounds of six concurrent requests until two workers or more have answered."""
    workers: set[str] = set()
    with ThreadPoolExecutor(6) as pool:
        for round_number in range(10):
            users = [f"user{round_number * 6 + n}" for n in range(6)]
            workers.update(pool.map(lambda user: _get(f"{url}/?user={user}"), users))
            if len(workers) > 1:
                break
    return workers


def _get(url: str) -> str:
    with urlopen(url, timeout=10) as response:
        return response.read().decode()


if __name__ == "__main__":
    main()
