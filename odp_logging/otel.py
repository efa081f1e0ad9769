"""OpenTelemetry integration: ODP events from span events and from log records.

Three ways in, each handing its events to an :class:`odp_logging.OdpClient`:

* :class:`OdpSpanProcessor`, added in code with ``provider.add_span_processor(...)``:
  sees every recorded span, sampled or not, on the thread that ends it.
* :class:`OdpSpanExporter`, switched on by ``OTEL_TRACES_EXPORTER=otlp,odp``: sees
  sampled spans only, on the SDK's export thread.
* :class:`OdpLogRecordExporter`, switched on by ``OTEL_LOGS_EXPORTER=otlp,odp``: log
  records, such as those the OpenTelemetry logging bridge makes from
  ``extra={"odp": {...}}``.

A span event or log record is an ODP event when its attributes carry ODP keys:
``odp.identifiers.<name>``, ``odp.data.<name>``, ``odp.action``, ``odp.type``, or
mappings under ``odp``, ``odp.identifiers`` and ``odp.data``; everything else is
ignored. Importing this module also stops
OpenTelemetry instrumentation (requests, urllib3) from tracing the client's own HTTP
requests. See ``docs/opentelemetry.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

try:
    from opentelemetry import context as otel_context
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "odp_logging.otel needs OpenTelemetry: pip install 'odp-logging[otel]'"
    ) from exc

from odp_logging._client import OdpClient, client_for
from odp_logging._otel_logs import LogRecordExporterBase, LogRecordExportResult, record_parts
from odp_logging._payload import SECTIONS, merge_mappings
from odp_logging._transport import add_send_hook

if TYPE_CHECKING:
    from odp_logging._otel_logs import ExportedLogRecord

__all__ = ["OdpLogRecordExporter", "OdpSpanExporter", "OdpSpanProcessor"]

_NAMED_KEYS: Final = {f"odp.{name}": name for name in ("action", "type", *SECTIONS)}
_FLAT_IDENTIFIER: Final = "odp.identifiers."
_FLAT_DATA: Final = "odp.data."
_FLAT_IDENTIFIER_LENGTH: Final = len(_FLAT_IDENTIFIER)
_FLAT_DATA_LENGTH: Final = len(_FLAT_DATA)


def _odp_payload(attributes: Mapping[str, object] | None) -> object | None:
    """Gather the ODP attributes of a span event, span or log record into an ``odp`` payload.

    Recognised keys (anything else, including other ``odp.*`` keys, is ignored):

    * ``odp``: a mapping with ``action``, ``type``, ``identifiers`` and ``data``, as in
      ``extra={"odp": {...}}``;
    * ``odp.action``, ``odp.type``;
    * ``odp.identifiers`` and ``odp.data`` holding mappings;
    * ``odp.identifiers.<name>`` and ``odp.data.<name>``, with ``<name>`` taken verbatim
      (it may contain dots).

    Mapping values survive in span event attributes from OpenTelemetry 1.45 on, in
    log record attributes from 1.33 on; flattened keys work everywhere. The more
    specific key wins: ``odp.data.price`` over ``odp.data`` over ``odp``. A value of
    the wrong shape is passed on as it is, so that the client drops the event and
    counts it under a reason naming the field.

    Runs on the application's thread: attributes without a key starting with ``odp``
    cost one scan of their keys.

    Args:
        attributes: The attributes to read, or None.

    Returns:
        A payload for :meth:`OdpClient.send_payload` (a new dict, or the non-mapping
        found under ``odp``), or None when no ODP key is present.
    """
    if not attributes:
        return None
    # One pass over the keys and no value read until an ODP key is seen: the SDK's
    # BoundedAttributes reads each value through the Mapping ABC.
    whole: object = None
    named: dict[str, object] = {}
    flat_identifiers: dict[str, object] = {}
    flat_data: dict[str, object] = {}
    for key in attributes:
        if not key.startswith("odp"):
            continue
        if key.startswith(_FLAT_IDENTIFIER):
            flat_identifiers[key[_FLAT_IDENTIFIER_LENGTH:]] = attributes[key]
        elif key.startswith(_FLAT_DATA):
            flat_data[key[_FLAT_DATA_LENGTH:]] = attributes[key]
        elif key in _NAMED_KEYS:
            named[_NAMED_KEYS[key]] = attributes[key]
        elif key == "odp":
            whole = attributes[key]
    if whole is None and not named and not flat_identifiers and not flat_data:
        return None
    if whole is not None and not isinstance(whole, Mapping):
        return whole
    # Each layer is more specific than the one before and wins: odp, odp.<name>, odp.<section>.*
    payload: dict[str, object] = dict(whole) if whole is not None else {}
    for name, value in named.items():
        payload[name] = merge_mappings(payload.get(name), value) if name in SECTIONS else value
    if flat_identifiers:
        payload["identifiers"] = merge_mappings(payload.get("identifiers"), flat_identifiers)
    if flat_data:
        payload["data"] = merge_mappings(payload.get("data"), flat_data)
    return payload


def _span_identifiers(span: ReadableSpan) -> object | None:
    """Return the identifiers a span's own ODP attributes give all its ODP events, if any."""
    payload = _odp_payload(span.attributes)
    identifiers = payload.get("identifiers") if isinstance(payload, Mapping) else None
    return identifiers if isinstance(identifiers, Mapping) and identifiers else None


def _send_span_events(client: OdpClient, span: ReadableSpan) -> None:
    """Hand every ODP event of ``span`` to ``client``; ignore the other events."""
    span_identifiers: object | None = None
    span_read = False
    for event in span.events:
        payload = _odp_payload(event.attributes)
        if payload is None:
            continue
        if not span_read:  # only spans that carry ODP events pay for reading their attributes
            span_identifiers, span_read = _span_identifiers(span), True
        if span_identifiers is not None and isinstance(payload, dict):
            payload["identifiers"] = merge_mappings(span_identifiers, payload.get("identifiers"))
        client.send_payload(payload, event.name)


class _ClientUser:
    """What the three integrations share: their client, ``force_flush`` and ``shutdown``.

    Without ``client=``, the process-wide client for ``client_options`` is used (see
    :func:`odp_logging.get_client`); with no options either, the shared client built
    from the ``ODP_*`` environment variables. ``shutdown`` never closes the client:
    it is shared with the other integrations, or it is yours when passed as
    ``client=``. The shared clients are closed at interpreter exit.
    """

    def __init__(self, client: OdpClient | None, client_options: dict[str, Any]) -> None:
        self._client = client_for(client, client_options)
        self._shut_down = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={self._client!r})"

    @property
    def client(self) -> OdpClient:
        """The client that sends the events."""
        return self._client

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until the client has sent, or dropped, every event queued so far.

        Args:
            timeout_millis: Most milliseconds to wait.

        Returns:
            True when everything was settled in time.
        """
        return self._client.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Ignore later spans or records, and flush the client within its ``shutdown_timeout``."""
        self._shut_down = True
        self._client.flush()


class OdpSpanProcessor(_ClientUser, SpanProcessor):
    """Turns span events that carry ODP attributes into ODP events, when the span ends.

    Add it with ``provider.add_span_processor(OdpSpanProcessor())``. Each event of an
    ended span whose attributes hold ODP keys (see the module docstring) becomes one
    ODP event; its action is ``odp.action`` or else the event's name. The span's own
    ``odp.identifiers.<name>`` attributes apply to all its ODP events (the event's
    own identifiers win). ``odp_logging.context()`` applies as it stands where the
    span ends: ``on_end`` runs there, not where the event was added.

    It sees every span that is recorded, sampled or not: wrap your sampler in
    ``AlwaysRecordSampler`` so that unsampled spans are recorded too (a dropped span
    has no events and reaches no processor).

    Args:
        client: The client to send with; default: the shared client.
        **client_options: Options for the shared client (``api_key``, ...); not
            together with ``client``.

    Raises:
        odp_logging.ConfigError: A client option has an invalid value.
        TypeError: Both ``client`` and client options were given.
    """

    def __init__(self, *, client: OdpClient | None = None, **client_options: Any) -> None:
        super().__init__(client, client_options)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span's ODP events; called on the thread that ends the span.

        Never waits on the network or a lock, and never raises: an exception here
        would escape the application's ``with span:`` and skip the processors after
        this one.
        """
        if self._shut_down:
            return
        try:
            _send_span_events(self._client, span)
        except Exception:  # noqa: BLE001 - never raise into the application
            self._client.count_integration_error()


class OdpSpanExporter(_ClientUser, SpanExporter):
    """Sends the ODP span events of exported spans; ``OTEL_TRACES_EXPORTER=odp``.

    The SDK's configurator builds it with no arguments (entry point ``odp`` in the
    group ``opentelemetry_traces_exporter``) and wraps it in a
    ``BatchSpanProcessor``, which passes on **sampled spans only**. The events are
    read as :class:`OdpSpanProcessor` reads them, on the SDK's export thread, so
    ``odp_logging.context()`` does not apply: put identifiers on the span or event.

    Args:
        client: The client to send with; default: the shared client.
        **client_options: Options for the shared client; without them, the
            ``ODP_*`` environment variables.
    """

    def __init__(self, *, client: OdpClient | None = None, **client_options: Any) -> None:
        super().__init__(client, client_options)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the ODP events of ``spans``; never blocks on the network, never raises.

        Returns:
            ``FAILURE`` after :meth:`shutdown` or when a span could not be read,
            ``SUCCESS`` otherwise.
        """
        if self._shut_down:
            return SpanExportResult.FAILURE
        result = SpanExportResult.SUCCESS
        for span in spans:
            try:
                _send_span_events(self._client, span)
            except Exception:  # noqa: BLE001 - one bad span must not lose the others
                self._client.count_integration_error()
                result = SpanExportResult.FAILURE
        return result


class OdpLogRecordExporter(_ClientUser, LogRecordExporterBase):
    """Sends log records that carry ODP attributes as ODP events; ``OTEL_LOGS_EXPORTER=odp``.

    The SDK's configurator builds it with no arguments (entry point ``odp`` in the
    group ``opentelemetry_logs_exporter``) and wraps it in a
    ``BatchLogRecordProcessor``. A record whose attributes hold an ``odp`` mapping
    (what the logging bridge makes of ``extra={"odp": {...}}``) or flattened
    ``odp.*`` keys becomes one ODP event; its action is the payload's ``action``,
    else the record's event name, else its body. Records are read on the SDK's
    export thread, so ``odp_logging.context()`` does not apply.

    Args:
        client: The client to send with; default: the shared client.
        **client_options: Options for the shared client; without them, the
            ``ODP_*`` environment variables.
    """

    def __init__(self, *, client: OdpClient | None = None, **client_options: Any) -> None:
        super().__init__(client, client_options)

    def export(self, batch: Sequence[ExportedLogRecord]) -> LogRecordExportResult:
        """Queue the ODP events of ``batch``; never blocks on the network, never raises.

        Returns:
            ``FAILURE`` after :meth:`shutdown` or when a record could not be read,
            ``SUCCESS`` otherwise.
        """
        if self._shut_down:
            return LogRecordExportResult.FAILURE
        result = LogRecordExportResult.SUCCESS
        for item in batch:
            try:
                attributes, event_name, body = record_parts(item)
                payload = _odp_payload(attributes)
                if payload is None:
                    continue
                action = event_name or body
                # A non-text body cannot name the action: "" makes the client drop the
                # event as invalid_action, unless the payload names one.
                self._client.send_payload(payload, action if isinstance(action, str) else "")
            except Exception:  # noqa: BLE001 - one bad record must not lose the others
                self._client.count_integration_error()
                result = LogRecordExportResult.FAILURE
        return result


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Mark the client's request so that OpenTelemetry instrumentation skips it."""
    token = otel_context.attach(
        otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    )
    try:
        yield
    finally:
        otel_context.detach(token)


# Without this, an instrumented requests/urllib3 would trace every batch the worker
# sends, and those spans would go through the application's exporters.
add_send_hook(_untraced)
