"""Send Optimizely Data Platform (ODP) events by logging.

The public surface: :class:`OdpClient` (the SDKs' ``send_odp_event``, from a
background thread), :class:`OdpHandler` for standard logging, :func:`context` for
identifiers known once per request, and :func:`get_client` for the process-wide
client the integrations share. The structlog and OpenTelemetry integrations live in
``odp_logging.structlog`` and ``odp_logging.otel``, which this module never imports.

Names are imported on first use, so that importing the package (as pytest does for
the ``odp_logging.testing`` plugin) costs nothing until a client is wanted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from odp_logging._version import __version__

if TYPE_CHECKING:
    from odp_logging._client import OdpClient, context, get_client
    from odp_logging._config import ConfigError
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

_HOMES: Final = {
    "ConfigError": "odp_logging._config",
    "OdpClient": "odp_logging._client",
    "OdpHandler": "odp_logging.handler",
    "OdpStats": "odp_logging._worker",
    "context": "odp_logging._client",
    "get_client": "odp_logging._client",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'odp_logging' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
