"""The scenarios, each run in a fresh interpreter: ``python -m bench.scenarios SPEC``.

SPEC is JSON: ``{"scenario": ..., "subject": ..., "params": {...}, "endpoints": {...}}``.
The child builds the subject (a library set up to send one event per call), runs the
scenario and prints one result line (see :func:`bench._harness.report_result`). A
subject whose library or integration is not installed reports ``skipped``, which the
report shows as "n/a".

Every library runs with its default settings, so the figures are what a user gets.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import logging
import logging.handlers
import queue
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _harness, peers
from bench._harness import API_KEY, Endpoint

IDENTIFIERS = {"fs_user_id": "user123", "email": "user@example.com"}
DATA = {"item": "shirt", "price": 50.0}
PAYLOAD = {"identifiers": IDENTIFIERS, "data": DATA}
"""The event every subject sends: two identifiers and two data values."""
SPAN_EVENT: dict[str, str | float] = {
    "odp.identifiers.fs_user_id": "user123",
    "odp.identifiers.email": "user@example.com",
    "odp.data.item": "shirt",
    "odp.data.price": 50.0,
}


class Unavailable(Exception):
    """The subject's library or integration is not installed (reported as n/a)."""


@dataclasses.dataclass
class Subject:
    """A library set up to handle one event (or log line) per call.

    Attributes:
        call: Logs or sends one event; the measured call.
        settle: Waits, untimed, until the library has shipped what it was given.
        close: Shuts the library down (bounded).
        counters: The library's own counts (sent, dropped...), for the report.
        endpoint: Where it delivers (None when it delivers nowhere).
    """

    call: Callable[[], object]
    settle: Callable[[], object] = lambda: None
    close: Callable[[], object] = lambda: None
    counters: Callable[[], dict[str, Any]] = dict
    endpoint: Endpoint | None = None


# -- subjects ------------------------------------------------------------------------


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _odp_call(logger: logging.Logger) -> Callable[[], None]:
    return functools.partial(logger.info, "purchased", extra={"odp": PAYLOAD})


def _plain_call(logger: logging.Logger) -> Callable[[], None]:
    return functools.partial(logger.info, "cache miss %s", "cart:user123")


def _odp_client_counters(client: Any) -> Callable[[], dict[str, Any]]:
    def counters() -> dict[str, Any]:
        stats = client.stats()
        dropped = {reason: count for reason, count in stats.dropped.items() if count}
        return {"sent": stats.sent, "queued": stats.queued, "dropped": dropped}

    return counters


def _odp_handler(
    endpoints: dict[str, str], options: dict[str, Any], plain: bool, stdlib_json: bool = False
) -> Subject:
    import odp_logging

    if stdlib_json:  # as without the ``fast`` extra: events encoded by the json module
        from odp_logging import _event

        _event.orjson = None

    handler = odp_logging.OdpHandler(api_key=API_KEY, api_host=endpoints["odp"], **options)
    logger = _logger("odp", handler)
    client = handler.client
    return Subject(
        call=_plain_call(logger) if plain else _odp_call(logger),
        settle=functools.partial(client.flush, 60),
        close=functools.partial(client.close, 2),
        counters=_odp_client_counters(client),
        endpoint=Endpoint("odp", endpoints["odp"]),
    )


def _spool_options(tmp: str) -> dict[str, Any]:
    return {"spool_path": str(Path(tmp) / "spool.db")}


def _odp_client(endpoints: dict[str, str]) -> Subject:
    import odp_logging

    client = odp_logging.OdpClient(api_key=API_KEY, api_host=endpoints["odp"])
    return Subject(
        call=functools.partial(
            client.send_odp_event, "purchased", identifiers=IDENTIFIERS, data=DATA
        ),
        settle=functools.partial(client.flush, 60),
        close=functools.partial(client.close, 2),
        counters=_odp_client_counters(client),
        endpoint=Endpoint("odp", endpoints["odp"]),
    )


def _structlog(endpoints: dict[str, str], with_odp: bool) -> Subject:
    try:
        import structlog
        from structlog.contextvars import merge_contextvars

        from odp_logging.structlog import OdpProcessor
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc

    class NullSink:
        def write(self, text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    processors: list[Any] = [merge_contextvars, structlog.processors.JSONRenderer()]
    subject = Subject(call=lambda: None)
    if with_odp:
        processor = OdpProcessor(api_key=API_KEY, api_host=endpoints["odp"])
        processors.insert(1, processor)
        client = processor.client
        subject.settle = functools.partial(client.flush, 60)
        subject.close = functools.partial(client.close, 2)
        subject.counters = _odp_client_counters(client)
        subject.endpoint = Endpoint("odp", endpoints["odp"])
    log = structlog.wrap_logger(
        structlog.WriteLogger(NullSink()),  # type: ignore[arg-type]
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind()
    subject.call = functools.partial(log.info, "purchased", odp=PAYLOAD)
    return subject


def _otel(endpoints: dict[str, str], with_odp: bool) -> Subject:
    try:
        from opentelemetry.sdk.trace import TracerProvider

        from odp_logging.otel import OdpSpanProcessor
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc

    provider = TracerProvider(shutdown_on_exit=False)
    subject = Subject(call=lambda: None)
    if with_odp:
        processor = OdpSpanProcessor(api_key=API_KEY, api_host=endpoints["odp"])
        provider.add_span_processor(processor)
        client = processor.client
        subject.settle = functools.partial(client.flush, 60)
        subject.close = functools.partial(client.close, 2)
        subject.counters = _odp_client_counters(client)
        subject.endpoint = Endpoint("odp", endpoints["odp"])
    tracer = provider.get_tracer("bench")

    def one_span() -> None:
        with tracer.start_as_current_span("checkout") as span:
            span.add_event("purchased", SPAN_EVENT)

    subject.call = one_span
    return subject


def _queue_handler() -> Subject:
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = logging.handlers.QueueListener(records, logging.NullHandler())
    listener.start()
    logger = _logger("queue", logging.handlers.QueueHandler(records))
    return Subject(call=_odp_call(logger), settle=records.join, close=listener.stop)


def _optimizely(endpoints: dict[str, str]) -> Subject:
    try:
        client = peers.optimizely_client(endpoints["odp"], API_KEY)
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    manager = client.odp_manager.event_manager
    return Subject(
        call=functools.partial(
            client.send_odp_event, action="purchased", identifiers=IDENTIFIERS, data=DATA
        ),
        settle=functools.partial(peers.optimizely_settle, client),
        close=client.close,
        counters=lambda: {"queued": manager.event_queue.qsize()},
        endpoint=Endpoint("odp", endpoints["odp"]),
    )


def _segment(endpoints: dict[str, str]) -> Subject:
    try:
        client = peers.segment_client(endpoints["segment"])
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    return Subject(
        call=functools.partial(client.track, "user123", "purchased", DATA),
        settle=client.flush,
        close=client.join,
        counters=lambda: {"queued": client.queue.qsize()},
        endpoint=Endpoint("segment", endpoints["segment"]),
    )


def make_subject(name: str, endpoints: dict[str, str], tmp: str) -> Subject:
    """Build the subject called ``name`` (see ``SUBJECTS`` in ``bench.__main__``)."""
    null = logging.NullHandler()
    makers: dict[str, Callable[[], Subject]] = {
        "null-odp": lambda: Subject(call=_odp_call(_logger("null", null))),
        "null-plain": lambda: Subject(call=_plain_call(_logger("null", null))),
        "queue-handler": _queue_handler,
        "handler-odp": lambda: _odp_handler(endpoints, {}, plain=False),
        "handler-plain": lambda: _odp_handler(endpoints, {}, plain=True),
        "handler-spool": lambda: _odp_handler(endpoints, _spool_options(tmp), plain=False),
        "handler-stdlib": lambda: _odp_handler(endpoints, {}, plain=False, stdlib_json=True),
        "client": lambda: _odp_client(endpoints),
        "structlog-base": lambda: _structlog(endpoints, with_odp=False),
        "structlog-odp": lambda: _structlog(endpoints, with_odp=True),
        "otel-base": lambda: _otel(endpoints, with_odp=False),
        "otel-odp": lambda: _otel(endpoints, with_odp=True),
        "optimizely": lambda: _optimizely(endpoints),
        "segment": lambda: _segment(endpoints),
    }
    return makers[name]()


# -- scenarios ---------------------------------------------------------------------


def caller_cost(subject: Subject, *, rounds: int, calls: int, warmup: int) -> dict[str, Any]:
    """Thread CPU and wall time per call, medians over rounds.

    Between rounds the library is given time to ship what it got (untimed), so each
    round runs at the library's steady state, never on its queue-full path, while its
    worker ships the previous rounds' events at the same time.
    """
    for _ in range(warmup):
        _harness.per_call(subject.call, calls)
        subject.settle()
    samples = []
    for _ in range(rounds):
        samples.append(_harness.per_call(subject.call, calls))
        subject.settle()
    return {
        "cpu_us": _harness.median([cpu for cpu, _ in samples]) / 1000,
        "wall_us": _harness.median([wall for _, wall in samples]) / 1000,
        "counters": subject.counters(),
    }


def _warm_up(subject: Subject, events: int) -> int:
    """Send ``events`` untimed, wait for them, and return the endpoint's count after."""
    assert subject.endpoint is not None
    for _ in range(events):
        subject.call()
    subject.settle()
    before = subject.endpoint.delivered()
    return _harness.wait_delivered(subject.endpoint, before + 1, quiet=0.5, timeout=5).count


def cpu_per_event(subject: Subject, *, events: int, chunk: int) -> dict[str, Any]:
    """Whole-process CPU seconds per delivered event (caller and worker threads).

    Events go in chunks smaller than every library's queue, each chunk once the previous
    one has arrived, so nothing is dropped and every event is paid for once. The CPU of
    polling the endpoint is subtracted.
    """
    assert subject.endpoint is not None
    base = _warm_up(subject, chunk)
    cpu_start = time.process_time()
    poll_cpu = 0.0
    delivered = 0
    for sent in range(chunk, events + 1, chunk):
        for _ in range(chunk):
            subject.call()
        outcome = _harness.wait_delivered(subject.endpoint, base + sent, quiet=5, timeout=120)
        poll_cpu += outcome.poll_cpu
        delivered = outcome.count - base
    cpu = time.process_time() - cpu_start - poll_cpu
    return {
        "cpu_us_per_event": cpu / max(delivered, 1) * 1e6,
        "delivered": delivered,
        "events": events,
        "counters": subject.counters(),
    }


def throughput(subject: Subject, *, events: int) -> dict[str, Any]:
    """Log ``events`` as fast as one thread can; return delivered events/s and loss.

    The rate is events delivered over the time from the first call to the last
    arrival. An event not delivered within a few quiet seconds counts as lost.
    """
    assert subject.endpoint is not None
    base = _warm_up(subject, 100)
    call = subject.call
    started_wall, started = time.time(), time.monotonic()
    for _ in range(events):
        call()
    logged = time.monotonic() - started
    outcome = _harness.wait_delivered(
        subject.endpoint, base + events, quiet=3.0, timeout=60 + events / 2000
    )
    delivered = outcome.count - base
    # No arrival at all means nothing was delivered: a rate of 0.
    lasted = (subject.endpoint.last_arrival() or started_wall) - started_wall
    return {
        "events": events,
        "delivered": delivered,
        "lost": events - delivered,
        "events_per_s": delivered / max(lasted, 1e-9),
        "logging_s": logged,
        "counters": subject.counters(),
    }


def work(units: int) -> int:
    """CPU-bound work standing for the application's own (about 0.05 us per unit)."""
    total = 0
    for i in range(units):
        total += i * i
    return total


def slowdown(subject: Subject, *, iterations: int, work_units: int) -> dict[str, Any]:
    """Wall seconds of a loop doing ``work(work_units)`` and one log call per iteration.

    Afterwards (untimed) the events that arrived are counted, to show which library kept up.
    """
    call = subject.call
    for _ in range(200):
        work(work_units)
        call()
    subject.settle()
    base = subject.endpoint.delivered() if subject.endpoint else 0
    started = time.perf_counter()
    for _ in range(iterations):
        work(work_units)
        call()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {"wall_s": wall, "events_per_s": iterations / wall}
    if subject.endpoint is not None:
        delivery = _harness.wait_delivered(
            subject.endpoint, base + iterations, quiet=3.0, timeout=60 + iterations / 2000
        )
        result["lost"] = base + iterations - delivery.count
    result["counters"] = subject.counters()
    return result


def memory(subject: Subject, *, events: int) -> dict[str, Any]:
    """Peak RSS growth while ``events`` are logged as fast as possible to a dead receiver."""
    for _ in range(100):
        subject.call()
    time.sleep(0.2)
    gc.collect()
    exact = _harness.reset_peak_rss()
    base = _harness.rss_bytes()
    call = subject.call
    started = time.monotonic()
    for _ in range(events):
        call()
    logged = time.monotonic() - started
    time.sleep(1.0)  # let the worker move what is queued to the spool
    growth = _harness.peak_rss_bytes() - base
    return {
        "events": events,
        "rss_growth_mb": growth / 2**20,
        "peak_exact": exact,
        "logging_s": logged,
        "counters": subject.counters(),
    }


def exit_time(subject: Subject, *, events: int) -> dict[str, Any]:
    """Queue ``events``, report the moment, then let the interpreter exit.

    The parent measures from this moment to the process's end. The switch interval is
    raised while logging so that the worker does not get the GIL: ``events`` are then
    really queued at exit, not already shipped.
    """
    delivered_before = _warm_up(subject, 10)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    call = subject.call
    for _ in range(events):
        call()
    counters = subject.counters()
    sys.setswitchinterval(interval)
    logged_at = time.monotonic()
    _harness.report_result(
        {"counters": counters, "logged_at": logged_at, "delivered_before": delivered_before}
    )
    return {}


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "caller_cost": caller_cost,
    "cpu_per_event": cpu_per_event,
    "throughput": throughput,
    "slowdown": slowdown,
    "memory": memory,
    "exit": exit_time,
}


def main(spec_text: str) -> None:
    """Run the scenario SPEC describes and print its result line."""
    spec = json.loads(spec_text)
    with tempfile.TemporaryDirectory(prefix="odp-bench-") as tmp:
        try:
            subject = make_subject(spec["subject"], spec["endpoints"], tmp)
        except Unavailable as exc:
            _harness.report_result({"skipped": str(exc)})
            return
        except Exception as exc:  # e.g. an option the core does not have yet
            _harness.report_result({"error": f"setup: {type(exc).__name__}: {exc}"})
            traceback.print_exc()
            return
        scenario = SCENARIOS[spec["scenario"]]
        try:
            result = scenario(subject, **spec["params"])
        except Exception as exc:
            _harness.report_result({"error": f"{type(exc).__name__}: {exc}"})
            traceback.print_exc()
            return
        if spec["scenario"] == "exit":
            return  # the interpreter's exit is what is measured: no close
        subject.close()
        _harness.report_result(result)


if __name__ == "__main__":
    main(sys.argv[1])
