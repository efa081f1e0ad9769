"""Run the performance suite and write ``docs/performance.md``: ``python -m bench``.

Options: ``--quick`` (smaller sizes, about two minutes), ``--only NAME`` (a scenario
such as ``throughput``, or one subject of it such as ``throughput/handler-odp``;
repeatable or comma-separated), ``--scale F`` (multiply every count, for smoke runs),
``--out PATH`` (default ``docs/performance.md``).

The parent process starts the project's receiver (``ReceiverProcess``) and the Segment
sink (``bench._sink``), each in its own process, then runs every scenario in a fresh
child interpreter (``bench.scenarios``), repeats interleaved so that drift on a shared
machine touches every subject alike, and takes medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import _harness, _report, peers, scenarios
from bench._harness import Endpoint

CALLER_SUBJECTS = (
    "null-odp",
    "null-plain",
    "queue-handler",
    "handler-odp",
    "handler-plain",
    "structlog-base",
    "structlog-odp",
    "otel-base",
    "otel-odp",
    "client",
    "optimizely",
    "segment",
)
DELIVERY_SUBJECTS = ("handler-odp", "handler-stdlib", "optimizely", "segment")
BURST_SUBJECTS = ("handler-odp", "handler-stdlib", "handler-spool", "optimizely", "segment")
SLOWDOWN_SUBJECTS = ("null-odp", "handler-odp", "optimizely", "segment")
EXIT_SUBJECTS = ("handler-odp", "optimizely", "segment")
CHUNKS = {"handler-odp": 5_000, "handler-stdlib": 5_000, "optimizely": 500, "segment": 5_000}
"""Events per chunk in cpu_per_event: below each library's queue, a multiple of its batch."""
MOST_CALLS_PER_ROUND = {"optimizely": 900}
"""Caller-cost rounds stay below the library's queue (optimizely-sdk's holds 1,000), so that
they measure its steady state, not its queue-full path."""
LOOP_PERIOD_US = 100.0
"""The slowdown loop's iteration with a NullHandler: 10,000 events per second."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each scenario does; ``FULL`` is what the targets are judged on."""

    caller_repeats: int
    caller_rounds: int
    caller_calls: int
    cpu_events: int
    cpu_repeats: int
    bursts: tuple[int, ...]
    burst_repeats: int
    """Repeats of every burst: the peers' delivery under a burst varies much from run to run."""
    slowdown_iterations: int
    slowdown_repeats: int
    memory_events: int
    exit_events: int
    exit_repeats: int
    capacity_seconds: float

    def scaled(self, factor: float) -> Sizes:
        """These sizes with every event count multiplied by ``factor`` (repeats kept)."""

        def scale(count: int, least: int = 10) -> int:
            return max(least, round(count * factor))

        return dataclasses.replace(
            self,
            caller_calls=scale(self.caller_calls),
            cpu_events=scale(self.cpu_events, 500),
            bursts=tuple(scale(burst, 100) for burst in self.bursts),
            slowdown_iterations=scale(self.slowdown_iterations),
            memory_events=scale(self.memory_events, 1000),
            exit_events=scale(self.exit_events),
            capacity_seconds=max(0.2, self.capacity_seconds * factor),
        )


# Five slowdown runs: a run's wall time moves by 5-8 % on these shared machines, as much as
# the effect measured.
FULL = Sizes(5, 10, 2_000, 20_000, 3, (20_000, 200_000), 3, 20_000, 5, 1_000_000, 10_000, 3, 2.0)
QUICK = Sizes(1, 5, 2_000, 5_000, 1, (20_000,), 1, 5_000, 1, 100_000, 10_000, 1, 1.0)
SCENARIO_NAMES = ("receiver", *scenarios.SCENARIOS)


@dataclasses.dataclass(frozen=True)
class Job:
    """One child run: a scenario with a subject and its parameters."""

    scenario: str
    subject: str
    params: dict[str, Any]
    key: str
    """Where its result is filed: repeats share a key."""
    timeout: float


def plan(sizes: Sizes, work_units: int) -> Iterator[Job]:
    """Every child run of the suite, repeats interleaved across subjects."""
    for _ in range(sizes.caller_repeats):
        for subject in CALLER_SUBJECTS:
            calls = min(sizes.caller_calls, MOST_CALLS_PER_ROUND.get(subject, sizes.caller_calls))
            params = {"rounds": sizes.caller_rounds, "calls": calls, "warmup": 2}
            yield Job("caller_cost", subject, params, f"caller_cost/{subject}", 300)
    for _ in range(sizes.cpu_repeats):
        for subject in DELIVERY_SUBJECTS:
            chunk = min(CHUNKS[subject], sizes.cpu_events)
            events = sizes.cpu_events // chunk * chunk
            params = {"events": events, "chunk": chunk}
            yield Job("cpu_per_event", subject, params, f"cpu_per_event/{subject}", 300)
    for burst in sizes.bursts:
        for _ in range(sizes.burst_repeats):
            for subject in BURST_SUBJECTS:
                key = f"throughput/{subject}/{burst}"
                yield Job("throughput", subject, {"events": burst}, key, 120 + burst / 500)
    for _ in range(sizes.slowdown_repeats):
        for subject in SLOWDOWN_SUBJECTS:
            params = {"iterations": sizes.slowdown_iterations, "work_units": work_units}
            yield Job("slowdown", subject, params, f"slowdown/{subject}", 300)
    memory_runs = (
        ("handler-odp", sizes.memory_events // 10),
        ("handler-odp", sizes.memory_events),
        ("handler-spool", sizes.memory_events),
    )
    for subject, events in memory_runs:
        key = f"memory/{subject}/{events}"
        yield Job("memory", subject, {"events": events}, key, 120 + events / 2000)
    for repeat in range(sizes.exit_repeats):
        for subject in EXIT_SUBJECTS:
            if repeat == 0 or subject == "handler-odp":  # the peers are shown for context
                params = {"events": sizes.exit_events}
                yield Job("exit", subject, params, f"exit/{subject}", 120)


def selected(job: Job, only: list[str]) -> bool:
    """Whether ``--only`` keeps ``job`` (everything when ``only`` is empty)."""
    return not only or job.scenario in only or f"{job.scenario}/{job.subject}" in only


def calibrate_work() -> int:
    """Work units for which the slowdown loop with a NullHandler takes :data:`LOOP_PERIOD_US`.

    Runs that very loop here a few times, correcting the units each time.
    """
    logger = logging.getLogger("bench.calibration")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    extra = {"odp": scenarios.PAYLOAD}
    units, iterations = 2_000, 500
    for _ in range(4):
        periods = []
        for _ in range(5):
            started = time.perf_counter_ns()
            for _ in range(iterations):
                scenarios.work(units)
                logger.info("purchased", extra=extra)
            periods.append((time.perf_counter_ns() - started) / iterations / 1000)
        units = max(1, round(units * LOOP_PERIOD_US / _harness.median(periods)))
    return units


def receiver_capacity(receiver: Any, seconds: float) -> dict[str, float]:
    """Events/s the receiver stores from one keep-alive client posting batches of 100.

    Reuses ``bench/receiver_capacity.py``; also returns the receiver's CPU per event.
    """
    from bench import receiver_capacity as capacity

    bodies = capacity.encode_bodies(100, count=16)
    pid = receiver.pid
    cpu_before = _harness.process_cpu_seconds(pid) if pid else 0.0
    sent, elapsed = capacity.hammer(f"{receiver.url}/v3/events", bodies, seconds)
    receiver_cpu = (_harness.process_cpu_seconds(pid) - cpu_before) if pid else float("nan")
    events = (sent + 10) * 100
    receiver.reset()
    return {
        "events_per_s": sent * 100 / elapsed,
        "receiver_cpu_us_per_event": receiver_cpu / events * 1e6,
    }


def run_jobs(
    jobs: list[Job], endpoints: dict[str, str], pids: dict[str, int | None]
) -> dict[str, list[dict[str, Any]]]:
    """Run ``jobs`` one after another; return their results by key.

    Args:
        jobs: What to run.
        endpoints: The base URL of each endpoint kind (``odp``, ``segment``).
        pids: The process of each endpoint kind, to charge its CPU time to the run.
    """
    results: dict[str, list[dict[str, Any]]] = {}
    for number, job in enumerate(jobs, 1):
        job_endpoints = endpoints
        if job.scenario == "memory":
            job_endpoints = {**endpoints, "odp": f"http://127.0.0.1:{_harness.closed_port()}"}
        kind = "segment" if job.subject == "segment" else "odp"
        endpoint = Endpoint(kind, endpoints[kind])
        endpoint.reset()
        spec = {
            "scenario": job.scenario,
            "subject": job.subject,
            "params": job.params,
            "endpoints": job_endpoints,
        }
        pid = pids.get(kind)
        endpoint_cpu = _harness.process_cpu_seconds(pid) if pid else None
        started = time.monotonic()
        result = _harness.run_child(spec, job.timeout)
        result["run_s"] = time.monotonic() - started
        if endpoint_cpu is not None and pid:
            result["endpoint_cpu_s"] = _harness.process_cpu_seconds(pid) - endpoint_cpu
        if job.scenario == "exit" and "logged_at" in result:
            result["exit_s"] = result["exited_at"] - result["logged_at"]
            result["delivered"] = endpoint.delivered() - result["delivered_before"]
        results.setdefault(job.key, []).append(result)
        print(
            f"[{number:>3}/{len(jobs)}] {job.key:<34} {_report.one_line(job.scenario, result)}",
            file=sys.stderr,
            flush=True,
        )
    return results


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this scenario or scenario/subject; scenarios: {', '.join(SCENARIO_NAMES)}",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count")
    parser.add_argument("--out", default=str(_harness.ROOT / "docs" / "performance.md"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from odp_logging.server import ReceiverProcess

    args = parse_arguments(argv)
    only = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = [name for name in only if name.split("/")[0] not in SCENARIO_NAMES]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    if args.scale != 1.0:
        sizes = sizes.scaled(args.scale)
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    machine = _harness.machine()
    work_units = calibrate_work()
    jobs = [job for job in plan(sizes, work_units) if selected(job, only)]
    print(f"{command}: {len(jobs)} runs", file=sys.stderr, flush=True)
    # Any key is accepted: bench/receiver_capacity.py posts with its own.
    with ReceiverProcess() as receiver, _harness.ServiceProcess("bench._sink") as sink:
        capacity = None
        if not only or "receiver" in only:
            capacity = receiver_capacity(receiver, sizes.capacity_seconds)
        endpoints = {"odp": receiver.url, "segment": sink.url}
        pids: dict[str, int | None] = {"odp": receiver.pid, "segment": sink.pid}
        results = run_jobs(jobs, endpoints, pids)
    record = _report.Run(
        command=command,
        mode="quick" if args.quick else "full",
        scale=args.scale,
        only=only,
        sizes=dataclasses.asdict(sizes),
        machine=machine,
        load_after=_harness.machine()["load average"],
        versions=peers.versions(),
        started_at=started_at.strftime("%Y-%m-%d %H:%M UTC"),
        duration_s=time.monotonic() - started,
        work_units=work_units,
        capacity=capacity,
        results=results,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_report.markdown(record), encoding="utf-8")
    print(_report.console(record))
    print(f"wrote {out} in {record.duration_s:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
