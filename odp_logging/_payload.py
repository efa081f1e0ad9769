"""Merging ``odp`` payloads, for integrations that find one in two places.

structlog merges a payload bound with ``bind_contextvars(odp=...)`` under the call's
own; OpenTelemetry merges a span's identifiers under each of its events' and the
flattened ``odp.*`` attributes over an ``odp`` mapping. Both run on the application's
thread: they copy shallowly and validate nothing (the worker does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

SECTIONS: Final = ("identifiers", "data")
"""The payload keys merged key by key; other keys (``action``, ``type``) are replaced."""

_MAPPING: Final = (dict, Mapping)
"""For isinstance: a dict matches before the Mapping ABC's check, which costs ~4x as much."""


def merge_mappings(under: object, over: object) -> object:
    """Merge two mappings, ``over`` winning.

    None stands for "absent"; otherwise a non-mapping is returned as it is, so that the
    client drops the event under a reason naming the field.
    """
    if under is None:
        return over
    if over is None:
        return under
    if not isinstance(under, _MAPPING):
        return under
    if not isinstance(over, _MAPPING):
        return over
    return {**under, **over}


def merge_payloads(under: object, over: object) -> object:
    """Merge payload ``over`` onto ``under``: sections key by key, other keys replaced."""
    if not (isinstance(under, _MAPPING) and isinstance(over, _MAPPING)):
        return merge_mappings(under, over)
    payload = {**under, **over}
    for section in SECTIONS:
        payload[section] = merge_mappings(under.get(section), over.get(section))
    return payload
