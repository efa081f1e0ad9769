"""What OdpSpanProcessor costs the application's thread when a span ends.

Run: ``python -m bench.bench_otel [--spans N] [--rounds R]``

In one run, two TracerProviders set up alike, one with an OdpSpanProcessor and one
without, end the same spans: a span with one ODP event, and a span with one plain
event (which the processor must ignore cheaply). Rounds alternate between the two
so that drift affects both. Per span we report the application thread's CPU time
(``time.thread_time_ns``, which leaves out the client's worker thread) and the wall
time (which includes waiting for the GIL while the worker encodes and sends), as
medians over rounds, and their ratio. The client delivers to a ReceiverProcess, so
the receiver does not share our GIL.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import Attributes

import odp_logging
from bench._harness import API_KEY, interleaved_medians, print_delivery
from odp_logging.otel import OdpSpanProcessor
from odp_logging.server import ReceiverProcess

ODP_EVENT: Attributes = {"odp.identifiers.fs_user_id": "user123", "odp.data.price": 50.0}
PLAIN_EVENT: Attributes = {"cache.key": "user123", "cache.hit": False}


def make_workload(provider: TracerProvider, attributes: Attributes) -> Callable[[], None]:
    """Return a function that starts and ends one span carrying one event."""
    tracer = provider.get_tracer("bench")

    def one_span() -> None:
        with tracer.start_as_current_span("checkout") as span:
            span.add_event("purchased", attributes)

    return one_span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=500, help="spans per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per variant")
    args = parser.parse_args()

    with ReceiverProcess(api_key=API_KEY) as receiver:
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=receiver.url, batch_size=500, max_queue_size=100_000
        )
        without = TracerProvider(shutdown_on_exit=False)
        with_odp = TracerProvider(shutdown_on_exit=False)
        with_odp.add_span_processor(OdpSpanProcessor(client=client))

        print(f"{args.rounds} rounds x {args.spans} spans per variant; medians per span")
        print(f"{'span carries':<14}{'variant':<10}{'CPU us':>9}{'wall us':>9}")
        ratios = []
        for label, attributes in (("1 ODP event", ODP_EVENT), ("1 plain event", PLAIN_EVENT)):
            variants = {
                "without": make_workload(without, attributes),
                "with": make_workload(with_odp, attributes),
            }
            medians = interleaved_medians(variants, calls=args.spans, rounds=args.rounds)
            for name, (cpu, wall) in medians.items():
                print(f"{label:<14}{name:<10}{cpu / 1000:>9.2f}{wall / 1000:>9.2f}")
            cpu_ratio = medians["with"][0] / medians["without"][0]
            wall_ratio = medians["with"][1] / medians["without"][1]
            ratios.append((label, cpu_ratio, wall_ratio))

        for label, cpu_ratio, wall_ratio in ratios:
            print(f"ratio with/without, {label}: CPU {cpu_ratio:.2f}x, wall {wall_ratio:.2f}x")
        print_delivery(client, receiver, 60)
        client.close()


if __name__ == "__main__":
    main()
