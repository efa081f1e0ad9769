"""The ``odp-logging`` command: ``demo``, ``serve``, ``send``, ``spool`` and ``config``.

Every subcommand has ``--help``. Exit status: 0 on success, 1 when events were not
delivered (or the demo's did not all arrive), 2 for a usage or configuration error.
Nothing here prints the API key: only its masked hint (``****`` and the last four
characters). See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import logging.handlers
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final, TextIO

import odp_logging
from odp_logging import server
from odp_logging._client import OdpClient
from odp_logging._config import DEFAULT_API_HOST, ENVIRONMENT_VARIABLES, ConfigError, Options
from odp_logging._event import EventBuilder, Rejection

EXIT_OK: Final = 0
EXIT_NOT_DELIVERED: Final = 1
EXIT_USAGE: Final = 2

_SDK_DATA: Final = frozenset(
    {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
)
"""Data keys the client adds to every event; tables leave them out."""
_PAYLOAD_KEYS: Final = frozenset({"action", "type", "identifiers", "data"})
_SHOWN_PROBLEMS: Final = 20
"""Rejected lines listed one by one in a backfill's summary; the rest are counted."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``odp-logging`` command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0 success, 1 events not delivered, 2 usage or configuration error.
    """
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print(f"odp-logging: {exc}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``odp-logging`` command and its subcommands.

    Each leaf parser sets ``run``: a callable taking the parsed namespace and returning
    the exit status. ``add_spool_commands`` from ``odp_logging._spool_cli`` follows the
    same convention.
    """
    parser = argparse.ArgumentParser(
        prog="odp-logging",
        description="Send Optimizely Data Platform (ODP) events by logging: tools.",
        epilog="Run 'odp-logging COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=odp_logging.__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="send sample events to a local receiver and show what arrived",
        description="Start a local ODP receiver on a free loopback port, send sample events "
        "through the client and every installed integration (logging, structlog, "
        "OpenTelemetry), and print what the receiver stored. No account, no network.",
    )
    demo.set_defaults(run=run_demo)

    serve = commands.add_parser(
        "serve",
        help="run a local ODP receiver in the foreground",
        description="Run a local ODP-compatible receiver (POST /v3/events) until Ctrl-C. "
        "Open its URL in a browser to watch the events arrive.",
    )
    server.add_arguments(serve)
    serve.set_defaults(run=server.run)

    _add_send_command(commands)
    _add_spool_commands(commands)

    config = commands.add_parser(
        "config",
        parents=[_client_flags()],
        help="print the effective configuration and where each value came from",
        description="Print the options a client would use here: from the flags, then the "
        "ODP_* environment variables, then the defaults. The API key is masked.",
    )
    config.set_defaults(run=run_config)
    return parser


def _client_flags() -> argparse.ArgumentParser:
    """The flags that name where to send, shared by ``send`` and ``config``."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--api-key",
        metavar="KEY",
        help="ODP public API key (default: $ODP_API_KEY; prefer the variable, "
        "command lines are visible to other users)",
    )
    flags.add_argument(
        "--api-host", metavar="URL", help="ODP API base URL (default: $ODP_API_HOST or by key)"
    )
    return flags


def _add_send_command(commands: Any) -> None:
    send = commands.add_parser(
        "send",
        parents=[_client_flags()],
        help="send one event, or backfill events from a JSON Lines file",
        description="Send one event to check a setup (exit status 0 when ODP accepted it), "
        "or every event of a JSON Lines file with --file.",
        epilog="Data values that read as JSON numbers, true, false or null are sent as such; "
        "quote a value to send it as a string: --data 'zip=\"01234\"'. "
        "Each line of a --file holds one event: "
        '{"action": ..., "identifiers": {...}, "data": {...}, "type": ...}.',
    )
    send.add_argument("action", nargs="?", help="the event's action, e.g. purchased")
    send.add_argument(
        "--identifier",
        "-i",
        dest="identifiers",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an identifier, e.g. fs_user_id=user123 (repeat for several)",
    )
    send.add_argument(
        "--data",
        "-d",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a data field, e.g. price=50.0 (repeat for several)",
    )
    send.add_argument("--type", default="fullstack", help="the event's type (%(default)s)")
    send.add_argument(
        "--file",
        "-f",
        metavar="PATH",
        help="send every event of this JSON Lines file instead ('-' reads standard input)",
    )
    send.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar on stderr while sending a file (default: when a terminal)",
    )
    send.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="most seconds to wait for ODP to accept what was sent (%(default)s)",
    )
    send.set_defaults(run=run_send)


def _add_spool_commands(commands: Any) -> None:
    """Add ``spool status|replay|purge``, when the spool's commands are installed."""
    try:
        from odp_logging._spool_cli import add_spool_commands
    except ImportError:  # the durable spool's tools are not part of this build
        return
    add_spool_commands(commands)


# -- demo -------------------------------------------------------------------------

_DEMO_USER: Final = {"fs_user_id": "user123"}


def _demo_client(client: OdpClient) -> None:
    client.send_odp_event(
        "signed_up",
        identifiers={**_DEMO_USER, "email": "user@example.com"},
        data={"plan": "pro", "via": "OdpClient"},
    )


def _demo_logging(client: OdpClient) -> None:
    from odp_logging.handler import OdpHandler

    log = logging.getLogger("shop")
    handler = OdpHandler(client=client)
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # keep the demo's records off the user's console
    try:
        with odp_logging.context(identifiers=_DEMO_USER):
            log.info("added_to_cart", extra={"odp": {"data": {"item": "shirt", "via": "logging"}}})
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _demo_structlog(client: OdpClient) -> None:
    import structlog

    from odp_logging.structlog import OdpProcessor

    log = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[OdpProcessor(client=client), structlog.processors.KeyValueRenderer()],
    )
    log.info(
        "purchased",
        odp={
            "identifiers": _DEMO_USER,
            "data": {"item": "shirt", "price": 50.0, "via": "structlog"},
        },
    )


def _demo_opentelemetry(client: OdpClient) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from odp_logging.otel import OdpSpanProcessor

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(OdpSpanProcessor(client=client))
    with provider.get_tracer("odp-logging demo").start_as_current_span("checkout") as span:
        span.set_attribute("odp.identifiers.fs_user_id", _DEMO_USER["fs_user_id"])
        span.add_event(
            "order_shipped", {"odp.data.carrier": "ups", "odp.data.via": "OpenTelemetry"}
        )
    provider.shutdown()


_DEMO_SENDERS: Final[tuple[tuple[str, str, Callable[[OdpClient], None]], ...]] = (
    # (what the event goes through, the extra that installs it, the sender)
    ("OdpClient", "", _demo_client),
    ("logging", "", _demo_logging),
    ("structlog", "structlog", _demo_structlog),
    ("OpenTelemetry", "otel", _demo_opentelemetry),
)


def run_demo(args: argparse.Namespace) -> int:
    """Send one sample event through each installed integration to a local receiver."""
    started = time.monotonic()
    with server.Receiver() as receiver:
        # Resolved without the environment: ODP_* settings meant for real use (a spool,
        # enabled=false, a host) must not change what the demo shows.
        client = OdpClient.from_options(
            Options.resolve(
                environ={}, api_key="demo-public-key", api_host=receiver.url, flush_interval=0.05
            )
        )
        skipped: list[str] = []
        for name, extra, send in _DEMO_SENDERS:
            try:
                send(client)
            except ImportError as exc:  # the integration or its library is not installed
                hint = f"; pip install 'odp-logging[{extra}]'" if extra else ""
                skipped.append(f"{name} ({exc}){hint}")
        sent = len(_DEMO_SENDERS) - len(skipped)
        delivered = client.flush(timeout=5.0)
        stats = client.stats()
        client.close(timeout=1.0)
        events = receiver.events()
        print(f"odp-logging {odp_logging.__version__} demo: a local ODP receiver at {receiver.url}")
        print("(no account and no network: the receiver runs inside this command)\n")
        print(_render_table(["via", "action", "identifiers", "data"], _demo_rows(events)))
        elapsed = time.monotonic() - started
        print(f"\n{sent} events sent, {len(events)} stored by the receiver, in {elapsed:.1f} s.")
    for line in skipped:
        print(f"skipped {line}")
    if not delivered or len(events) != sent:
        dropped = ", ".join(f"{r}={n}" for r, n in stats.dropped.items() if n) or "none"
        print(f"odp-logging: not every event arrived (dropped: {dropped})", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    print("Next: 'odp-logging serve' runs a receiver and a page that lists events as they arrive.")
    return EXIT_OK


def _demo_rows(events: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for event in events:
        data = dict(event.get("data", {}))
        via = str(data.pop("via", ""))
        rows.append(
            [via, event["action"], _pairs(event["identifiers"]), _pairs(_without_sdk_data(data))]
        )
    return rows


def _without_sdk_data(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in _SDK_DATA}


def _pairs(mapping: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in mapping.items())


def _render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Align ``rows`` under ``headers``; on a terminal, cut the last column to its width."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    if sys.stdout.isatty():
        room = shutil.get_terminal_size().columns - sum(widths[:-1]) - 2 * (len(widths) - 1)
        widths[-1] = min(widths[-1], max(room, 20))
    rule = "\u2500" if _can_print("\u2500") else "-"
    lines = [headers, [rule * width for width in widths], *rows]
    return "\n".join(
        "  ".join(
            [
                *(cell.ljust(width) for cell, width in zip(line[:-1], widths[:-1], strict=True)),
                _cut(line[-1], widths[-1]),
            ]
        ).rstrip()
        for line in lines
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# -- send -------------------------------------------------------------------------


def run_send(args: argparse.Namespace) -> int:
    """Send one event from the flags, or every event of ``--file``; report delivery."""
    if (args.action is None) == (args.file is None):
        print("odp-logging send: give either an ACTION or --file PATH", file=sys.stderr)
        return EXIT_USAGE
    if args.file is not None and (args.identifiers or args.data):
        print(
            "odp-logging send: --identifier and --data go with ACTION, not --file", file=sys.stderr
        )
        return EXIT_USAGE
    options = Options.resolve(api_key=args.api_key, api_host=args.api_host)
    if not options.api_key and not options.uses_datafile_url:
        print(
            "odp-logging send: no API key: set ODP_API_KEY (or ODP_SDK_KEY) or pass --api-key",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        identifiers = dict(_split_pair(text) for text in args.identifiers)
        data = {name: _data_value(text) for name, text in map(_split_pair, args.data)}
    except ValueError as exc:
        print(f"odp-logging send: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = OdpClient.from_options(options)
    try:
        if args.file is not None:
            try:
                return _backfill(client, args.file, args.progress, args.timeout)
            except OSError as exc:
                print(f"odp-logging send: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return EXIT_USAGE
        client.send_odp_event(args.action, identifiers=identifiers, type=args.type, data=data)
        return _report_one(client, args.action, args.timeout)
    finally:
        client.close(timeout=0)


def _split_pair(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise ValueError("--identifier and --data take NAME=VALUE, with a name before the '='")
    return name, value


def _data_value(text: str) -> object:
    """Read ``text`` as a JSON scalar when it is one (``50``, ``true``, ``"01"``), else as text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return text if isinstance(value, (dict, list)) else value


def _report_one(client: OdpClient, action: str, timeout: float) -> int:
    settled = client.flush(timeout)
    stats = client.stats()
    where = client.options.api_host
    if stats.sent:
        print(f"sent {action!r} to {where}: accepted")
        return EXIT_OK
    if not settled:
        print(
            f"odp-logging send: {where} did not accept the event within {timeout:g} s",
            file=sys.stderr,
        )
    else:
        reasons = ", ".join(reason for reason, count in stats.dropped.items() if count)
        print(f"odp-logging send: the event was not sent ({reasons})", file=sys.stderr)
    return EXIT_NOT_DELIVERED


@dataclasses.dataclass
class _Backfill:
    """The running counts of a file backfill."""

    total_lines: int | None
    read: int = 0
    queued: int = 0
    rejected: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    stopped_at: int | None = None


def _backfill(client: OdpClient, path: str, progress: bool | None, timeout: float) -> int:
    """Send every line of ``path``; rejected lines are listed with their numbers.

    Lines are checked with the client's own event rules on this thread, so that a bad
    line is reported by number; the valid ones go through ``send_payload``. The queue is
    flushed every ``chunk`` lines, so that a large file never overflows it.
    """
    builder = EventBuilder(client.options.data_source, dict(client.options.static_data))
    chunk = max(1, min(client.options.max_queue_size // 2, 1000))
    with _open_lines(path) as (stream, total_lines):
        run = _Backfill(total_lines)
        bar = _ProgressBar(
            sys.stderr, enabled=sys.stderr.isatty() if progress is None else progress
        )
        for number, line in enumerate(stream, 1):
            run.read = number
            bar.show(run, client)
            if not line.strip():
                continue
            payload, problem = _read_event(line, builder)
            if problem is not None:
                run.rejected.append((number, problem))
                continue
            client.send_payload(payload, "")
            run.queued += 1
            if run.queued % chunk == 0 and not client.flush(timeout):
                run.stopped_at = number
                break
        settled = client.flush(timeout)
        bar.show(run, client, final=True)
    return _summarise(run, client, settled, timeout)


def _read_event(line: bytes, builder: EventBuilder) -> tuple[dict[str, Any], str | None]:
    """Parse one line and check it with the client's event rules; say what is wrong."""
    try:
        payload = json.loads(line)
    except ValueError as exc:  # UnicodeDecodeError included: the message names no content
        return {}, f"not JSON ({exc})"
    if not isinstance(payload, dict):
        return {}, "not a JSON object"
    unknown = sorted(set(payload) - _PAYLOAD_KEYS)
    if unknown:
        return {}, f"unknown field {unknown[0]!r} (fields: action, type, identifiers, data)"
    checked = builder.build(
        payload.get("action"), payload.get("type"), payload.get("identifiers"), payload.get("data")
    )
    if isinstance(checked, Rejection):
        return {}, f"{checked.field} {checked.problem}"
    return payload, None


@contextlib.contextmanager
def _open_lines(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """Open ``path`` (``-``: standard input) as bytes, and count its lines when it is a file.

    Bytes, so that a line that is not UTF-8 is one rejected line, not the end of the run.
    """
    if path == "-":
        yield sys.stdin.buffer, None
        return
    with open(path, "rb") as stream:
        total = sum(1 for _ in stream)
        stream.seek(0)
        yield stream, total


class _ProgressBar:
    """A one-line progress bar, redrawn in place at most ten times a second."""

    WIDTH: Final = 30

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._last = 0.0

    def show(self, run: _Backfill, client: OdpClient, *, final: bool = False) -> None:
        """Redraw the bar, unless it was drawn less than 0.1 s ago (a ``final`` one always)."""
        now = time.monotonic()
        if not self._enabled or (not final and now - self._last < 0.1):
            return
        self._last = now
        counts = f"{client.stats().sent} sent  {len(run.rejected)} rejected"
        if run.total_lines:
            done = min(run.read / run.total_lines, 1.0)
            filled = round(done * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"[{bar}] {done:4.0%}  {run.read}/{run.total_lines} lines  {counts}"
        else:
            text = f"{run.read} lines  {counts}"
        self._stream.write("\r" + text + ("\n" if final else ""))
        self._stream.flush()


def _summarise(run: _Backfill, client: OdpClient, settled: bool, timeout: float) -> int:
    stats = client.stats()
    print(f"read {run.read} lines: {stats.sent} events sent, {len(run.rejected)} lines rejected")
    for number, problem in run.rejected[:_SHOWN_PROBLEMS]:
        print(f"  line {number}: {problem}")
    if len(run.rejected) > _SHOWN_PROBLEMS:
        print(f"  ... and {len(run.rejected) - _SHOWN_PROBLEMS} more rejected lines")
    dropped = {reason: count for reason, count in stats.dropped.items() if count}
    if dropped:
        listed = ", ".join(f"{reason}={count}" for reason, count in dropped.items())
        print(f"not delivered after sending: {listed}")
    if run.stopped_at is not None or not settled:
        where = f" after line {run.stopped_at}" if run.stopped_at is not None else ""
        print(
            f"stopped{where}: {client.options.api_host} did not accept events within "
            f"{timeout:g} s; {stats.queued} events left unsent"
        )
    failed = run.rejected or dropped or run.stopped_at is not None or not settled
    return EXIT_NOT_DELIVERED if failed else EXIT_OK


# -- config -----------------------------------------------------------------------


def run_config(args: argparse.Namespace) -> int:
    """Print each option's effective value and its source: flag, environment or default."""
    flags = {"api_key": args.api_key, "api_host": args.api_host}
    # The client warns about ODP_* values it ignores; keep those warnings for the output.
    library_logger = logging.getLogger("odp_logging")
    collect = logging.handlers.BufferingHandler(capacity=1000)
    library_logger.addHandler(collect)
    try:
        options = Options.resolve(**flags)
    finally:
        library_logger.removeHandler(collect)
    warnings = [record.getMessage() for record in collect.buffer]
    ignored = {env for env in ENVIRONMENT_VARIABLES.values() if any(env in w for w in warnings)}
    rows = [
        [
            field.name,
            _shown_value(options, field.name),
            _source(field.name, flags, options, ignored),
        ]
        for field in dataclasses.fields(Options)
    ]
    print(f"odp-logging {odp_logging.__version__}: the options a client would use here")
    print()
    print(_render_table(["option", "value", "source"], rows))
    print(f"\nevents go to {options.events_url}")
    for text in warnings:
        print(f"warning: {text}")
    return EXIT_OK


def _source(name: str, flags: dict[str, Any], options: Options, ignored: set[str]) -> str:
    """Say where an option's value came from: a flag, a variable, or a default."""
    env_name = ENVIRONMENT_VARIABLES.get(name)
    if flags.get(name) is not None:
        return "--" + name.replace("_", "-")
    if env_name is not None and env_name in os.environ and env_name not in ignored:
        return f"${env_name}"
    if name == "api_host" and options.api_host != DEFAULT_API_HOST:
        return "default for the key's region"
    return "default"


def _shown_value(options: Options, name: str) -> str:
    """The value as it is safe to print: secrets masked, ``None`` as ``(none)``."""
    if name == "api_key":
        return options.api_key_hint
    value = getattr(options, name)
    if name.endswith("_key"):
        return "****" if value else "(none)"
    if name == "datafile":  # it names the ODP key
        return "(given)" if value else "(none)"
    if name == "static_data":
        return json.dumps(dict(value)) if value else "(none)"
    return "(none)" if value is None else str(value)
