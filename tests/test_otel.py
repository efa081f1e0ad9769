"""odp_logging.otel against the real receiver: span processor, span exporter, log exporter."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import odp_logging
from odp_logging.otel import OdpLogRecordExporter, OdpSpanExporter, OdpSpanProcessor, _odp_payload
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
ALWAYS_RECORD = getattr(sampling, "AlwaysRecordSampler", None)  # opentelemetry-sdk >= 1.45
LOG_EVENT_NAMES = "event_name" in inspect.signature(LogRecord).parameters


SDK_VERSION = tuple(
    int(part) for part in importlib.metadata.version("opentelemetry-sdk").split(".")[:2]
)
SPAN_MAPS = SDK_VERSION >= (1, 45)
"""Whether span and span event attributes keep mapping values."""
LOG_MAPS = SDK_VERSION >= (1, 33)
"""Whether the SDK's logging bridge keeps mapping values (``extra={"odp": {...}}``)."""
needs_span_maps = pytest.mark.skipif(not SPAN_MAPS, reason="this SDK drops map attributes")


def _events(receiver: Receiver, action: str | None = None) -> list[dict[str, Any]]:
    """The received events, reduced to what the tests compare (no default data)."""
    defaults = {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
    return [
        {
            "action": event["action"],
            "type": event["type"],
            "identifiers": event["identifiers"],
            "data": {k: v for k, v in event.get("data", {}).items() if k not in defaults},
        }
        for event in receiver.events(action=action)
    ]


class _Tracing:
    """A TracerProvider with the processor under test, then an in-memory exporter."""

    def __init__(self, processor: OdpSpanProcessor, sampler: sampling.Sampler | None = None):
        self.provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
        self.provider.add_span_processor(processor)
        self.exported = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exported))
        self.tracer = self.provider.get_tracer("tests")
        self.processor = processor

    def span_with_events(
        self, *events: tuple[str, Mapping[str, Any]], attributes: Mapping[str, Any] | None = None
    ) -> Any:
        """Start and end one span that carries ``events``; return the span."""
        with self.tracer.start_as_current_span("work", attributes=attributes) as span:
            for name, event_attributes in events:
                span.add_event(name, event_attributes)
        return span


@pytest.fixture(name="tracing")
def _tracing(client: odp_logging.OdpClient) -> Iterator[_Tracing]:
    """Tracing through an OdpSpanProcessor that delivers to the receiver."""
    tracing = _Tracing(OdpSpanProcessor(client=client))
    yield tracing
    tracing.provider.shutdown()


class TestOdpPayload:
    """Unflattening ODP attributes into an ``odp`` payload."""

    @pytest.mark.parametrize(
        "attributes", [None, {}, {"http.method": "GET"}, {"odpx": "1"}, {"odp.other": "1"}]
    )
    def test_no_odp_keys(self, attributes: Mapping[str, Any] | None) -> None:
        """Attributes without recognised ODP keys carry no payload."""
        assert _odp_payload(attributes) is None

    def test_flattened_keys(self) -> None:
        """Flattened keys become action, type, identifiers and data."""
        attributes = {
            "odp.action": "purchased",
            "odp.type": "commerce",
            "odp.identifiers.fs_user_id": "u1",
            "odp.data.price": 50.0,
            "odp.data.item.sku": "A1",
            "other": "ignored",
        }
        expected = {
            "action": "purchased",
            "type": "commerce",
            "identifiers": {"fs_user_id": "u1"},
            "data": {"price": 50.0, "item.sku": "A1"},
        }
        assert expected == _odp_payload(attributes)

    def test_maps(self) -> None:
        """``odp``, ``odp.identifiers`` and ``odp.data`` maps merge into one payload."""
        attributes = {
            "odp": {"action": "added", "identifiers": {"email": "e@x"}},
            "odp.data": {"sku": "A1"},
        }
        expected = {"action": "added", "identifiers": {"email": "e@x"}, "data": {"sku": "A1"}}
        assert expected == _odp_payload(attributes)

    def test_specific_keys_win(self) -> None:
        """``odp.data.price`` wins over ``odp.data`` which wins over ``odp``."""
        attributes = {
            "odp.data.price": 3,
            "odp.data": {"price": 2, "size": "M"},
            "odp": {"action": "a", "data": {"price": 1, "sku": "A1"}},
            "odp.action": "b",
        }
        payload = _odp_payload(attributes)
        assert {"action": "b", "data": {"price": 3, "size": "M", "sku": "A1"}} == payload

    def test_attribute_values_not_mutated(self) -> None:
        """Merging copies: the attribute maps are left as they were."""
        inner = {"email": "e@x"}
        _odp_payload({"odp": {"identifiers": inner}, "odp.identifiers.fs_user_id": "u1"})
        assert {"email": "e@x"} == inner

    def test_wrong_shapes_passed_on(self) -> None:
        """A non-mapping is handed on unchanged, for the client to drop with a reason."""
        assert "text" == _odp_payload({"odp": "text", "odp.data.x": 1})
        payload = _odp_payload({"odp.identifiers": "x", "odp.identifiers.email": "e@x"})
        assert {"identifiers": "x"} == payload


class TestOdpSpanProcessor:
    """OdpSpanProcessor delivers span events with ODP attributes, and nothing else."""

    def test_flattened_event(self, tracing: _Tracing, receiver: Receiver) -> None:
        """A span event with flattened keys arrives; its name is the action."""
        tracing.span_with_events(
            ("purchased", {"odp.identifiers.fs_user_id": "u1", "odp.data.price": 50.0})
        )
        assert tracing.processor.force_flush()
        expected = {
            "action": "purchased",
            "type": "fullstack",
            "identifiers": {"fs_user_id": "u1"},
            "data": {"price": 50.0},
        }
        assert [expected] == _events(receiver)

    def test_odp_action_and_type(self, tracing: _Tracing, receiver: Receiver) -> None:
        """``odp.action`` and ``odp.type`` override the event name and the default type."""
        tracing.span_with_events(
            ("ignored", {"odp.action": "viewed", "odp.type": "web", "odp.identifiers.e": "x"})
        )
        assert tracing.processor.force_flush()
        [event] = _events(receiver)
        assert ("viewed", "web") == (event["action"], event["type"])

    @needs_span_maps
    def test_map_attributes(self, tracing: _Tracing, receiver: Receiver) -> None:
        """Map-valued ``odp`` / ``odp.identifiers`` / ``odp.data`` attributes arrive."""
        tracing.span_with_events(
            ("added", {"odp": {"data": {"sku": "A1"}}, "odp.identifiers": {"email": "e@x"}})
        )
        assert tracing.processor.force_flush()
        expected = {
            "action": "added",
            "type": "fullstack",
            "identifiers": {"email": "e@x"},
            "data": {"sku": "A1"},
        }
        assert [expected] == _events(receiver)

    def test_span_identifiers(self, tracing: _Tracing, receiver: Receiver) -> None:
        """Span-level ``odp.identifiers.*`` apply to each ODP event; the event's own win."""
        tracing.span_with_events(
            ("first", {"odp.identifiers.email": "own@x"}),
            ("second", {"odp.data.step": 2}),
            attributes={"odp.identifiers.fs_user_id": "u1", "odp.identifiers.email": "span@x"},
        )
        assert tracing.processor.force_flush()
        assert [{"fs_user_id": "u1", "email": "own@x"}] == [
            event["identifiers"] for event in _events(receiver, "first")
        ]
        assert [{"fs_user_id": "u1", "email": "span@x"}] == [
            event["identifiers"] for event in _events(receiver, "second")
        ]

    def test_events_without_odp_attributes(
        self, tracing: _Tracing, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """Events without ODP keys (and spans without events) are ignored."""
        with tracing.tracer.start_as_current_span("plain") as span:
            span.add_event("cache.miss", {"key": "k1"})
            span.add_event("retry")
            span.record_exception(ValueError("boom"))
        tracing.span_with_events(("purchased", {"odp.identifiers.fs_user_id": "u1"}))
        assert tracing.processor.force_flush()
        assert ["purchased"] == [event["action"] for event in _events(receiver)]
        assert 1 == client.stats().total

    def test_context_where_span_ends(self, tracing: _Tracing, receiver: Receiver) -> None:
        """``odp_logging.context()`` around the span's end adds its identifiers."""
        with odp_logging.context(identifiers={"fs_user_id": "ctx"}):
            tracing.span_with_events(("purchased", {"odp.data.price": 1}))
        assert tracing.processor.force_flush()
        assert [{"fs_user_id": "ctx"}] == [event["identifiers"] for event in _events(receiver)]

    def test_malformed_attributes(
        self, tracing: _Tracing, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """Malformed ODP attributes raise nothing, skip no processor, and count drops."""
        tracing.span_with_events(
            ("whole", {"odp": "not a mapping"}),
            ("ids", {"odp.identifiers": "not a mapping"}),
            ("data", {"odp.identifiers.e": "x", "odp.data.sizes": [1, 2]}),
            ("action", {"odp.identifiers.e": "x", "odp.action": 5}),
            ("anonymous", {"odp.data.price": 1}),
            ("good", {"odp.identifiers.e": "x"}),
        )
        assert tracing.processor.force_flush()
        assert 1 == len(tracing.exported.get_finished_spans())
        assert ["good"] == [event["action"] for event in _events(receiver)]
        dropped = client.stats().dropped
        expected = dict.fromkeys(
            ("invalid_payload", "invalid_identifiers", "invalid_data", "invalid_action"), 1
        )
        assert {**expected, "no_identifiers": 1} == {
            reason: dropped[reason] for reason in (*expected, "no_identifiers")
        }

    def test_unreadable_span(self, tracing: _Tracing, client: odp_logging.OdpClient) -> None:
        """A span whose events cannot be read is counted as internal_error, not raised."""

        class Unreadable(ReadableSpan):
            @property
            def events(self) -> Any:
                raise RuntimeError("unreadable")

        tracing.processor.on_end(Unreadable("broken"))  # must not raise
        assert 1 == client.stats().dropped["internal_error"]

    def test_on_end_does_not_wait_for_delivery(self) -> None:
        """While the worker's request hangs, spans keep ending and their events queue up."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            in_flight = threading.Event()

            def accept_and_never_answer() -> None:
                connection, _ = server.accept()
                with connection:
                    in_flight.set()
                    while connection.recv(65536):  # until the client times out and closes
                        pass

            hanging = threading.Thread(target=accept_and_never_answer, daemon=True)
            hanging.start()
            url = f"http://127.0.0.1:{server.getsockname()[1]}"
            client = odp_logging.OdpClient(
                api_key=API_KEY, api_host=url, flush_interval=0.05, request_timeout=1
            )
            tracing = _Tracing(OdpSpanProcessor(client=client))
            tracing.span_with_events(("stalled", {"odp.identifiers.n": "0"}))
            assert in_flight.wait(10)
            for index in range(1, 21):
                tracing.span_with_events(("stalled", {"odp.identifiers.n": str(index)}))
            stats = client.stats()
            assert (0, 21) == (stats.sent, stats.queued)
            assert 21 == len(tracing.exported.get_finished_spans())
            client.close(timeout=0.1)
            hanging.join(10)

    def test_always_off_reaches_no_processor(
        self, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """Events on a dropped span never reach the processor."""
        tracing = _Tracing(OdpSpanProcessor(client=client), sampler=sampling.ALWAYS_OFF)
        tracing.span_with_events(("dropped", {"odp.identifiers.e": "x"}))
        assert tracing.processor.force_flush()
        assert (0, []) == (client.stats().total, receiver.events())

    @pytest.mark.skipif(ALWAYS_RECORD is None, reason="AlwaysRecordSampler is new in 1.45")
    def test_always_record_sampler(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """With AlwaysRecordSampler, events of unsampled spans are delivered."""
        assert ALWAYS_RECORD is not None
        tracing = _Tracing(OdpSpanProcessor(client=client), ALWAYS_RECORD(sampling.ALWAYS_OFF))
        span = tracing.span_with_events(("recorded", {"odp.identifiers.e": "x"}))
        assert not span.get_span_context().trace_flags.sampled
        assert tracing.processor.force_flush()
        assert ["recorded"] == [event["action"] for event in _events(receiver)]

    def test_force_flush_delivers(self, client_options: dict[str, Any], receiver: Receiver) -> None:
        """``force_flush`` sends what is queued, long before the flush interval."""
        client = odp_logging.OdpClient(**{**client_options, "flush_interval": 60})
        tracing = _Tracing(OdpSpanProcessor(client=client))
        tracing.span_with_events(("flushed", {"odp.identifiers.e": "x"}))
        assert tracing.provider.force_flush(timeout_millis=10_000)
        assert 1 == len(receiver.events(action="flushed"))

    def test_force_flush_bounded(self, tracing: _Tracing, receiver: Receiver) -> None:
        """``force_flush`` gives up after ``timeout_millis`` when delivery stalls."""
        receiver.inject(Fault("delay", delay=2.0))
        tracing.span_with_events(("slow", {"odp.identifiers.e": "x"}))
        assert not tracing.processor.force_flush(timeout_millis=100)
        assert tracing.processor.force_flush(timeout_millis=15_000)

    def test_shutdown_flushes_shared_client(
        self, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """``shutdown`` delivers, leaves the shared client open and ignores later spans."""
        options = {**client_options, "flush_interval": 60}
        tracing = _Tracing(OdpSpanProcessor(**options))
        tracing.span_with_events(("before", {"odp.identifiers.e": "x"}))
        tracing.provider.shutdown()
        assert 1 == len(receiver.events(action="before"))
        shared = odp_logging.get_client(**options)
        assert (shared, False) == (tracing.processor.client, shared.closed)
        tracing.processor.on_end(tracing.exported.get_finished_spans()[0])
        assert 1 == shared.stats().total

    def test_client_or_options(self, client: odp_logging.OdpClient) -> None:
        """Passing both a client and client options is a TypeError."""
        with pytest.raises(TypeError):
            OdpSpanProcessor(client=client, api_key=API_KEY)

    def test_repr_hides_key(self, tracing: _Tracing) -> None:
        """The repr names the client but not the api key."""
        assert "OdpSpanProcessor(client=OdpClient(" in repr(tracing.processor)
        assert API_KEY not in repr(tracing.processor)


class TestSendSuppression:
    """The client's own HTTP requests are not traced by OpenTelemetry instrumentation."""

    def test_requests_instrumentation_skips_client(
        self, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """An instrumented ``requests`` traces the app's call but not the client's POST."""
        instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")
        import requests

        provider = TracerProvider(shutdown_on_exit=False)
        exported = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exported))
        instrumentor = instrumentation.RequestsInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            client.send_odp_event("traced?", identifiers={"e": "x"})
            assert client.flush(10)
            requests.post(f"{receiver.url}/v3/events", json=[], timeout=10)
        finally:
            instrumentor.uninstrument()
        assert ["POST"] == [span.name for span in exported.get_finished_spans()]
        assert 1 == len(receiver.events(action="traced?"))

    def test_every_request_is_sent_with_instrumentation_suppressed(
        self, client: odp_logging.OdpClient
    ) -> None:
        """Whatever library an instrumentation wraps, the client's POST runs suppressed."""
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

        from odp_logging import _transport

        seen: list[object] = []

        @contextlib.contextmanager
        def record_suppression() -> Iterator[None]:
            seen.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            yield

        _transport.add_send_hook(record_suppression)  # entered inside the otel module's hook
        try:
            client.send_odp_event("untraced", identifiers={"e": "x"})
            assert client.flush(10)
        finally:
            _transport._send_hooks.remove(record_suppression)
        assert [True] == seen


class TestOdpSpanExporter:
    """OdpSpanExporter, as the SDK runs it: behind a BatchSpanProcessor."""

    def test_exported_span_events(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """Span events of exported spans are delivered, span identifiers included."""
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(OdpSpanExporter(client=client)))
        with provider.get_tracer("t").start_as_current_span(
            "checkout", attributes={"odp.identifiers.fs_user_id": "u1"}
        ) as span:
            span.add_event("purchased", {"odp.data.price": 5})
            span.add_event("noise")
        provider.shutdown()
        expected = {
            "action": "purchased",
            "type": "fullstack",
            "identifiers": {"fs_user_id": "u1"},
            "data": {"price": 5},
        }
        assert [expected] == _events(receiver)

    @pytest.mark.skipif(ALWAYS_RECORD is None, reason="AlwaysRecordSampler is new in 1.45")
    def test_unsampled_spans_not_exported(
        self, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """BatchSpanProcessor hands the exporter sampled spans only."""
        assert ALWAYS_RECORD is not None
        provider = TracerProvider(
            sampler=ALWAYS_RECORD(sampling.ALWAYS_OFF), shutdown_on_exit=False
        )
        provider.add_span_processor(BatchSpanProcessor(OdpSpanExporter(client=client)))
        with provider.get_tracer("t").start_as_current_span("s") as span:
            span.add_event("unsampled", {"odp.identifiers.e": "x"})
        provider.shutdown()
        assert (0, []) == (client.stats().total, receiver.events())

    def test_no_arguments_reads_environment(
        self, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
    ) -> None:
        """Built with no arguments, it sends with the client the ODP_* variables describe."""
        monkeypatch.setenv("ODP_API_KEY", API_KEY)
        monkeypatch.setenv("ODP_API_HOST", receiver.url)
        exporter = OdpSpanExporter()
        assert receiver.url == exporter.client.options.api_host
        span = ReadableSpan("s", events=[Event("purchased", {"odp.identifiers.e": "x"})])
        assert SpanExportResult.SUCCESS == exporter.export([span])
        assert exporter.force_flush()
        assert 1 == len(receiver.events(action="purchased"))

    def test_export_after_shutdown(self, client: odp_logging.OdpClient) -> None:
        """After shutdown, export fails and queues nothing."""
        exporter = OdpSpanExporter(client=client)
        exporter.shutdown()
        span = ReadableSpan("s", events=[Event("late", {"odp.identifiers.e": "x"})])
        assert SpanExportResult.FAILURE == exporter.export([span])
        assert 0 == client.stats().total


class TestOdpLogRecordExporter:
    """OdpLogRecordExporter turns log records with ODP attributes into events."""

    @pytest.fixture(name="emit")
    def _emit(self, client: odp_logging.OdpClient) -> Iterator[Any]:
        """A function emitting one OTel log record through the exporter under test."""
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OdpLogRecordExporter(client=client))
        )
        logger = provider.get_logger("tests")

        def emit(body: Any, attributes: Mapping[str, Any], **fields: Any) -> None:
            logger.emit(LogRecord(body=body, attributes=attributes, **fields))

        yield emit
        provider.shutdown()

    def test_odp_mapping(self, emit: Any, receiver: Receiver, client: odp_logging.OdpClient):
        """An ``odp`` map attribute (the bridge's ``extra``) is an event named by the body."""
        emit("purchased", {"odp": {"identifiers": {"fs_user_id": "u1"}, "data": {"n": 1}}})
        assert client.flush(10)
        expected = {
            "action": "purchased",
            "type": "fullstack",
            "identifiers": {"fs_user_id": "u1"},
            "data": {"n": 1},
        }
        assert [expected] == _events(receiver)

    def test_flattened(self, emit: Any, receiver: Receiver, client: odp_logging.OdpClient):
        """Flattened ``odp.*`` attributes work too; ``odp.action`` beats the body."""
        emit("User bought a shirt", {"odp.action": "purchased", "odp.identifiers.email": "e@x"})
        assert client.flush(10)
        assert ["purchased"] == [event["action"] for event in _events(receiver)]

    @pytest.mark.skipif(not LOG_EVENT_NAMES, reason="this SDK has no log event names")
    def test_event_name(self, emit: Any, receiver: Receiver, client: odp_logging.OdpClient):
        """The record's event name, when set, is the action rather than the body."""
        emit("User bought a shirt", {"odp.identifiers.email": "e@x"}, event_name="purchased")
        assert client.flush(10)
        assert ["purchased"] == [event["action"] for event in _events(receiver)]

    def test_ignores_other_records(self, emit: Any, client: odp_logging.OdpClient):
        """Records without ODP attributes cost nothing and send nothing."""
        emit("GET /health", {"http.status_code": 200})
        emit("started", {})
        assert 0 == client.stats().total

    def test_non_text_body(self, emit: Any, client: odp_logging.OdpClient):
        """A structured body cannot be the action: the event is dropped as invalid_action."""
        emit({"msg": "purchased"}, {"odp.identifiers.email": "e@x"})
        assert client.flush(10)
        assert 1 == client.stats().dropped["invalid_action"]


# -- the exporters loaded through their entry points, in a real subprocess -------------

_ENTRY_POINTS = {
    "opentelemetry_traces_exporter": "odp = odp_logging.otel:OdpSpanExporter",
    "opentelemetry_logs_exporter": "odp = odp_logging.otel:OdpLogRecordExporter",
}


def _installed_entry_points() -> bool:
    """Whether the installed odp-logging declares both exporter entry points."""
    return all(
        "odp" in importlib.metadata.entry_points(group=group).names for group in _ENTRY_POINTS
    )


@pytest.fixture(name="otel_env")
def _otel_env(tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    """Environment of a subprocess where ``odp`` is a traces and a logs exporter.

    When odp-logging is not installed with its entry points (a bare work tree), a
    throwaway ``.dist-info`` on PYTHONPATH declares them, exactly as pyproject does.
    """
    path = [str(REPO_ROOT)]
    if not _installed_entry_points():
        dist_info = tmp_path / "odp_logging_entry_points-0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: odp-logging-entry-points\nVersion: 0\n"
        )
        (dist_info / "entry_points.txt").write_text(
            "".join(f"[{group}]\n{line}\n\n" for group, line in _ENTRY_POINTS.items())
        )
        path.append(str(tmp_path))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ODP_", "OTEL_"))}
    return {
        **environ,
        "PYTHONPATH": os.pathsep.join([*path, environ.get("PYTHONPATH", "")]),
        "ODP_API_KEY": API_KEY,
        "ODP_API_HOST": receiver.url,
        "OTEL_TRACES_EXPORTER": "odp",
        "OTEL_LOGS_EXPORTER": "odp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
    }


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _run(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result


_APP = textwrap.dedent(
    """
    import logging
    from opentelemetry import trace

    log = logging.getLogger("shop")
    log.setLevel(logging.INFO)
    with trace.get_tracer("shop").start_as_current_span(
        "checkout", attributes={"odp.identifiers.fs_user_id": "u1"}
    ) as span:
        span.add_event("purchased", {"odp.data.price": 50.0})
        log.info("flat", extra={"odp.identifiers.email": "flat@x"})
        log.info("mapped", extra={"odp": {"identifiers": {"email": "map@x"}}})
    """
)


class TestEntryPoints:
    """``OTEL_TRACES_EXPORTER=odp`` / ``OTEL_LOGS_EXPORTER=odp`` with nothing in the code."""

    def test_sdk_configurator(self, otel_env: dict[str, str], receiver: Receiver) -> None:
        """The SDK's configurator builds both exporters from the environment; events arrive."""
        configure = (
            "from opentelemetry.sdk._configuration import _OTelSDKConfigurator\n"
            "_OTelSDKConfigurator().configure()\n"
        )
        env = {**otel_env, "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
        _run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", configure + _APP], env)
        self._check_delivered(receiver)

    def test_opentelemetry_instrument(self, otel_env: dict[str, str], receiver: Receiver) -> None:
        """``opentelemetry-instrument`` with the logging bridge delivers spans and logs."""
        pytest.importorskip("opentelemetry.instrumentation.auto_instrumentation")
        env = otel_env
        if not _has_module("opentelemetry.instrumentation.logging.handler"):
            # opentelemetry-instrumentation-logging < 0.61b0 has no bridge: the SDK's.
            env = {**otel_env, "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
        launcher = "from opentelemetry.instrumentation.auto_instrumentation import run; run()"
        _run([sys.executable, "-c", launcher, sys.executable, "-c", _APP], env)
        self._check_delivered(receiver)

    @staticmethod
    def _check_delivered(receiver: Receiver) -> None:
        expected = {"purchased": {"fs_user_id": "u1"}, "flat": {"email": "flat@x"}}
        if LOG_MAPS:
            expected["mapped"] = {"email": "map@x"}
        assert receiver.wait_for_events(len(expected), timeout=10)
        assert expected == {event["action"]: event["identifiers"] for event in receiver.events()}


class TestWithoutOpenTelemetry:
    """The core works without OpenTelemetry; the integration says what to install."""

    def test_import_error_names_extra(self) -> None:
        """``import odp_logging`` works, ``import odp_logging.otel`` names the extra."""
        script = textwrap.dedent(
            """
            import sys

            class HideOpenTelemetry:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] == "opentelemetry":
                        raise ModuleNotFoundError(name, name=name)

            sys.meta_path.insert(0, HideOpenTelemetry())
            import odp_logging
            try:
                import odp_logging.otel
            except ImportError as exc:
                print(exc)
            """
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        result = _run([sys.executable, "-c", script], env)
        assert "pip install 'odp-logging[otel]'" in result.stdout


DOC_EXAMPLES = re.findall(
    r"```python\n(.*?)```", (REPO_ROOT / "docs" / "opentelemetry.md").read_text(), flags=re.DOTALL
)


class TestDocsAndExample:
    """docs/opentelemetry.md and examples/otel_app.py deliver as written."""

    def test_docs_have_examples(self) -> None:
        """The page has its four Python examples."""
        assert 4 == len(DOC_EXAMPLES)

    @pytest.mark.parametrize(
        ("example", "events"),
        list(zip(DOC_EXAMPLES, (2, 20, 2, 1), strict=True)),
        ids=["span-processor", "always-record-sampler", "zero-code", "logs-in-code"],
    )
    def test_doc_example(
        self, example: str, events: int, otel_env: dict[str, str], receiver: Receiver
    ) -> None:
        """Each example delivers the events the page says; the zero-code one instrumented."""
        if ALWAYS_RECORD is None and "AlwaysRecordSampler" in example:
            pytest.skip("AlwaysRecordSampler is new in 1.45")
        command = [sys.executable, "-W", "ignore::DeprecationWarning", "-c", example]
        if "opentelemetry.instrumentation" in example or "odp_logging" not in example:
            pytest.importorskip("opentelemetry.instrumentation.logging.handler")  # the bridge
        if "odp_logging" not in example:  # a plain OpenTelemetry app: the zero-code recipe
            launcher = "from opentelemetry.instrumentation.auto_instrumentation import run; run()"
            command = [sys.executable, "-c", launcher, *command]
        _run(command, otel_env)
        assert receiver.wait_for_events(events, timeout=10)
        assert events == len(receiver.events())

    def test_example_app(self) -> None:
        """``python examples/otel_app.py`` runs with its own receiver and reports arrivals."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ODP_", "OTEL_"))}
        env["PYTHONPATH"] = str(REPO_ROOT)
        result = _run([sys.executable, str(REPO_ROOT / "examples" / "otel_app.py")], env)
        assert "received 3 events" in result.stdout
        for action in ("added_to_cart", "purchased", "signed_up"):
            assert action in result.stdout
