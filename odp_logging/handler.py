"""Standard-library logging integration: :class:`OdpHandler`.

``logger.info("purchased", extra={"odp": {...}})`` becomes one ODP event; records
without an ``odp`` payload are ignored. The handler only reads the record and hands
the payload to an :class:`odp_logging.OdpClient`, which validates, batches and sends
on its own thread. See ``docs/logging.md``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from odp_logging._client import OdpClient, client_for
from odp_logging._diagnostics import logger as _own_logger
from odp_logging._worker import worker_thread_idents

__all__ = ["OdpHandler"]

_OWN_LOGGER: Final = _own_logger.name
_OWN_LENGTH: Final = len(_OWN_LOGGER)


class OdpHandler(logging.Handler):
    """A logging handler that turns records carrying an ``odp`` payload into ODP events.

    ``log.info("purchased", extra={"odp": {"identifiers": {...}, "data": {...}}})``
    becomes one event: action ``odp["action"]`` or else the formatted message
    (``record.getMessage()``), type ``odp["type"]`` or else ``"fullstack"``,
    identifiers and data merged over those of :func:`odp_logging.context`.

    The payload is read from ``record.odp`` (``extra=``, or structlog's
    ``render_to_log_kwargs``) or, when ``record.msg`` is a mapping holding
    ``"odp"`` (structlog's ``ProcessorFormatter.wrap_for_formatter``), from there,
    with the mapping's ``"event"`` as the default action. Records without a payload
    are ignored at the cost of two attribute reads. Records of odp-logging itself
    (the ``odp_logging`` logger, anything logged on a client's worker thread, such as
    urllib3's debug records) never become events, so the handler can sit on the
    root logger at DEBUG without feeding back into itself.

    It works in code and in ``logging.config.dictConfig``, with the ``"class"`` or
    the ``"()"`` form; every key other than ``level``, ``formatter`` and
    ``filters`` is a client option, and mapping options such as ``static_data``
    resolve ``ext://`` and ``cfg://`` references inside them.

    Without ``client=``, the handler uses the process-wide client for its options
    (:func:`odp_logging.get_client`), so handlers with equal options share one
    worker thread. :meth:`close` never closes the client: it may be shared, or it is
    yours when passed as ``client=``; the shared clients deliver what is queued at
    interpreter exit, within ``shutdown_timeout``. So re-running ``dictConfig``,
    which closes the old handler, loses no queued event, and a closed handler that
    is still attached to a logger keeps sending, like the standard handlers.

    Args:
        level: The handler's level, as for any handler.
        client: The client to send with; default: the shared client.
        **client_options: Options for the shared client (``api_key``,
            ``api_host``, ``flush_interval``, ``static_data``, ...; see
            ``docs/configuration.md``); not together with ``client``.

    Raises:
        odp_logging.ConfigError: A client option has an invalid value.
        TypeError: Both ``client`` and client options were given.
    """

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        client: OdpClient | None = None,
        **client_options: Any,
    ) -> None:
        self._client = client_for(client, client_options)  # fail before registering
        super().__init__(level)

    @property
    def client(self) -> OdpClient:
        """The client that sends the events (for ``flush``, ``stats`` and ``close``)."""
        return self._client

    def handle(self, record: logging.LogRecord) -> bool:
        """Apply the handler's filters, then emit the record, without the handler lock.

        :meth:`emit` reads the record and hands the payload to the client, whose
        queue is thread-safe without locks, so there is nothing for the lock to
        protect. Without it, no thread waits on another one's ``emit``, and the
        worker's own records (urllib3 at DEBUG) do not wait for ``logging.shutdown``,
        which holds this lock while :meth:`flush` waits for that very worker.

        Filters behave as with any handler, including Python 3.12's filters that
        return a replacement record.

        Returns:
            Whether the filters let the record through.
        """
        if not self.filters:  # the usual case: skip filter()'s loop and its checks
            self.emit(record)
            return True
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):
            record = passed
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's ODP event, if it carries an ``odp`` payload.

        Called on the thread that logs (or a ``QueueListener``'s). It never waits on
        the network, does no I/O and never raises: an invalid payload is dropped by the
        client, counted by reason in ``stats()`` and warned about on its worker thread;
        an error of ours goes to :meth:`handleError`.
        """
        try:
            # ``extra=`` (and a filter's ``record.odp = ...``) put the payload in the
            # record's dict: a lookup there is cheaper than a missing attribute's getattr.
            payload = record.__dict__.get("odp")
            default_action: str | Callable[[], str]
            if payload is not None:
                message = record.msg
                # getMessage() of a str without arguments is the str itself
                default_action = (
                    message if type(message) is str and not record.args else record.getMessage
                )
            else:
                message = record.msg
                if isinstance(message, str) or not isinstance(message, Mapping):
                    return
                payload = message.get("odp")
                if payload is None:
                    return
                default_action = functools.partial(_event_of, message)
            # odp-logging's own records never become events: what a client's worker
            # thread logs (the HTTP libraries' records while it sends; the record's
            # ident also catches them behind a QueueListener, the current thread's when
            # logging.logThreads is off), and its diagnostics, which carry a payload
            # only when a filter adds one to every record.
            thread = record.thread
            if (threading.get_ident() if thread is None else thread) in worker_thread_idents:
                return
            name = record.name
            if name.startswith(_OWN_LOGGER) and (name == _OWN_LOGGER or name[_OWN_LENGTH] == "."):
                return
            self._client.send_payload(payload, default_action)
        except RecursionError:  # as the standard handlers do: never hide a runaway recursion
            raise
        except Exception:  # noqa: BLE001 - a bug of ours must not reach the caller
            self.handleError(record)

    def flush(self) -> None:
        """Wait until the client has sent, or dropped, every event queued so far.

        Waits at most the client's ``shutdown_timeout`` and starts no thread, so it
        is safe in ``logging.shutdown()`` at interpreter exit. It does not wait
        when this thread holds logging's module lock, as ``dictConfig`` does while
        it flushes and closes the old handlers: the worker may need that lock to
        log, and the events stay queued in the client either way.
        """
        if _holds_logging_lock():
            return
        self._client.flush()


def _event_of(event_dict: Mapping[Any, Any]) -> str:
    """Return structlog's ``event`` as the default action.

    Called by the client only when the payload names no action. A missing or
    non-text event gives ``""``, which the client drops as ``invalid_action``.
    """
    event = event_dict.get("event")
    return event if isinstance(event, str) else ""


def _holds_logging_lock() -> bool:
    """Whether this thread holds ``logging._lock``; False where that cannot be told."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return bool(is_owned()) if callable(is_owned) else False
