"""ODP credentials from an Optimizely Feature Experimentation datafile.

A datafile names the ODP public key and host in its integrations::

    "integrations": [{"key": "odp", "publicKey": "W4WzcEs-ABgXorzY7h1LCQ", "host": "https://api.zaius.com"}]

Users of Feature Experimentation already have an SDK key whose datafile carries this, so
``sdk_key=...`` (or ``datafile=`` / ``datafile_url=``) is all they need to configure. Fetching
happens on the worker thread, never on the application's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Final

import requests

CDN_URL: Final = "https://cdn.optimizely.com/datafiles/{sdk_key}.json"
REFRESH_INTERVAL: Final = 300.0
"""Seconds between two fetches of a datafile URL, as the SDKs' polling default."""
RETRY_INTERVAL: Final = 5.0
"""Seconds before fetching again after a failed fetch, while nothing is known yet."""


class DatafileError(ValueError):
    """A datafile could not be read or has no usable ODP integration."""


@dataclasses.dataclass(frozen=True)
class OdpIntegration:
    """The ODP public key and host a datafile names."""

    api_key: str = dataclasses.field(repr=False)
    api_host: str


def odp_integration(datafile: Mapping[str, Any]) -> OdpIntegration | None:
    """Return the datafile's ODP integration, or None when it has none.

    Raises:
        DatafileError: The datafile's ``integrations`` are malformed.
    """
    integrations = datafile.get("integrations") or []
    if not isinstance(integrations, list):
        raise DatafileError("the datafile's integrations must be a list")
    for integration in integrations:
        if isinstance(integration, Mapping) and integration.get("key") == "odp":
            key, host = integration.get("publicKey"), integration.get("host")
            if isinstance(key, str) and key and isinstance(host, str) and host:
                return OdpIntegration(key, host.rstrip("/"))
    return None


def load_datafile(source: object) -> Mapping[str, Any]:
    """Read a datafile given as a mapping, JSON text or a path to a JSON file.

    Raises:
        DatafileError: The source is none of these, or not a JSON object.
    """
    if isinstance(source, Mapping):
        return source
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and not source.lstrip().startswith("{")
    ):
        try:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise DatafileError(f"cannot read the datafile ({type(exc).__name__})") from None
    elif isinstance(source, (str, bytes)):
        text = source.decode() if isinstance(source, bytes) else source
    else:
        raise DatafileError("datafile must be a mapping, JSON text or a path")
    try:
        parsed = json.loads(text)
    except ValueError:
        raise DatafileError("the datafile is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise DatafileError("the datafile is not a JSON object")
    return parsed


class DatafilePoller:
    """Fetches a datafile URL on the worker thread and keeps its ODP integration current.

    Args:
        url: Where to fetch the datafile from.
        timeout: Request timeout, in seconds.
        refresh_interval: Seconds between fetches once the datafile is known.
    """

    def __init__(
        self, url: str, timeout: float, refresh_interval: float = REFRESH_INTERVAL
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._next_fetch = 0.0
        self._etag: str | None = None
        self.known = False
        """Whether a datafile was fetched at least once."""
        self.integration: OdpIntegration | None = None
        """The last fetched ODP integration; None before the first fetch or when absent."""
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"DatafilePoller(url={self._url!r}, known={self.known})"

    def poll(self) -> bool:
        """Fetch the datafile if it is due; return True when the integration changed.

        Never raises: a failed fetch keeps what was known and is retried later.
        """
        now = time.monotonic()
        if now < self._next_fetch:
            return False
        headers = {"if-none-match": self._etag} if self._etag else {}
        try:
            response = requests.get(self._url, headers=headers, timeout=self._timeout)
            if response.status_code == 304:
                self._next_fetch = now + self._refresh_interval
                return False
            response.raise_for_status()
            integration = odp_integration(load_datafile(response.content))
        except (requests.RequestException, DatafileError) as exc:
            self.last_error = _describe(exc)
            self._next_fetch = now + (self._refresh_interval if self.known else RETRY_INTERVAL)
            return False
        self._etag = response.headers.get("etag")
        self._next_fetch = now + self._refresh_interval
        changed = not self.known or integration != self.integration
        self.known, self.integration, self.last_error = True, integration, None
        return changed


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, DatafileError):
        return str(exc)
    return type(exc).__name__  # its text may carry the URL, which holds the sdk key
