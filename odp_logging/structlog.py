"""structlog integration: ODP events from any structlog pipeline.

Put one :class:`OdpProcessor` in the ``structlog.configure(processors=[...])`` chain,
after ``merge_contextvars`` and before ``format_exc_info`` and the renderer; then
``log.info("purchased", odp={"identifiers": {...}, "data": {...}})`` sends one ODP
event. It works the same whatever structlog logs to (``PrintLogger``, ``WriteLogger``,
the standard library) and from ``await log.ainfo(...)``. Never put it in a
``ProcessorFormatter``'s chains: those run once per handler. See ``docs/structlog.md``.
"""

from __future__ import annotations

import contextvars
from typing import Any, Final

try:
    import structlog
    from structlog.contextvars import bind_contextvars
    from structlog.typing import EventDict, WrappedLogger
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "odp_logging.structlog needs structlog: pip install 'odp-logging[structlog]'"
    ) from exc

from odp_logging._client import OdpClient, client_for
from odp_logging._payload import merge_payloads

__all__ = ["OdpProcessor"]


def _bound_odp_variable() -> contextvars.ContextVar[Any]:
    """Return the variable in which ``structlog.contextvars`` keeps the bound ``odp``.

    structlog makes one ``ContextVar`` per key, reuses it for every bind, and marks
    an unbound key with ``...``. Binding once and resetting at once hands us that
    variable through public API only; reading it then costs one ``ContextVar.get``,
    where ``get_contextvars()`` copies and scans the whole context (about 1 us).
    """
    token = bind_contextvars(odp=...)["odp"]
    token.var.reset(token)
    return token.var


_BOUND_ODP: Final = _bound_odp_variable()


class OdpProcessor:
    """A structlog processor that turns event dicts carrying ``odp`` into ODP events.

    ``log.info("purchased", odp={"identifiers": {...}, "data": {...}})`` becomes one
    ODP event: action ``odp["action"]`` or else the event dict's ``event``, type
    ``odp["type"]`` or else ``"fullstack"``, identifiers and data merged over those
    of :func:`odp_logging.context`. Event dicts without ``odp`` pass through
    untouched; ``odp=None`` is removed and sends nothing.

    An ``odp`` payload bound with ``structlog.contextvars.bind_contextvars(odp=...)``
    is context, like :func:`odp_logging.context`: it is merged under each call's own
    payload (the call's identifiers, data, action and type win, key by key), and on
    its own it makes no log line an ODP event.

    It goes in ``structlog.configure(processors=[...])``, after
    ``merge_contextvars`` (so that it removes the bound ``odp`` from log output) and
    before ``format_exc_info`` and the renderer, ``render_to_log_kwargs`` or
    ``ProcessorFormatter.wrap_for_formatter``. Never in ``ProcessorFormatter``'s
    ``processors`` or ``foreign_pre_chain``: those run once per handler, so each
    handler would send the event again.

    Args:
        client: The client to send with; default: the shared client
            (:func:`odp_logging.get_client`).
        keep: Leave ``odp`` in the event dict. By default it is removed, which
            keeps identifiers such as emails out of the log output and stops an
            ``OdpHandler`` on the standard-library side from sending the event
            again.
        drop: Raise ``structlog.DropEvent`` after queueing an ODP event, so that
            business events are not also logged. Other log lines are unaffected.
        **client_options: Options for the shared client (``api_key``, ...); not
            together with ``client``.

    Raises:
        odp_logging.ConfigError: A client option has an invalid value.
        TypeError: Both ``client`` and client options were given.
    """

    __slots__ = ("_client", "_drop", "_keep")

    def __init__(
        self,
        *,
        client: OdpClient | None = None,
        keep: bool = False,
        drop: bool = False,
        **client_options: Any,
    ) -> None:
        self._client = client_for(client, client_options)
        self._keep = keep
        self._drop = drop

    def __repr__(self) -> str:
        return f"OdpProcessor(client={self._client!r}, keep={self._keep}, drop={self._drop})"

    @property
    def client(self) -> OdpClient:
        """The client that sends the events (for ``flush``, ``stats`` and ``close``)."""
        return self._client

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Queue the event dict's ODP event, if it carries one, and return the event dict.

        Called on the thread that logs (structlog's executor thread for
        ``ainfo``), once per log call. Never waits on the network and never raises,
        except ``structlog.DropEvent`` when ``drop=True``: the payload is handed to the
        client, which validates it on its worker thread and counts an invalid
        one as a drop in ``stats()``. Event dicts without ``odp`` cost one lookup.

        Raises:
            structlog.DropEvent: ``drop=True`` and an ODP event was queued.
        """
        if "odp" not in event_dict:
            return event_dict
        payload = event_dict["odp"] if self._keep else event_dict.pop("odp")
        bound = _BOUND_ODP.get()
        if payload is None or payload is bound:  # merge_contextvars' copy: context, not an event
            return event_dict
        self._send(payload, None if bound is ... else bound, event_dict.get("event"))
        if self._drop:
            raise structlog.DropEvent
        return event_dict

    def _send(self, payload: object, bound: object, event: object) -> None:
        """Hand the client the call's payload merged over the bound one; never raises."""
        if bound is not None:
            try:
                payload = merge_payloads(bound, payload)
            except Exception:  # noqa: BLE001 - a caller's mapping raised: never into the app
                self._client.count_unreadable_payload()
                return
        # A non-text event cannot name the action: "" makes the client drop the event
        # as invalid_action unless the payload names one.
        self._client.send_payload(payload, event if isinstance(event, str) else "")
