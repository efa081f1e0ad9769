"""The ODP event rules: pure functions, no I/O, no threads.

These reproduce what Optimizely's SDKs put on the wire (optimizely-sdk 5.7.0,
``optimizely/odp/``), stricter where the SDKs let invalid JSON or empty values through:

* ``type`` defaults to ``"fullstack"``, also when empty; ``action`` is a non-empty string.
* identifiers map strings to non-empty strings; ints become strings; None and empty
  values are removed; the first ``fs-user-id``/``FS_USER_ID``/... key becomes
  ``fs_user_id`` exactly as the SDKs do it. None left: the event is dropped.
* data values are str, int, float or bool; None is sent as ``""``; datetime and date
  as ISO 8601, Decimal as float, UUID as str, Enum as its value; NaN, infinity,
  integers outside the 64-bit range, containers and other objects make the event
  invalid.
* a mapping or value that raises while it is read or converted makes the event
  invalid under the reason of its field; lone surrogates in text are replaced.
* default data comes first so that the caller's keys override it: ``idempotence_id``
  (a fresh UUID4), ``data_source_type``, ``data_source``, ``data_source_version``.

Everything here runs on the worker thread, never on the application's.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Final

from odp_logging._version import __version__

try:  # the ``fast`` extra: a C encoder, used where its output is the stdlib's to the byte
    import orjson
except ImportError:  # pragma: no cover - exercised by the tests that hide it
    orjson = None  # type: ignore[assignment]

DEFAULT_TYPE: Final = "fullstack"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_MAX_KEY_SHOWN: Final = 40
"""Longest key quoted in a rejection: keys are names, but nothing stops a huge one."""
FS_USER_ID: Final = "fs_user_id"
_FS_USER_ID_ALIASES: Final = frozenset({"fs-user-id", "fs_user_id"})
_ALIAS_LENGTH: Final = len(FS_USER_ID)
_PLAIN_FLOATS: Final = (1e-4, 1e16)
"""Magnitudes that ``repr`` writes without an exponent, as orjson does: outside them
the two spell a float differently (``1e+16`` against ``1e16``)."""
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The RFC 4122 variant digit (``10xx``) keeping a random hex digit's two low bits."""

_std_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why an event cannot be sent: a drop reason, the field at fault and the problem.

    The text never contains the offending value, which may be personal data.
    """

    reason: str
    field: str
    problem: str

    def describe(self) -> str:
        """Return the message used in the rate-limited warning."""
        return f"ODP event dropped ({self.reason}): {self.field} {self.problem}"


class _Invalid(Exception):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection


def _reject(reason: str, field: str, problem: str) -> _Invalid:
    return _Invalid(Rejection(reason, field, problem))


class _BadValue(Exception):
    """A data value ODP cannot take; the field is named where the key is known."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _ids() -> Iterator[str]:
    """Yield UUID4 strings, reading the random source once per 256 ids.

    ``uuid.uuid4()`` makes one ``os.urandom`` call and builds one object per id;
    slicing one hex string per 256 ids keeps the worker's share of the GIL small.
    Each id is ``uuid.uuid4()``'s: 122 random bits, version 4, the RFC 4122 variant.
    """
    variant = _VARIANT
    while True:
        pool = os.urandom(16 * 256).hex()
        for i in range(0, len(pool), 32):
            yield (
                f"{pool[i : i + 8]}-{pool[i + 8 : i + 12]}-4{pool[i + 13 : i + 16]}-"
                f"{variant[pool[i + 16]]}{pool[i + 17 : i + 20]}-{pool[i + 20 : i + 32]}"
            )


class EventBuilder:
    """Turns what an integration captured into one encoded ODP event.

    Args:
        data_source: The ``data_source`` default data value.
        static_data: Data merged under every event's own data (above the defaults).

    Raises:
        ValueError: ``static_data`` holds a value that ODP cannot take.
    """

    __slots__ = ("_data_source", "_ids", "_static_data", "_static_is_plain")

    def __init__(self, data_source: str, static_data: Mapping[str, Any] | None = None) -> None:
        self._data_source = data_source
        try:
            self._static_data = _clean_data(static_data or {}, "static_data")
        except _Invalid as invalid:
            raise ValueError(f"{invalid.rejection.field} {invalid.rejection.problem}") from None
        self._static_is_plain = _is_plain_data(self._static_data)
        self._ids = _ids()

    def after_fork(self) -> None:
        """Draw ids from a fresh random pool: a forked child must not repeat its parent's ids."""
        self._ids = _ids()

    def build(
        self,
        action: object,
        event_type: object,
        identifiers: object,
        data: object,
        context: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    ) -> bytes | Rejection:
        """Validate, normalise and encode one event.

        Args:
            action: The event's action.
            event_type: The event's type; None or empty means ``"fullstack"``.
            identifiers: The event's identifiers.
            data: The event's data, or None.
            context: Identifiers and data of the enclosing ``odp_logging.context()``,
                merged under the event's own.

        Returns:
            The event as UTF-8 JSON, or the reason it cannot be sent.
        """
        try:
            if self._static_is_plain:
                plain = self._build_plain(action, event_type, identifiers, data, context)
                if plain is not None:
                    return plain
            return self._build(action, event_type, identifiers, data, context)
        except _Invalid as invalid:
            return invalid.rejection
        except Exception:  # noqa: BLE001 - a caller's mapping or value raised while read
            return Rejection("invalid_payload", "odp", "could not be read (it raised an error)")

    def _build_plain(
        self,
        action: object,
        event_type: object,
        identifiers: object,
        data: object,
        context: tuple[Mapping[str, Any], Mapping[str, Any]] | None,
    ) -> bytes | None:
        """Build the common event, which needs no conversion, without copying it first.

        That is: exact ``str`` action and type, an exact dict of non-empty exact
        ``str`` identifiers naming no ``fs-user-id`` alias, data that is None or an
        exact dict of ``str``, ``bool``, 64-bit ``int`` and plain finite ``float``
        values (:func:`_is_plain_data`), and such context data.

        Returns:
            The encoded event, or None for any other event: :meth:`_build` then
            applies the general rules, and names what is wrong if anything is.
        """
        if type(action) is not str or not action or type(identifiers) is not dict:
            return None
        if event_type is None or event_type == "":
            event_type = DEFAULT_TYPE
        elif type(event_type) is not str:
            return None
        for key, value in identifiers.items():
            if type(key) is not str or type(value) is not str or not key or not value:
                return None
            if (
                len(key) == _ALIAS_LENGTH
                and key != FS_USER_ID
                and key.lower() in _FS_USER_ID_ALIASES
            ):
                return None  # an alias to rename: the general rules do it
        if data is None:
            data = {}
        elif type(data) is not dict or not _is_plain_data(data):
            return None
        if context is not None:
            context_ids, context_data = context
            if not _is_plain_data(context_data):
                return None
            identifiers = {**context_ids, **identifiers}
            data = {**context_data, **data}
        if not identifiers:
            return None
        return _encode_plain(self._event(event_type, action, identifiers, data))

    def _build(
        self,
        action: object,
        event_type: object,
        identifiers: object,
        data: object,
        context: tuple[Mapping[str, Any], Mapping[str, Any]] | None,
    ) -> bytes:
        if not isinstance(action, str) or not action:
            raise _reject("invalid_action", "action", "must be a non-empty string")
        if event_type is None or event_type == "":
            event_type = DEFAULT_TYPE
        elif not isinstance(event_type, str):
            raise _reject("invalid_type", "type", "must be a string")
        merged_ids = normalise_identifiers(identifiers)
        merged_data = _clean_data(data, "data") if data is not None else {}
        if context is not None:
            context_ids, context_data = context
            merged_ids = {**context_ids, **merged_ids}
            merged_data = {**context_data, **merged_data}
        if not merged_ids:
            raise _reject("no_identifiers", "identifiers", "has no non-empty value")
        return _encode(self._event(event_type, action, merged_ids, merged_data))

    def _event(
        self, event_type: str, action: str, identifiers: dict[str, str], data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Assemble the wire event: default data first, so the caller's keys override it."""
        event_data = {
            "idempotence_id": next(self._ids),
            "data_source_type": "sdk",
            "data_source": self._data_source,
            "data_source_version": __version__,
            **self._static_data,
            **data,
        }
        return {
            "type": event_type,
            "action": action,
            "identifiers": identifiers,
            "data": event_data,
        }


def _is_plain_data(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` (a dict) holds only values that are sent as they are.

    Those are ``str`` and ``bool``, ``int`` in the 64-bit range, and finite ``float``
    that ``repr`` and orjson spell alike (no exponent), under exact ``str`` keys.
    """
    low, high = _PLAIN_FLOATS
    for key, value in data.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is float:
            if not (low <= abs(value) < high or value == 0.0):  # NaN fails both
                return False
        elif kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return False
        elif kind is not str and kind is not bool:
            return False
    return True


def _encode_plain(event: dict[str, Any]) -> bytes:
    """Encode an event of plain values, with orjson when it is installed.

    orjson writes such an event byte for byte as :func:`_encode` does; it refuses
    lone surrogates, which :func:`_encode` replaces.
    """
    if orjson is not None:
        try:
            # A copy: orjson's bytes keep their whole output buffer (4 KiB at least),
            # and a backlog holds thousands of events.
            return memoryview(orjson.dumps(event)).tobytes()
        except orjson.JSONEncodeError:
            pass
    return _encode(event)


def _encode(event: dict[str, Any]) -> bytes:
    """Encode with the stdlib's encoder, as compact UTF-8 JSON."""
    try:
        return _std_encode(event).encode()
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8: send the text with them replaced.
        return _std_encode(_replace_surrogates(event)).encode()


def normalise_identifiers(identifiers: object) -> dict[str, str]:
    """Return a cleaned copy of ``identifiers`` with the SDKs' ``fs_user_id`` aliasing.

    Raises:
        _Invalid: The identifiers are not a mapping of strings to strings or ints.
    """
    if identifiers is None:
        return {}
    if not isinstance(identifiers, Mapping):
        raise _reject("invalid_identifiers", "identifiers", "must be a mapping")
    cleaned: dict[str, str] = {}
    for key, value in _read_items(identifiers, "invalid_identifiers", "identifiers"):
        if not isinstance(key, str):
            raise _reject("invalid_identifiers", "identifiers", "has a key that is not a string")
        # A str subclass may override __len__, lower() or __eq__: use the plain string.
        key = _exact_str(key)  # noqa: PLW2901
        if not key:
            raise _reject("invalid_identifiers", "identifiers", "has an empty key")
        if value is None:
            continue
        if isinstance(value, str):
            text = _exact_str(value)
            if text:
                cleaned[key] = text
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                cleaned[key] = str(int.__int__(value))
            except ValueError:  # more digits than sys.get_int_max_str_digits()
                raise _reject(
                    "invalid_identifiers", _field("identifiers", key), "is an integer too long"
                ) from None
        else:
            raise _reject(
                "invalid_identifiers",
                _field("identifiers", key),
                f"must be a string or an int, not {type(value).__name__}",
            )
    _alias_fs_user_id(cleaned)
    return cleaned


def clean_context(identifiers: object, data: object) -> tuple[dict[str, str], dict[str, Any]]:
    """Clean the identifiers and data of an ``odp_logging.context()`` block.

    Invalid parts are left out with a warning rather than raised: a context manager
    around a request must never be why the request fails.
    """
    cleaned_ids: dict[str, str] = {}
    cleaned_data: dict[str, Any] = {}
    try:
        cleaned_ids = normalise_identifiers(identifiers)
        cleaned_data = _clean_data(data, "data") if data is not None else {}
    except _Invalid as invalid:
        logging.getLogger("odp_logging").warning(
            "odp_logging.context() ignored: %s", invalid.rejection.describe()
        )
    except Exception:  # noqa: BLE001 - a hostile mapping must not break the request
        logging.getLogger("odp_logging").warning("odp_logging.context() ignored: unreadable values")
    return cleaned_ids, cleaned_data


def _alias_fs_user_id(identifiers: dict[str, str]) -> None:
    """Rename the first ``fs-user-id``-like key to ``fs_user_id``, as the SDKs do.

    Like optimizely-sdk's ``_convert_identifers``: stop at an exact ``fs_user_id``;
    otherwise the first key equal to ``fs-user-id``/``fs_user_id`` ignoring case is
    popped and re-inserted as ``fs_user_id`` (so it moves to the end).
    """
    for key in identifiers:
        if key == FS_USER_ID:
            return
        if key.lower() in _FS_USER_ID_ALIASES:
            identifiers[FS_USER_ID] = identifiers.pop(key)
            return


def _clean_data(data: object, field: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise _reject("invalid_data", field, "must be a mapping")
    cleaned: dict[str, Any] = {}
    for key, value in _read_items(data, "invalid_data", field):
        if not isinstance(key, str):
            raise _reject("invalid_data", field, "has a key that is not a string")
        key = _exact_str(key)  # noqa: PLW2901 - see normalise_identifiers
        try:
            cleaned[key] = _data_value(value)
        except _BadValue as bad:
            raise _reject("invalid_data", _field(field, key), bad.problem) from None
        except Exception:  # noqa: BLE001 - e.g. a datetime subclass whose isoformat() raises
            raise _reject("invalid_data", _field(field, key), "could not be converted") from None
    return cleaned


def _read_items(mapping: Mapping[Any, Any], reason: str, field: str) -> list[tuple[Any, Any]]:
    """Copy a caller's mapping into pairs, turning any error it raises into a rejection."""
    try:
        return [(key, mapping[key]) for key in list(mapping)]
    except Exception:  # noqa: BLE001 - a hostile or concurrently changed mapping
        raise _reject(reason, field, "could not be read (it raised an error)") from None


def _field(field: str, key: str) -> str:
    """Name ``field[key]`` for a rejection, shortening a huge key."""
    shown = key if len(key) <= _MAX_KEY_SHOWN else f"{key[:_MAX_KEY_SHOWN]}..."
    return f"{field}[{shown!r}]"


def _exact_str(text: str) -> str:
    """Return ``text`` as a plain str without calling a subclass's overrides."""
    return text if type(text) is str else str.__str__(text)


def _data_value(value: object) -> Any:
    """Return the value sent for ``value``.

    Raises:
        _BadValue: ODP cannot take it; the caller names the field.
    """
    # Exact type checks first: they are the common case and skip the subclass tests.
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        return _int64(value)  # type: ignore[arg-type]
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value
        raise _BadValue("is not a finite number")
    if value is None:
        return ""  # ODP reads null as an empty string; send what it will store
    if isinstance(value, enum.Enum):
        return _data_value(value.value)
    # str/int subclasses (bool is final): read the base value without calling overrides
    if isinstance(value, str):
        return _exact_str(value)
    if isinstance(value, int):
        return _int64(int.__int__(value))
    if isinstance(value, float):
        return _data_value(float.__float__(value))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _data_value(float(value))
    if isinstance(value, uuid.UUID):
        return str(value)
    raise _BadValue(f"must be a str, int, float, bool or None, not {type(value).__name__}")


def _int64(value: int) -> int:
    """Return ``value`` if ODP can store it as a number (a signed 64-bit integer)."""
    if _INT64_MIN <= value <= _INT64_MAX:
        return value
    raise _BadValue("is an integer outside the 64-bit range")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value
