"""Send ODP events from OpenTelemetry span events and log records.

Run: ``python examples/otel_app.py``

With ``ODP_API_KEY`` set (and ``ODP_API_HOST`` if needed), the events go to ODP. Without
it, the example starts a local receiver, sends to it and prints what arrived: no account
and no network needed.
"""

from __future__ import annotations

import os

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

import odp_logging
from odp_logging.otel import OdpLogRecordExporter, OdpSpanProcessor
from odp_logging.server import Receiver


def run(client: odp_logging.OdpClient) -> None:
    """Record a checkout as span events and a sign-up as a log record."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(OdpSpanProcessor(client=client))
    tracer = tracer_provider.get_tracer("shop")
    # The span's identifiers apply to each ODP event on it; "cache.miss" is not one.
    with tracer.start_as_current_span(
        "checkout", attributes={"odp.identifiers.fs_user_id": "user123"}
    ) as span:
        span.add_event("added_to_cart", {"odp.data.sku": "shirt-42"})
        span.add_event("cache.miss", {"key": "cart:user123"})
        span.add_event("purchased", {"odp.data.price": 50.0, "odp.data.currency": "USD"})

    # A log record with an ODP payload, as the logging bridge makes of
    # log.info("signed_up", extra={"odp": {...}}); its body is the action.
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OdpLogRecordExporter(client=client))
    )
    logger_provider.get_logger("shop").emit(
        LogRecord(
            body="signed_up",
            attributes={"odp.identifiers.email": "user@example.com", "odp.data.plan": "pro"},
        )
    )
    tracer_provider.shutdown()
    logger_provider.shutdown()


def main() -> None:
    """Send to ODP when configured, else to a local receiver, and report."""
    if os.environ.get("ODP_API_KEY"):
        client = odp_logging.OdpClient()
        run(client)
        client.close()
        print(f"sent {client.stats().sent} events to {client.options.api_host}")
        return
    with Receiver() as receiver:
        client = odp_logging.OdpClient(api_key="local-example-key", api_host=receiver.url)
        run(client)
        client.close()
        events = receiver.events()
        print(f"received {len(events)} events at {receiver.url}:")
        for event in events:
            print(f"  {event['action']:<14} {event['identifiers']}")


if __name__ == "__main__":
    main()
