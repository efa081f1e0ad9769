"""Soak: steady logging from several threads through a receiver that misbehaves, then exits.

For each delivery mode (in memory, and with the durable spool) a fresh child process
logs from several threads at a steady rate while this process drives a local
``ReceiverProcess`` through phases: clean, 500s, 429s with Retry-After, connection
resets and drops, slow answers (some slower than the client's request timeout, which
makes it resend: the duplicates the idempotence_id is for), a full outage, recovery.
The child then closes its client and reports its counts and peak memory; the
receiver's store gives the duplicates. A last part measures how long processes take
to exit when the receiver is down in three ways.

    python bench/soak.py [--seconds 50] [--threads 4] [--rate 250] [--exit-trials 2]

``--seconds`` is the logging time of each mode; the whole run takes about twice that
plus 15 s. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run from a checkout without installing: import the package next to this directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import odp_logging
from odp_logging.server import Fault, ReceiverProcess

PACKAGE_PARENT = str(Path(odp_logging.__file__).parent.parent)
"""Where the package came from: children import the same copy (through PYTHONPATH)."""
API_KEY = "soak-key"
REQUEST_TIMEOUT = 2.0
SHUTDOWN_TIMEOUT = 2.0

# (name, share of the run) in order; faults are injected each second of a phase.
PHASES = (
    ("clean", 0.10),
    ("500s", 0.10),
    ("429s", 0.10),
    ("resets", 0.10),
    ("slow", 0.10),
    ("outage", 0.25),
    ("recovery", 0.25),
)


def _child_env(**variables: str) -> dict[str, str]:
    """The environment of a child: ours, importing this checkout's package, plus ``variables``."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "ODP_API_KEY": API_KEY, **variables}


PASS = Fault("delay", delay=0.0, times=3)
"""Three normal answers. Each second's faults start with them: a client that backs off
sends about one request a second, and a server that failed each first request of a
second would be down for it, not flaky."""


def _faults(phase: str, second: int) -> list[Fault]:
    """The faults to queue during ``second`` of ``phase``."""
    if phase == "500s":
        return [PASS, Fault("status", status=500), PASS, Fault("status", status=503)]
    if phase == "429s" and second % 2 == 0:
        return [PASS, Fault("status", status=429, retry_after="1")]
    if phase == "resets":
        return [PASS, Fault("reset"), PASS, Fault("drop")]
    if phase == "slow":
        slow = [Fault("delay", delay=0.3), PASS]
        if second % 3 == 0:  # longer than the request timeout: the client resends
            slow.append(Fault("delay", delay=REQUEST_TIMEOUT + 0.5))
        return slow
    return []


def drive_faults(receiver: ReceiverProcess, seconds: float, stop: threading.Event) -> None:
    """Play the phases over ``seconds`` (until ``stop``).

    Each second of a phase replaces the faults left from the second before, so that a
    client backing off meets a few failures a second, as from a flaky server, rather
    than a backlog of them; the outage phase fails every request.
    """
    started = time.monotonic()
    boundary = 0.0
    for phase, share in PHASES:
        boundary += share * seconds
        receiver.clear_faults()
        if phase == "outage":
            receiver.inject(Fault("reset", times=None))
        second = 0
        while time.monotonic() - started < boundary and not stop.is_set():
            if phase != "outage":
                receiver.clear_faults()
                receiver.inject(*_faults(phase, second))
            second += 1
            stop.wait(min(1.0, max(boundary - (time.monotonic() - started), 0.0)))
    receiver.clear_faults()


def run_child(args: argparse.Namespace) -> None:
    """In the child: log at a steady rate from several threads, close, print a JSON report."""
    options: dict[str, Any] = {
        "request_timeout": REQUEST_TIMEOUT,
        "shutdown_timeout": args.final_timeout,
    }
    if args.spool:
        options["spool_path"] = args.spool
    client = odp_logging.OdpClient(**options)
    deadline = time.monotonic() + args.seconds
    logged = [0] * args.threads

    def log(thread: int) -> None:
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            logged[thread] += 1
            client.send_odp_event(
                args.action,
                identifiers={"fs_user_id": f"user-{thread}-{logged[thread] % 1000}"},
                data={"item": "shirt", "price": 50.0, "quantity": 2, "thread": thread},
            )
            next_at += interval
            time.sleep(max(next_at - time.monotonic(), 0.0))

    threads = [threading.Thread(target=log, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = time.monotonic()
    client.close()
    closed_in = time.monotonic() - started
    stats = client.stats()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "logged": sum(logged),
        "sent": stats.sent,
        "retried": stats.retried,
        "queued": stats.queued,
        "spooled": stats.spooled,
        "dropped": {reason: count for reason, count in stats.dropped.items() if count},
        "accounted": stats.total == sum(logged),
        "close_seconds": closed_in,
        "peak_rss_mb": _peak_rss_mb(usage),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(report), flush=True)


def _peak_rss_mb(usage: resource.struct_rusage) -> float:
    """This process's peak resident memory, in MiB.

    Linux's VmHWM, because ru_maxrss survives exec() and would report the size of the
    parent that forked this child; ru_maxrss elsewhere.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    return usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def soak(
    receiver: ReceiverProcess, mode: str, args: argparse.Namespace, spool_dir: str
) -> dict[str, Any]:
    """Run one mode's child under the fault phases; return its report plus the receiver's view."""
    receiver.reset()
    action = f"soak-{mode}"
    command = [
        sys.executable, __file__, "--child", "--seconds", str(args.seconds),
        "--threads", str(args.threads), "--rate", str(args.rate), "--action", action,
        "--final-timeout", "30",
    ]  # fmt: skip
    if mode == "spool":
        command += ["--spool", os.path.join(spool_dir, "soak-spool.db")]
    env = _child_env(ODP_API_HOST=receiver.url)
    stop = threading.Event()
    driver = threading.Thread(target=drive_faults, args=(receiver, args.seconds, stop))
    # The child's warnings (retries, a full queue) are expected here: its counts tell more.
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    driver.start()
    output, _ = child.communicate()
    stop.set()
    driver.join()
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    ids = Counter(event["data"]["idempotence_id"] for event in receiver.events(action=action))
    report["received"] = sum(ids.values())
    report["duplicates"] = sum(count - 1 for count in ids.values())
    report["requests"] = receiver.stats()["requests"]
    return report


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def _black_hole() -> Iterator[str]:
    """A loopback URL that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


_EXIT_SCRIPT = """
import odp_logging
client = odp_logging.get_client()
for i in range(1000):
    client.send_odp_event("exit", identifiers={"fs_user_id": str(i)}, data={"i": i})
print("logged", flush=True)
"""


def exit_time(url: str, **variables: str) -> float:
    """Seconds from "logged" to exit of a child that logged 1000 events to ``url``."""
    env = _child_env(ODP_API_HOST=url, ODP_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT), **variables)
    child = subprocess.Popen(
        [sys.executable, "-c", _EXIT_SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "logged":
        raise RuntimeError(f"the exit trial failed (exit status {child.wait()})")
    logged = time.monotonic()
    child.wait()
    return time.monotonic() - logged


def measure_exits(trials: int, spool_dir: str) -> dict[str, float]:
    """Longest exit time of ``trials`` children for each way the receiver can be down."""
    longest: dict[str, float] = {}
    with ReceiverProcess(api_key=API_KEY) as refusing:
        refusing.inject(Fault("status", status=503, retry_after="60", times=None))
        with _black_hole() as hole:
            ways = {
                "connection refused": (_dead_url(), {}),
                "never answers": (hole, {}),
                "503 + Retry-After: 60": (refusing.url, {}),
                "refused, with spool": (
                    _dead_url(),
                    {"ODP_SPOOL_PATH": os.path.join(spool_dir, "exit-spool.db")},
                ),
            }
            for name, (url, variables) in ways.items():
                longest[name] = max(exit_time(url, **variables) for _ in range(trials))
    return longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=50.0, help="logging time per mode")
    parser.add_argument("--threads", type=int, default=4, help="logging threads")
    parser.add_argument("--rate", type=float, default=250.0, help="events a second per thread")
    parser.add_argument("--exit-trials", type=int, default=2, help="children per exit case")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--action", default="soak", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    parser.add_argument("--final-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    print(
        f"odp-logging {odp_logging.__version__} soak on Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs: "
        f"{args.threads} threads x {args.rate:.0f} events/s for {args.seconds:.0f} s per mode"
    )
    print("phases: " + ", ".join(f"{name} {share:.0%}" for name, share in PHASES))
    with tempfile.TemporaryDirectory() as spool_dir:
        with ReceiverProcess(api_key=API_KEY) as receiver:
            reports = {mode: soak(receiver, mode, args, spool_dir) for mode in ("memory", "spool")}
        exits = measure_exits(args.exit_trials, spool_dir)

    rows = [
        ("logged", "logged"),
        ("sent (ODP accepted)", "sent"),
        ("received by the receiver", "received"),
        ("duplicates (same idempotence_id)", "duplicates"),
        ("retried sends", "retried"),
        ("still queued / spooled at end", None),
        ("requests", "requests"),
        ("close() seconds (30 s allowed)", "close_seconds"),
        ("peak RSS, MB", "peak_rss_mb"),
        ("CPU seconds", "cpu_seconds"),
        ("logged == sent + dropped + left", "accounted"),
    ]
    print(f"\n{'':<36}{'memory':>14}{'spool':>14}")
    for label, key in rows:
        cells = []
        for report in reports.values():
            value = report["queued"] + report["spooled"] if key is None else report[key]
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        print(f"{label:<36}{cells[0]:>14}{cells[1]:>14}")
    reasons = sorted({reason for report in reports.values() for reason in report["dropped"]})
    for reason in reasons:
        cells = [str(report["dropped"].get(reason, 0)) for report in reports.values()]
        print(f"{'dropped: ' + reason:<36}{cells[0]:>14}{cells[1]:>14}")
    if not reasons:
        print(f"{'dropped':<36}{'0':>14}{'0':>14}")
    print(
        f"\nexit with the receiver down (shutdown_timeout {SHUTDOWN_TIMEOUT:.0f} s, "
        f"bound {SHUTDOWN_TIMEOUT + 1:.0f} s), longest of {args.exit_trials}:"
    )
    for name, seconds in exits.items():
        print(f"  {name:<34}{seconds:>6.2f} s")


if __name__ == "__main__":
    main()
