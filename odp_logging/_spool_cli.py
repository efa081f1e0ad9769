"""``odp-logging spool status|replay|purge``: inspect, send and empty a durable spool.

Wired into the ``odp-logging`` command by :func:`add_spool_commands`. Each leaf
parser sets ``run``, a callable taking the parsed namespace and returning the exit
status: 0 success, 1 events left undelivered (or a purge refused), 2 usage error.
Nothing here prints an event's content or the API key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Final

from odp_logging._client import OdpClient
from odp_logging._config import Options
from odp_logging._spool import SpoolError, SpoolStatus, purge, status

EXIT_OK: Final = 0
EXIT_NOT_DELIVERED: Final = 1
EXIT_USAGE: Final = 2


def add_spool_commands(commands: Any) -> None:
    """Add ``spool`` and its ``status``, ``replay`` and ``purge`` actions to ``commands``.

    Args:
        commands: The ``add_subparsers()`` object of the ``odp-logging`` parser.
    """
    spool = commands.add_parser(
        "spool",
        help="inspect, send or empty a durable spool (spool_path)",
        description="Inspect, send or empty the SQLite spool that clients with spool_path "
        "(ODP_SPOOL_PATH) keep undelivered events in. See docs/delivery.md.",
    )
    actions = spool.add_subparsers(dest="spool_action", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--path",
        default=os.environ.get("ODP_SPOOL_PATH"),
        help="the spool file (default: $ODP_SPOOL_PATH)",
    )

    show = actions.add_parser(
        "status",
        parents=[where],
        help="show what the spool holds and which processes use it",
        description="Show how many events wait in the spool, how old the oldest is, and "
        "the processes registered in it. Changes nothing.",
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(run=run_status)

    replay = actions.add_parser(
        "replay",
        parents=[where],
        help="send the events that processes which are gone left in the spool",
        description="Adopt the events of processes that are no longer running and send "
        "them now, with their original idempotence_id. Events held by running processes "
        "are left to them.",
    )
    replay.add_argument(
        "--api-key",
        metavar="KEY",
        help="ODP public API key (default: $ODP_API_KEY; prefer the variable, "
        "command lines are visible to other users)",
    )
    replay.add_argument(
        "--api-host", metavar="URL", help="ODP API base URL (default: $ODP_API_HOST or by key)"
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="most seconds to spend sending (%(default)s); what is left stays in the spool",
    )
    replay.set_defaults(run=run_replay)

    empty = actions.add_parser(
        "purge",
        parents=[where],
        help="delete every event in the spool",
        description="Delete every event in the spool, for good, and compact the file.",
    )
    empty.add_argument("--yes", action="store_true", help="really delete (required)")
    empty.add_argument(
        "--force",
        action="store_true",
        help="delete even the events of processes that are still running",
    )
    empty.set_defaults(run=run_purge)


def run_status(args: argparse.Namespace) -> int:
    """Print the spool's status."""
    report = _status_or_none(args.path)
    if report is None:
        return EXIT_USAGE
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return EXIT_OK
    print(f"spool: {report.path}")
    print(
        f"events waiting: {report.events} ({_size(report.event_bytes)} of JSON; "
        f"file {_size(report.file_bytes)})"
    )
    if report.oldest_age is not None:
        print(f"oldest event: stored {_duration(report.oldest_age)} ago")
    for owner in report.owners:
        state = "running" if owner.alive else "gone or elsewhere"
        print(
            f"process {owner.pid} on {owner.host}: {state}, heartbeat "
            f"{_duration(owner.heartbeat_age)} ago, holds {owner.events} event(s)"
        )
    return EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """Send what processes that are gone left in the spool.

    Raises:
        ConfigError: ``--api-key`` or ``--api-host`` is invalid.
    """
    if _status_or_none(args.path) is None:
        return EXIT_USAGE
    options = Options.resolve(api_key=args.api_key, api_host=args.api_host, spool_path=args.path)
    if not options.api_key:
        print("odp-logging: no API key: set ODP_API_KEY or pass --api-key", file=sys.stderr)
        return EXIT_USAGE
    client = OdpClient.from_options(options)  # its worker adopts the orphans at once
    delivered = client.flush(args.timeout)
    client.close(timeout=0)
    stats = client.stats()
    dropped = {reason: count for reason, count in stats.dropped.items() if count}
    summary = f"adopted {stats.recovered} event(s); sent {stats.sent}"
    if dropped:
        summary += f"; dropped {dropped}"
    if stats.spooled:
        summary += f"; {stats.spooled} left in the spool"
    print(summary)
    report = _status_or_none(args.path)
    running = sum(owner.events for owner in report.owners if owner.alive) if report else 0
    if running:
        print(f"{running} event(s) are held by running processes, which send them")
    ok = delivered and not stats.spooled and not dropped
    return EXIT_OK if ok else EXIT_NOT_DELIVERED


def run_purge(args: argparse.Namespace) -> int:
    """Delete every event in the spool, if asked to and if no running process holds any."""
    report = _status_or_none(args.path)
    if report is None:
        return EXIT_USAGE
    running = sum(owner.events for owner in report.owners if owner.alive)
    if running and not args.force:
        print(
            f"odp-logging: {running} event(s) are held by running processes; "
            "stop them, or pass --force",
            file=sys.stderr,
        )
        return EXIT_NOT_DELIVERED
    if not args.yes:
        print(
            f"odp-logging: this deletes {report.events} event(s) for good; pass --yes",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        deleted = purge(report.path)
    except SpoolError as exc:
        print(f"odp-logging: {exc}", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    print(f"deleted {deleted} event(s) from {report.path}")
    return EXIT_OK


def _status_or_none(path: str | None) -> SpoolStatus | None:
    """Read the spool's status, or say on stderr why it cannot be read."""
    if not path:
        print("odp-logging: no spool: pass --path or set ODP_SPOOL_PATH", file=sys.stderr)
        return None
    try:
        return status(path)
    except SpoolError as exc:
        print(f"odp-logging: {exc}", file=sys.stderr)
        return None


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    amount, unit = count / 1000, "KB"
    for larger in ("MB", "GB"):
        if amount < 1000:
            break
        amount, unit = amount / 1000, larger
    return f"{amount:.1f} {unit}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
