"""The ODP events API's rules for a request body, written independently of the client."""

from __future__ import annotations

import json
import math
from typing import Any

EVENT_FIELDS = frozenset({"type", "action", "identifiers", "data"})


class BadBody(ValueError):
    """The body as a whole is unusable, so no event in it can be named invalid."""


def parse_events(body: bytes) -> list[Any]:
    """Decode a request body into its list of events, as ODP reads it.

    A single JSON object is taken as a one-event list, as ODP accepts it.

    Raises:
        BadBody: If the body is not strict JSON (NaN, Infinity and numbers too large for a
            float are refused, which Python's json module would let through), is neither an
            array nor an object, or is an empty array.
    """
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the hooks' errors
        msg = f"body is not valid JSON: {exc}"
        raise BadBody(msg) from None
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        msg = "body must be a JSON array of events"
        raise BadBody(msg)
    if not value:
        msg = "body must contain at least one event"
        raise BadBody(msg)
    return value


def find_invalids(events: list[Any]) -> list[dict[str, object]]:
    """Return ODP's `detail.invalids` for `events`: `{"event": index, "message": ...}`.

    Each invalid event is named once, with its first problem. Messages name fields, never
    their values.
    """
    invalids: list[dict[str, object]] = []
    for index, event in enumerate(events):
        problem = _problem(event)
        if problem is not None:
            invalids.append({"event": index, "message": problem})
    return invalids


def _problem(event: object) -> str | None:
    """Return what is wrong with one event, or `None` when ODP would take it."""
    if not isinstance(event, dict):
        return "event must be a JSON object"
    if not EVENT_FIELDS.issuperset(event):
        return f"unknown field {sorted(set(event) - EVENT_FIELDS)[0]!r}"
    for field in ("type", "action"):
        if not _non_empty_str(event.get(field)):
            return f"{field} must be a non-empty string"
    identifiers = event.get("identifiers")
    if not isinstance(identifiers, dict) or not identifiers:
        return "identifiers must be a non-empty object"
    for name, value in identifiers.items():
        if not name:
            return "identifiers must not have an empty name"
        if not _non_empty_str(value):
            return f"identifiers.{name} must be a non-empty string"
    data = event.get("data", {})
    if not isinstance(data, dict):
        return "data must be an object"
    for name, value in data.items():
        if type(value) is dict or type(value) is list:
            return f"data.{name} must be a string, number, boolean or null"
    return None


def _non_empty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _refuse_constant(name: str) -> float:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"{text} does not fit a double"
        raise ValueError(msg)
    return value
