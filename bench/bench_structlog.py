"""What OdpProcessor costs a structlog log call on the application's thread.

Run: ``python -m bench.bench_structlog [--calls N] [--rounds R]``

In one run, two bound loggers with the same minimal chain,
``[merge_contextvars, JSONRenderer()]`` and ``[merge_contextvars, OdpProcessor(),
JSONRenderer()]``, write to a null sink. Each makes the same calls: a line without
``odp``, a line with an ``odp`` payload, and a line with an ``odp`` payload while an
``odp`` is bound with ``bind_contextvars`` (the merge path). Rounds alternate between
the two loggers so that drift affects both. Per call we report the application
thread's CPU time (``time.thread_time_ns``, which leaves out the client's worker
thread) and the wall time (which includes waiting for the GIL while the worker encodes
and sends), as medians over rounds, and their ratio. The client delivers to a
ReceiverProcess, so the receiver does not share our GIL.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars

import odp_logging
from bench._harness import API_KEY, interleaved_medians, print_delivery
from odp_logging.server import ReceiverProcess
from odp_logging.structlog import OdpProcessor

PAYLOAD = {
    "identifiers": {"fs_user_id": "user123", "email": "user@example.com"},
    "data": {"item": "shirt", "price": 50.0},
}
BOUND = {"identifiers": {"fs_user_id": "user123"}, "data": {"shop": "eu"}}
OWN = {"data": {"item": "shirt", "price": 50.0}}


class NullSink:
    """A file that discards what is written, so that the bench measures no I/O."""

    def write(self, text: str) -> None:
        """Discard ``text``."""

    def flush(self) -> None:
        """Nothing to flush."""


def make_logger(processors: list[Any]) -> Any:
    """Return a bound logger with ``processors`` that writes to a null sink."""
    return structlog.wrap_logger(
        structlog.WriteLogger(NullSink()),  # type: ignore[arg-type]
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="log calls per round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per variant")
    args = parser.parse_args()

    with ReceiverProcess(api_key=API_KEY) as receiver:
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=receiver.url, batch_size=500, max_queue_size=100_000
        )
        renderer = structlog.processors.JSONRenderer()
        loggers = {
            "without": make_logger([merge_contextvars, renderer]),
            "with": make_logger([merge_contextvars, OdpProcessor(client=client), renderer]),
        }
        cases: list[tuple[str, Callable[[Any], Callable[[], None]], dict[str, Any] | None]] = [
            ("no odp", lambda log: lambda: log.info("cache miss", key="cart:user123"), None),
            ("odp payload", lambda log: lambda: log.info("purchased", odp=PAYLOAD), None),
            ("odp + bound", lambda log: lambda: log.info("purchased", odp=OWN), BOUND),
        ]

        print(f"{args.rounds} rounds x {args.calls} calls per variant; medians per call")
        print(f"{'log call':<13}{'variant':<10}{'CPU us':>9}{'wall us':>9}")
        ratios = []
        for label, make_workload, bound in cases:
            clear_contextvars()
            if bound is not None:
                bind_contextvars(odp=bound)
            variants = {name: make_workload(log) for name, log in loggers.items()}
            medians = interleaved_medians(variants, calls=args.calls, rounds=args.rounds)
            for name, (cpu, wall) in medians.items():
                print(f"{label:<13}{name:<10}{cpu / 1000:>9.2f}{wall / 1000:>9.2f}")
            cpu_ratio = medians["with"][0] / medians["without"][0]
            wall_ratio = medians["with"][1] / medians["without"][1]
            ratios.append((label, cpu_ratio, wall_ratio))
        clear_contextvars()

        for label, cpu_ratio, wall_ratio in ratios:
            print(f"ratio with/without, {label}: CPU {cpu_ratio:.2f}x, wall {wall_ratio:.2f}x")
        print_delivery(client, receiver, 120)
        client.close()


if __name__ == "__main__":
    main()
