"""Running the receiver in the foreground: `python -m odp_logging.server`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from ._receiver import Receiver

DEFAULT_PORT = 8765
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    db_path: str | None = None,
    api_key: str | None = None,
    ready_callback: Callable[[str], None] | None = None,
) -> None:
    """Serve a `Receiver` until SIGINT or SIGTERM, then stop it cleanly.

    Must be called from the main thread, which owns signal handling; the previous handlers
    are restored on return.

    Args:
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        db_path: SQLite file to store into; `None` keeps events in memory.
        api_key: The only `x-api-key` accepted; `None` accepts any non-empty key.
        ready_callback: Called with the base URL once serving; by default prints
            `ODP receiver listening on <url>` on stdout (one flushed line).

    Raises:
        OSError: If the address cannot be bound.
    """
    stop = threading.Event()
    # Python runs signal handlers on the main thread, between the waits of stop.wait().
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        with Receiver(host, port, db_path=db_path, api_key=api_key) as receiver:
            (ready_callback or _announce)(receiver.url)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announce(url: str) -> None:
    print(f"ODP receiver listening on {url} (open it in a browser to watch events)", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the receiver's options (`--host --port --db --api-key`) to `parser`, for `run`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on, 0 for any (%(default)s)"
    )
    parser.add_argument(
        "--db",
        dest="db_path",
        metavar="PATH",
        help="SQLite file to store events in (default: in memory, gone on exit)",
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help="accept only this x-api-key (default: any non-empty key)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve with options parsed by a parser that `add_arguments` filled; return the exit code."""
    try:
        serve(args.host, args.port, args.db_path, args.api_key)
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`), serve until a signal, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m odp_logging.server",
        description="Run a local ODP-compatible events receiver (POST /v3/events).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
