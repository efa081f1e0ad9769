"""Faults that the receiver plays instead of (or before) its normal answer."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, get_args

FaultKind = Literal["status", "delay", "drop", "reset"]
_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclasses.dataclass(frozen=True)
class Fault:
    """One programmed misbehaviour of the receiver, for the next requests to `/v3/events`.

    The receiver first waits `delay` seconds, then, by `kind`:

    - `"status"`: answers `status` with `body` (default `{"message": <reason>}`) and a
      `Retry-After: <retry_after>` header when given; the events are not stored.
    - `"delay"`: answers normally (and stores the events), only late.
    - `"drop"`: closes the connection without answering (the client sees a FIN).
    - `"reset"`: aborts the connection with a TCP reset (SO_LINGER 0) without answering.

    Only `"delay"` stores the request's events; every faulted request is logged.

    Attributes:
        kind: What to do, see above.
        status: HTTP status of a `"status"` fault.
        body: Response body of a `"status"` fault, sent verbatim as `application/json`.
        retry_after: `Retry-After` header value of a `"status"` fault: seconds or an HTTP date.
        delay: Seconds to wait before acting; any kind.
        times: How many requests the fault applies to; `None` until `clear_faults()`
            (an outage). Faults queued behind an endless one never play.
    """

    kind: FaultKind
    status: int = 503
    body: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            msg = f"fault kind must be one of {_KINDS}, not {self.kind!r}"
            raise ValueError(msg)
        if not 100 <= self.status <= 599:
            msg = f"fault status must be an HTTP status code, not {self.status}"
            raise ValueError(msg)
        if self.delay < 0:
            msg = "fault delay must not be negative"
            raise ValueError(msg)
        if self.times is not None and self.times < 1:
            msg = "fault times must be at least 1, or None for an outage"
            raise ValueError(msg)

    def to_json(self) -> dict[str, object]:
        """Return the fault as the JSON object that `from_json` and the control API read."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: object) -> Fault:
        """Build a fault from its JSON object; keys other than `kind` are optional.

        Raises:
            ValueError: If `obj` is not a JSON object with known keys of the right types.
        """
        if not isinstance(obj, Mapping):
            msg = "a fault must be a JSON object"
            raise ValueError(msg)
        unknown = set(obj) - set(_JSON_CHECKS)
        if unknown:
            msg = f"unknown fault keys: {sorted(unknown)}"
            raise ValueError(msg)
        for name, value in obj.items():
            if not _JSON_CHECKS[name](value):
                msg = f"fault {name} has the wrong type: {value!r}"
                raise ValueError(msg)
        return cls(**obj)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


# What each field of a decoded JSON fault may hold; __post_init__ then checks the ranges.
_JSON_CHECKS: dict[str, Callable[[object], bool]] = {
    "kind": lambda value: isinstance(value, str),
    "status": _is_int,
    "body": _is_optional_str,
    "retry_after": _is_optional_str,
    "delay": lambda value: _is_int(value) or isinstance(value, float),
    "times": lambda value: value is None or _is_int(value),
}


class FaultQueue:
    """Faults waiting for the next requests, consumed in order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each entry is a fault and how many more requests it applies to (None: endless).
        self._pending: deque[tuple[Fault, int | None]] = deque()

    def push(self, faults: Iterable[Fault]) -> None:
        """Queue `faults` behind those already waiting."""
        with self._lock:
            self._pending.extend((fault, fault.times) for fault in faults)

    def take(self) -> Fault | None:
        """Return the fault for the request being answered, or `None` to answer normally."""
        with self._lock:
            if not self._pending:
                return None
            fault, remaining = self._pending[0]
            if remaining == 1:
                self._pending.popleft()
            elif remaining is not None:
                self._pending[0] = (fault, remaining - 1)
            return fault

    def clear(self) -> None:
        """Forget every waiting fault, endless ones included."""
        with self._lock:
            self._pending.clear()
