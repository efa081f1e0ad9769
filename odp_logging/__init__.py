"""Send Optimizely Data Platform (ODP) events by logging.

The public surface: :class:`OdpClient` (the SDKs' ``send_odp_event``, from a
background thread), :class:`OdpHandler` for standard logging, :func:`context` for
identifiers known once per request, and :func:`get_client` for the process-wide
client the integrations share. The structlog and OpenTelemetry integrations live in
``odp_logging.structlog`` and ``odp_logging.otel``, which this module never imports.
"""

from odp_logging._client import OdpClient, context, get_client
from odp_logging._config import ConfigError
from odp_logging._version import __version__
from odp_logging._worker import OdpStats
from odp_logging.handler import OdpHandler

__all__ = [
    "ConfigError",
    "OdpClient",
    "OdpHandler",
    "OdpStats",
    "__version__",
    "context",
    "get_client",
]
