"""The one module that imports OpenTelemetry's logs SDK, ``opentelemetry.sdk._logs``.

That SDK is still private and changing: opentelemetry-sdk 1.39 renamed ``LogExporter``
and ``LogExportResult`` to ``LogRecordExporter`` and ``LogRecordExportResult`` and
replaced ``LogData`` by ``ReadableLogRecord``; ``event_name`` appeared on log records
later than 1.30. Everything that depends on those names lives here, so that the next
rename touches this file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.sdk._logs import export as _export

if TYPE_CHECKING or hasattr(_export, "LogRecordExporter"):
    from opentelemetry.sdk._logs.export import LogRecordExporter as LogRecordExporterBase
    from opentelemetry.sdk._logs.export import LogRecordExportResult
else:  # opentelemetry-sdk < 1.39
    from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporterBase
    from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord as ExportedLogRecord
    from opentelemetry.util.types import AnyValue

__all__ = ["ExportedLogRecord", "LogRecordExportResult", "LogRecordExporterBase", "record_parts"]


def record_parts(
    item: ExportedLogRecord,
) -> tuple[Mapping[str, AnyValue] | None, str | None, AnyValue]:
    """Return the attributes, event name and body of one exported log record.

    Args:
        item: What a log exporter receives: a ``ReadableLogRecord`` (SDK >= 1.39) or a
            ``LogData`` (older); both hold the record as ``log_record``.

    Returns:
        ``(attributes, event_name, body)``; ``event_name`` is None where the SDK has none.
    """
    record = item.log_record
    return record.attributes, getattr(record, "event_name", None), record.body
