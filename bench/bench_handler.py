"""What OdpHandler costs the thread that logs, next to a NullHandler and a QueueHandler.

Run: ``python -m bench.bench_handler [--calls N] [--rounds R]``

In one run, loggers set up alike, each with one handler, take the same calls:

* ``log.info("purchased", extra={"odp": {...}})`` through a ``NullHandler`` (the floor:
  what logging itself costs), a stdlib ``QueueHandler`` with a running ``QueueListener``
  feeding a ``NullHandler`` (the usual way to take slow handlers off the application's
  thread), ``OdpHandler``, and ``OdpHandler`` with the standard ``Handler.handle``
  (which takes the handler's lock around ``emit``);
* ``log.info("served page")``, a record without ``odp``, through a ``NullHandler`` and
  both ``OdpHandler`` variants.

Rounds alternate between the variants so that drift affects all alike. Per call we
report the logging thread's CPU time (``time.thread_time_ns``, which leaves out the
client's worker and the listener's thread) and the wall time (which includes waiting
for the GIL while those threads work), as medians over rounds, and their ratios to the
``NullHandler`` doing the same call. The client delivers to a ReceiverProcess, so the
receiver does not share our GIL; the worker's backlog is flushed between the two
calls so that it does not skew the wall times of the second.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import logging.handlers
import queue
from collections.abc import Callable

import odp_logging
from bench._harness import API_KEY, interleaved_medians, print_delivery
from odp_logging import OdpHandler
from odp_logging.server import ReceiverProcess

PAYLOAD = {
    "identifiers": {"fs_user_id": "user123", "email": "user@example.com"},
    "data": {"item": "shirt", "price": 50.0},
}
_names = itertools.count()


class LockedOdpHandler(OdpHandler):
    """OdpHandler with the standard ``handle``, which holds the handler's lock in ``emit``."""

    handle = logging.Handler.handle


def logger_with(handler: logging.Handler) -> logging.Logger:
    """A fresh logger at INFO whose only handler is ``handler``."""
    logger = logging.getLogger(f"bench.{next(_names)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def with_odp(logger: logging.Logger) -> Callable[[], None]:
    """The call under test: one ODP event."""

    def call() -> None:
        logger.info("purchased", extra={"odp": PAYLOAD})

    return call


def without_odp(logger: logging.Logger) -> Callable[[], None]:
    """A record that carries no ODP payload."""

    def call() -> None:
        logger.info("served page")

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per variant")
    args = parser.parse_args()

    with ReceiverProcess(api_key=API_KEY) as receiver:
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=receiver.url, batch_size=500, max_queue_size=1_000_000
        )
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(records, logging.NullHandler())
        listener.start()
        null = logger_with(logging.NullHandler())
        odp = logger_with(OdpHandler(client=client))
        locked = logger_with(LockedOdpHandler(client=client))
        queued = logger_with(logging.handlers.QueueHandler(records))

        cases = {
            "with odp": {
                "NullHandler": with_odp(null),
                "QueueHandler+Listener": with_odp(queued),
                "OdpHandler": with_odp(odp),
                "OdpHandler, locked": with_odp(locked),
            },
            "without odp": {
                "NullHandler": without_odp(null),
                "OdpHandler": without_odp(odp),
                "OdpHandler, locked": without_odp(locked),
            },
        }
        print(f"{args.rounds} rounds x {args.calls} calls per variant; medians per call")
        header = (
            f"{'record':<13}{'handler':<23}{'CPU us':>8}{'wall us':>9}{'CPU x':>7}{'wall x':>8}"
        )
        print(header)
        print("-" * len(header))
        for label, variants in cases.items():
            client.flush(120)  # start each case with an idle worker
            medians = interleaved_medians(variants, calls=args.calls, rounds=args.rounds)
            floor_cpu, floor_wall = medians["NullHandler"]
            for name, (cpu, wall) in medians.items():
                print(
                    f"{label:<13}{name:<23}{cpu / 1000:>8.2f}{wall / 1000:>9.2f}"
                    f"{cpu / floor_cpu:>7.2f}{wall / floor_wall:>8.2f}"
                )
        listener.stop()
        print_delivery(client, receiver, 120)
        client.close()


if __name__ == "__main__":
    main()
