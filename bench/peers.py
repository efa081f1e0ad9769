"""The peers odp-logging is compared with, each set up to deliver to a local endpoint.

* optimizely-sdk: ``Optimizely.send_odp_event``, from an inline datafile whose ODP
  integration ``host`` is the project's receiver (the SDK appends ``/v3/events``).
* segment-analytics-python: ``Client.track`` with ``host=`` the counting sink of
  ``bench._sink`` (the SDK appends ``/v1/batch``).

Both run with their default queue, batch and interval settings. They are installed by
the ``bench`` extra (``pip install -e '.[bench]'``); a peer that is missing makes its
rows "n/a" rather than failing the suite.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

PEER_DISTRIBUTIONS = ("optimizely-sdk", "segment-analytics-python")
"""The peers, as distributions, for the versions table."""
CONTEXT_DISTRIBUTIONS = (
    "odp-logging",
    "requests",
    "urllib3",
    "orjson",  # the optional fast extra: used when installed
    "structlog",
    "opentelemetry-sdk",
)
"""What odp-logging's own figures depend on."""


def versions() -> dict[str, str]:
    """The installed version of odp-logging, its dependencies and every peer."""
    found = {}
    for name in (*CONTEXT_DISTRIBUTIONS, *PEER_DISTRIBUTIONS):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def optimizely_client(api_host: str, api_key: str) -> Any:
    """An ``Optimizely`` client whose ODP events go to ``api_host``.

    The datafile is the smallest one the SDK accepts with an ODP integration; the SDK
    starts its ODP thread as soon as it has parsed it.
    """
    from optimizely import optimizely

    datafile = {
        "version": "4",
        "accountId": "1",
        "projectId": "1",
        "revision": "1",
        "environmentKey": "bench",
        "sdkKey": "bench",
        "experiments": [],
        "events": [],
        "audiences": [],
        "typedAudiences": [],
        "groups": [],
        "attributes": [],
        "featureFlags": [],
        "rollouts": [],
        "anonymizeIP": True,
        "botFiltering": False,
        "integrations": [{"key": "odp", "host": api_host, "publicKey": api_key}],
    }
    client = optimizely.Optimizely(datafile=json.dumps(datafile))
    manager = client.odp_manager.event_manager
    if not client.is_valid or manager is None or not manager.is_running:
        raise RuntimeError("optimizely-sdk did not start its ODP event thread")
    return client


def optimizely_settle(client: Any) -> None:
    """Wait until the SDK has sent every event queued so far, partial batch included."""
    manager = client.odp_manager.event_manager
    manager.flush()  # a signal behind the queued events: sends the partial batch
    manager.event_queue.join()


def segment_client(host: str) -> Any:
    """A segment-analytics-python ``Client`` that delivers to ``host``."""
    from segment.analytics import Client  # type: ignore[import-untyped]

    return Client(write_key="bench-write-key", host=host)
