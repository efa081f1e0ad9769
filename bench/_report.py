"""Turn the suite's results into ``docs/performance.md`` and a console summary.

Every figure is a median over the runs filed under one key; a key whose runs all
failed or were skipped shows "n/a" with the reason. Targets come from issue 7.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from bench._harness import median

INTRO = """\
# Performance

What odp-logging costs the application and how well it delivers, measured side by side
with the stdlib's `NullHandler` and `QueueHandler`, Optimizely's own
`optimizely-sdk` `send_odp_event` and `segment-analytics-python`'s `track`, in one run of

```
pip install -e '.[bench]'      # the peers, and orjson (the fast extra)
python -m bench                # about 5 minutes on 2 cores; --quick for a short run
```

This file is written by that command: do not edit it by hand, run it again.

**How it measures.** The command starts the project's receiver
(`odp_logging.server.ReceiverProcess`) and a minimal Segment-compatible counting endpoint
(`bench/_sink.py`) on 127.0.0.1, each in its own process so that neither competes for
the benchmark's GIL, then runs every scenario in a fresh interpreter, warms up, repeats
(repeats interleaved across subjects, so that drift on a shared machine touches them
alike) and takes medians. Every library runs with its **default settings** (odp-logging:
batches of 100, a queue of 25,000, a 1 s flush interval; optimizely-sdk: batches of 10,
a queue of 1,000; segment: batches of 100, a queue of 10,000), and each delivers over
HTTP to a local endpoint that counts what arrives. Every subject sends the same event:
two identifiers (`fs_user_id`, `email`) and two data values. odp-logging runs with the
`fast` extra (orjson, which the receiver uses too); the rows "without orjson" show its
client on the standard library's `json` alone.

* **Caller cost**: per call, the application thread's own CPU time
  (`time.thread_time`) and its wall time while the library's worker ships the events
  (which includes waiting for the GIL). Rounds of 2,000 calls (900 for optimizely-sdk,
  whose queue holds 1,000), long enough for the worker to take the GIL during the round,
  each followed by an untimed wait for the worker to ship them, so that every round runs
  at the library's steady state and never on its queue-full path. The baseline is the same
  `logger.info("purchased", extra={"odp": ...})` call with a `NullHandler`.
* **CPU per delivered event**: `time.process_time()` of the whole process (caller and
  worker threads; the receiver is another process and is not counted), events sent in
  chunks smaller than each library's queue so that none is dropped.
* **Throughput and loss**: a burst of events logged as fast as one thread can, then
  events delivered per second (from the first call to the last arrival, as the endpoint
  timestamps it) and events lost (not delivered within 3 quiet seconds).
* **Slowdown**: a CPU-bound loop logging 10,000 ODP events per second (with a
  `NullHandler`), wall time with each library shipping against the `NullHandler` loop.
* **Memory**: peak RSS growth (Linux `VmHWM`, reset before the burst) while events are
  logged as fast as possible to a receiver that is down (a closed port).
* **Exit**: time from the last of 10,000 queued events to the end of the process, with
  the receiver up (the worker is kept off the GIL while they are queued, so they really
  are queued at exit).

The machine is a shared 2-core VM: run-to-run noise of 10-40 % on absolute figures is
usual, ratios taken in one run are steadier. "n/a" marks a figure that could not be
taken (a peer or an integration not installed, or an error, named in the cell). See
`bench/` for the code.
"""


@dataclasses.dataclass
class Run:
    """One run of the suite: what was asked, where, and what came back."""

    command: str
    mode: str
    scale: float
    only: list[str]
    sizes: dict[str, Any]
    machine: dict[str, str]
    load_after: str
    versions: dict[str, str]
    started_at: str
    duration_s: float
    work_units: int
    capacity: dict[str, float] | None
    results: dict[str, list[dict[str, Any]]]

    def ok(self, key: str) -> list[dict[str, Any]]:
        """The successful results filed under ``key``."""
        return [
            result
            for result in self.results.get(key, [])
            if "error" not in result and "skipped" not in result
        ]

    def value(self, key: str, field: str) -> float | None:
        """The median of ``field`` over the successful results of ``key``."""
        values = [float(result[field]) for result in self.ok(key) if field in result]
        return median(values) if values else None

    def why_missing(self, key: str) -> str:
        """Why ``key`` has no figure: skipped, failed or not run."""
        runs = self.results.get(key, [])
        for result in runs:
            if "skipped" in result:
                return f"n/a: {result['skipped']}"
        for result in runs:
            if "error" in result:
                return f"n/a: error: {result['error']}"
        return "not run"


SUBJECT_LABELS = {
    "null-odp": "`logger.info(..., extra={'odp': ...})` to a `NullHandler` (baseline)",
    "null-plain": "`logger.info` without `odp` to a `NullHandler` (baseline)",
    "queue-handler": "stdlib `QueueHandler` + `QueueListener` to a `NullHandler`",
    "handler-odp": "**`OdpHandler`, record with `odp`**",
    "handler-plain": "**`OdpHandler`, record without `odp`**",
    "handler-spool": "`OdpHandler` with `spool_path`",
    "handler-stdlib": "`OdpHandler`, without orjson (stdlib JSON)",
    "structlog-base": "structlog chain without `OdpProcessor`",
    "structlog-odp": "structlog chain with **`OdpProcessor`**",
    "otel-base": "OTel span + event, no span processor",
    "otel-odp": "OTel span + event, **`OdpSpanProcessor`**",
    "client": "**`OdpClient.send_odp_event`**",
    "optimizely": "optimizely-sdk `send_odp_event`",
    "segment": "segment-analytics-python `track`",
}
BASELINES = {
    "null-plain": "null-plain",
    "handler-plain": "null-plain",
    "structlog-odp": "structlog-base",
    "otel-odp": "otel-base",
}
"""Caller-cost rows compared with a baseline other than the ODP NullHandler call."""


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _dropped(result_counters: dict[str, Any] | None) -> str:
    if not result_counters:
        return ""
    dropped = result_counters.get("dropped") or {}
    return ", ".join(f"{reason} {count:,}" for reason, count in dropped.items())


def _counters(run: Run, key: str) -> dict[str, Any] | None:
    results = run.ok(key)
    return results[-1].get("counters") if results else None


# -- targets -----------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """One target of issue 7 and how this run did against it."""

    name: str
    target: str
    measured: str
    met: bool | None
    """None when it could not be measured in this run."""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "n/a"}[self.met]


def _at_most(
    name: str, target_text: str, value: float | None, limit: float, show: Callable[[float], str]
) -> Target:
    if value is None:
        return Target(name, target_text, "n/a", None)
    return Target(name, target_text, show(value), value <= limit)


def targets(run: Run) -> list[Target]:
    """Every target of issue 7, judged on this run's medians."""
    cost = {
        subject: (
            run.value(f"caller_cost/{subject}", "cpu_us"),
            run.value(f"caller_cost/{subject}", "wall_us"),
        )
        for subject in ("null-odp", "null-plain", "handler-odp", "handler-plain")
    }
    found = [
        _at_most(
            "caller thread CPU, ODP record",
            "<= 1.3x NullHandler",
            _ratio(cost["handler-odp"][0], cost["null-odp"][0]),
            1.3,
            _times,
        ),
        _at_most(
            "caller thread CPU, record without `odp`",
            "<= 1.1x NullHandler",
            _ratio(cost["handler-plain"][0], cost["null-plain"][0]),
            1.1,
            _times,
        ),
        _at_most(
            "caller wall time, worker shipping",
            "<= 2x NullHandler",
            _ratio(cost["handler-odp"][1], cost["null-odp"][1]),
            2.0,
            _times,
        ),
    ]
    cpu = {
        s: run.value(f"cpu_per_event/{s}", "cpu_us_per_event")
        for s in ("handler-odp", "optimizely", "segment")
    }
    found.append(
        _at_most(
            "process CPU per delivered event vs optimizely-sdk",
            "<= 1/5 (0.20x)",
            _ratio(cpu["handler-odp"], cpu["optimizely"]),
            0.2,
            _times,
        )
    )
    found.append(
        _at_most(
            "process CPU per delivered event vs segment",
            "<= 1/3 (0.33x)",
            _ratio(cpu["handler-odp"], cpu["segment"]),
            1 / 3,
            _times,
        )
    )
    for burst in run.sizes["bursts"]:
        rate = {
            s: run.value(f"throughput/{s}/{burst}", "events_per_s")
            for s in ("handler-odp", "optimizely", "segment")
        }
        vs_optimizely = _ratio(rate["handler-odp"], rate["optimizely"])
        found.append(
            Target(
                f"throughput, {burst:,} burst, vs optimizely-sdk",
                ">= 10x",
                _times(vs_optimizely),
                None if vs_optimizely is None else vs_optimizely >= 10,
            )
        )
        vs_segment = _ratio(rate["handler-odp"], rate["segment"])
        found.append(
            Target(
                f"throughput, {burst:,} burst, vs segment",
                "> 1x",
                _times(vs_segment),
                None if vs_segment is None else vs_segment > 1,
            )
        )
    small, large = min(run.sizes["bursts"]), max(run.sizes["bursts"])
    lost = run.value(f"throughput/handler-odp/{small}", "lost")
    found.append(
        _at_most(f"events lost, {small:,} burst, defaults", "0", lost, 0, lambda v: f"{v:,.0f}")
    )
    lost = run.value(f"throughput/handler-spool/{large}", "lost")
    found.append(
        _at_most(f"events lost, {large:,} burst, spool", "0", lost, 0, lambda v: f"{v:,.0f}")
    )
    loop = {s: run.value(f"slowdown/{s}", "wall_s") for s in ("null-odp", "handler-odp")}
    found.append(
        _at_most(
            "application slowdown at 10,000 events/s",
            "<= 1.1x",
            _ratio(loop["handler-odp"], loop["null-odp"]),
            1.1,
            _times,
        )
    )
    events = run.sizes["memory_events"]
    growth = run.value(f"memory/handler-spool/{events}", "rss_growth_mb")
    found.append(
        _at_most(
            f"RSS growth, {events:,} events, receiver down, spool",
            "<= 64 MB",
            growth,
            64,
            lambda v: f"{v:.1f} MB",
        )
    )
    small_growth = run.value(f"memory/handler-odp/{events // 10}", "rss_growth_mb")
    growth = run.value(f"memory/handler-odp/{events}", "rss_growth_mb")
    if growth is None or small_growth is None:
        found.append(Target("RSS growth without spool", "bounded by the queue", "n/a", None))
    else:
        found.append(
            Target(
                f"RSS growth, {events:,} events, receiver down, no spool",
                f"bounded by the queue (<= 1.5x the growth at {events // 10:,} + 4 MB)",
                f"{growth:.1f} MB ({small_growth:.1f} MB at {events // 10:,})",
                growth <= 1.5 * small_growth + 4,
            )
        )
    exit_s = run.value("exit/handler-odp", "exit_s")
    found.append(
        _at_most(
            f"exit with {run.sizes['exit_events']:,} queued, receiver up",
            "< 2 s",
            exit_s,
            2.0,
            lambda v: f"{v:.2f} s",
        )
    )
    return found


# -- sections ------------------------------------------------------------------------


def _caller_section(run: Run) -> str:
    base_cpu = run.value("caller_cost/null-odp", "cpu_us")
    base_wall = run.value("caller_cost/null-odp", "wall_us")
    rows = []
    for subject, label in SUBJECT_LABELS.items():
        key = f"caller_cost/{subject}"
        if key not in run.results or subject in ("handler-spool", "handler-stdlib"):
            continue
        cpu, wall = run.value(key, "cpu_us"), run.value(key, "wall_us")
        if cpu is None:
            rows.append([label, run.why_missing(key), "", "", "", "", ""])
            continue
        own = BASELINES.get(subject)
        own_cpu = run.value(f"caller_cost/{own}", "cpu_us") if own else None
        own_wall = run.value(f"caller_cost/{own}", "wall_us") if own else None
        rows.append(
            [
                label,
                _number(cpu, 2),
                _number(wall, 2),
                _times(_ratio(cpu, base_cpu)),
                _times(_ratio(wall, base_wall)),
                f"{_times(_ratio(cpu, own_cpu))} / {_times(_ratio(wall, own_wall))} of {own}"
                if own and own != subject
                else "",
                _dropped(_counters(run, key)),
            ]
        )
    sizes = run.sizes
    return (
        "## Caller cost per call\n\n"
        f"{sizes['caller_repeats']} fresh process(es) per subject, each {sizes['caller_rounds']} "
        f"rounds of {sizes['caller_calls']:,} calls after 2 warm-up rounds; median of the "
        "per-process medians of the rounds. Ratios are to the NullHandler call with the same "
        "`odp` payload; the last-but-one column compares a row with its own baseline.\n\n"
        + _table(
            [
                "call",
                "thread CPU µs",
                "wall µs",
                "CPU x NullHandler",
                "wall x NullHandler",
                "CPU / wall x own baseline",
                "dropped",
            ],
            rows,
        )
    )


def _cpu_section(run: Run) -> str:
    rows = []
    base = run.value("cpu_per_event/handler-odp", "cpu_us_per_event")
    for subject in ("handler-odp", "handler-stdlib", "optimizely", "segment"):
        key = f"cpu_per_event/{subject}"
        value = run.value(key, "cpu_us_per_event")
        if value is None:
            rows.append([SUBJECT_LABELS[subject], run.why_missing(key), "", ""])
            continue
        rows.append(
            [
                SUBJECT_LABELS[subject],
                _number(value, 1),
                _number(run.value(key, "delivered"), 0),
                _times(_ratio(base, value)),
            ]
        )
    return (
        "## Whole-process CPU per delivered event\n\n"
        f"{run.sizes['cpu_events']:,} events per run, {run.sizes['cpu_repeats']} runs per library; "
        "caller and worker threads together, the endpoint's process excluded, the CPU spent "
        "polling the endpoint subtracted.\n\n"
        + _table(["library", "CPU µs / event", "delivered", "odp-logging ÷ this"], rows)
    )


def _throughput_section(run: Run) -> str:
    rows = []
    for burst in run.sizes["bursts"]:
        for subject in ("handler-odp", "handler-stdlib", "handler-spool", "optimizely", "segment"):
            key = f"throughput/{subject}/{burst}"
            rate = run.value(key, "events_per_s")
            if rate is None:
                rows.append(
                    [f"{burst:,}", SUBJECT_LABELS[subject], run.why_missing(key), "", "", "", ""]
                )
                continue
            receiver = run.value(key, "endpoint_cpu_s")
            delivered = run.value(key, "delivered")
            receiver_us = None if receiver is None or not delivered else receiver / delivered * 1e6
            rows.append(
                [
                    f"{burst:,}",
                    SUBJECT_LABELS[subject],
                    _number(rate, 0),
                    _number(delivered, 0),
                    _number(run.value(key, "lost"), 0),
                    _number(run.value(key, "logging_s"), 2),
                    _number(receiver_us, 1),
                ]
            )
    capacity = ""
    if run.capacity:
        capacity = (
            f"\n\nThe receiver itself stores {run.capacity['events_per_s']:,.0f} events/s from one "
            "keep-alive client posting pre-encoded batches of 100 "
            f"({run.capacity['receiver_cpu_us_per_event']:.1f} µs of its CPU per event), so it is "
            "not what limits the figures above unless they approach that rate. The CPU the "
            "endpoint (the receiver, or the Segment sink) spent per delivered event in each run "
            "is in the last column; it runs in its own process, on the other core when free."
        )
    return (
        "## Throughput and loss\n\n"
        "Events logged as fast as one thread can; events/s delivered from the first call to "
        f"the last arrival. Each burst runs {run.sizes['burst_repeats']} time(s) (median). "
        "Past half its queue, odp-logging makes one call in 50 pause 0.2 ms "
        "(every call with a spool), which hands the GIL to its worker "
        "(see [delivery](delivery.md#bursts)): the logging loop column shows what that costs "
        "the caller.\n\n"
        + _table(
            [
                "burst",
                "library",
                "delivered / s",
                "delivered",
                "lost",
                "logging loop s",
                "endpoint CPU µs / event",
            ],
            rows,
        )
        + capacity
    )


def _slowdown_section(run: Run) -> str:
    base = run.value("slowdown/null-odp", "wall_s")
    base_runs = [result["wall_s"] for result in run.results.get("slowdown/null-odp", [])]
    rows = []
    for subject in ("null-odp", "handler-odp", "optimizely", "segment"):
        key = f"slowdown/{subject}"
        wall = run.value(key, "wall_s")
        if wall is None:
            rows.append([SUBJECT_LABELS[subject], run.why_missing(key), "", "", "", ""])
            continue
        # Each run against the NullHandler run just before it: the spread is the noise.
        each = [
            _times(_ratio(result.get("wall_s"), base_wall))
            for result, base_wall in zip(run.results[key], base_runs, strict=False)
        ]
        rows.append(
            [
                SUBJECT_LABELS[subject],
                _number(wall, 3),
                _number(run.value(key, "events_per_s"), 0),
                _times(_ratio(wall, base)),
                ", ".join(each) if subject != "null-odp" else "",
                _number(run.value(key, "lost"), 0) if subject != "null-odp" else "",
            ]
        )
    return (
        "## Application slowdown\n\n"
        f"{run.sizes['slowdown_iterations']:,} iterations of `work({run.work_units})` plus one log "
        "call, calibrated to 100 µs per iteration with a NullHandler (10,000 events/s); "
        f"{run.sizes['slowdown_repeats']} run(s) each. Events not delivered are counted after "
        "the loop, untimed: a library that does not keep up pays less while it drops.\n\n"
        + _table(
            [
                "library",
                "loop wall s",
                "events / s",
                "x NullHandler",
                "each run x its NullHandler run",
                "not delivered",
            ],
            rows,
        )
    )


def _memory_section(run: Run) -> str:
    rows = []
    events = run.sizes["memory_events"]
    for subject, count in (
        ("handler-odp", events // 10),
        ("handler-odp", events),
        ("handler-spool", events),
    ):
        key = f"memory/{subject}/{count}"
        growth = run.value(key, "rss_growth_mb")
        if growth is None:
            rows.append([SUBJECT_LABELS[subject], f"{count:,}", run.why_missing(key), "", ""])
            continue
        counters = _counters(run, key) or {}
        rows.append(
            [
                SUBJECT_LABELS[subject],
                f"{count:,}",
                _number(growth, 1),
                _number(run.value(key, "logging_s"), 2),
                _dropped(counters),
            ]
        )
    return (
        "## Memory with the receiver down\n\n"
        "Peak RSS growth while the events are logged as fast as possible to a closed port "
        "(one run each).\n\n"
        + _table(
            ["configuration", "events", "peak RSS growth MB", "logging loop s", "dropped"], rows
        )
    )


def _exit_section(run: Run) -> str:
    rows = []
    for subject in ("handler-odp", "optimizely", "segment"):
        key = f"exit/{subject}"
        exit_s = run.value(key, "exit_s")
        if exit_s is None:
            rows.append([SUBJECT_LABELS[subject], run.why_missing(key), "", ""])
            continue
        counters = _counters(run, key) or {}
        rows.append(
            [
                SUBJECT_LABELS[subject],
                _number(exit_s, 2),
                _number(counters.get("queued"), 0),
                _number(run.value(key, "delivered"), 0),
            ]
        )
    return (
        "## Exit\n\n"
        f"{run.sizes['exit_events']:,} events logged, then the interpreter exits with the "
        "receiver up; seconds from the last call to the end of the process.\n\n"
        + _table(["library", "exit s", "queued at exit", "delivered"], rows)
    )


def markdown(run: Run) -> str:
    """The whole ``docs/performance.md``."""
    sizes_note = ""
    if run.mode != "full" or run.scale != 1.0 or run.only:
        sizes_note = (
            f"\n\n**This is a {run.mode} run"
            + (f" scaled by {run.scale}" if run.scale != 1.0 else "")
            + (f" of {', '.join(run.only)} only" if run.only else "")
            + ": sizes are smaller than the targets assume; run `python -m bench` for the "
            "figures the targets are judged on.**"
        )
    machine_rows = [[name, value] for name, value in run.machine.items()]
    machine_rows.append(["load average after", run.load_after])
    target_rows = [[t.name, t.target, t.measured, t.verdict] for t in targets(run)]
    sections = [
        INTRO.strip(),
        "## This run\n\n"
        f"`{run.command}`, {run.started_at}, {run.duration_s / 60:.1f} minutes.{sizes_note}\n\n"
        + _table(["machine", ""], machine_rows)
        + "\n\n"
        + _table(
            ["package", "version"], [[name, version] for name, version in run.versions.items()]
        ),
        "## Targets (issue 7)\n\n"
        + _table(["figure", "target", "measured", "verdict"], target_rows),
        _caller_section(run),
        _cpu_section(run),
        _throughput_section(run),
        _slowdown_section(run),
        _memory_section(run),
        _exit_section(run),
    ]
    return "\n\n".join(sections) + "\n"


def console(run: Run) -> str:
    """A short summary for the terminal: the targets."""
    lines = [f"{'figure':<58} {'target':<22} {'measured':<28} verdict"]
    for target in targets(run):
        name = target.name.replace("`", "")
        lines.append(
            f"{name:<58} {target.target[:22]:<22} {target.measured[:28]:<28} {target.verdict}"
        )
    return "\n".join(lines)


def one_line(scenario: str, result: dict[str, Any]) -> str:
    """A progress line for one child run."""
    if "skipped" in result:
        return f"n/a: {result['skipped']}"
    if "error" in result:
        return f"ERROR {result['error']} {result.get('stderr', '')[-300:]!r}"
    figures = {
        "caller_cost": lambda r: f"cpu {r['cpu_us']:.2f} us, wall {r['wall_us']:.2f} us",
        "cpu_per_event": lambda r: (
            f"{r['cpu_us_per_event']:.1f} us CPU/event, {r['delivered']:,} delivered"
        ),
        "throughput": lambda r: f"{r['events_per_s']:,.0f} ev/s, lost {r['lost']:,}",
        "slowdown": lambda r: f"{r['wall_s']:.3f} s, {r['events_per_s']:,.0f} ev/s",
        "memory": lambda r: f"+{r['rss_growth_mb']:.1f} MB in {r['logging_s']:.1f} s",
        "exit": lambda r: (
            f"exit {r.get('exit_s', float('nan')):.2f} s, delivered {r.get('delivered')}"
        ),
    }
    return figures[scenario](result) + f" ({result['run_s']:.1f} s)"
