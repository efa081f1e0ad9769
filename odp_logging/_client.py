"""The client every integration shares: options, the default client, context(), stats."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from odp_logging._config import MAX_BATCH_BYTES, ConfigError, Options
from odp_logging._datafile import DatafilePoller
from odp_logging._diagnostics import logger
from odp_logging._event import EventBuilder, Rejection, clean_context
from odp_logging._retry import RetryPolicy
from odp_logging._spool import Spool
from odp_logging._transport import Transport
from odp_logging._worker import OdpStats, Worker, report_leftovers

Context = tuple[Mapping[str, str], Mapping[str, Any]]
_context: Final[contextvars.ContextVar[Context | None]] = contextvars.ContextVar(
    "odp_logging_context", default=None
)


class OdpClient:
    """Validates, batches and sends ODP events from a background thread.

    Options are keyword-only; each one not given is read from its ``ODP_*``
    environment variable, then defaults (see ``docs/configuration.md``). Without an
    api key the client warns once and drops every event as ``not_configured``.

    Every method is safe to call from any thread. :meth:`send_odp_event` never
    blocks and never raises. Delivery is at-least-once: a retried or replayed event
    keeps its ``idempotence_id`` (see ``docs/delivery.md``).

    With ``spool_path`` set, events also go to a durable SQLite spool, and a client
    whose spool file already exists starts its worker at once, to send what an
    earlier process left there.

    Args:
        retry_policy: How to back off and when to give up a batch held in memory;
            the default suits production (tests pass a faster one).
        **options: Client options: ``api_key``, ``api_host``, ``batch_size``,
            ``flush_interval``, ``max_queue_size``, ``request_timeout``,
            ``shutdown_timeout``, ``spool_path``, ``spool_max_bytes``,
            ``data_source``, ``enabled``, ``allow_insecure_http``, ``static_data``.

    Raises:
        odp_logging.ConfigError: An option has an invalid value.
    """

    def __init__(self, *, retry_policy: RetryPolicy | None = None, **options: Any) -> None:
        self._init(Options.resolve(**options), retry_policy or RetryPolicy())

    @classmethod
    def from_options(cls, options: Options, retry_policy: RetryPolicy | None = None) -> OdpClient:
        """Build a client from already resolved options."""
        client = cls.__new__(cls)
        client._init(options, retry_policy or RetryPolicy())
        return client

    def _init(self, options: Options, retry_policy: RetryPolicy) -> None:
        self.options = options
        self._refusal: str | None = None
        datafile = None
        if not options.enabled:
            self._refusal = "disabled"
        elif options.uses_datafile_url:
            datafile = DatafilePoller(options.effective_datafile_url or "", options.request_timeout)
        elif options.datafile and not options.api_key:
            self._refusal = "not_integrated"
            logger.warning(
                "odp-logging: the Optimizely datafile has no ODP integration; events will be "
                "dropped (counted as not_integrated)"
            )
        elif not options.api_key:
            self._refusal = "not_configured"
            logger.warning(
                "odp-logging has no ODP api key: set ODP_API_KEY (or ODP_SDK_KEY) or pass "
                "api_key=...; events will be dropped (counted as not_configured)"
            )
        spool = None
        if options.spool_path and self._refusal is None:
            # A dead owner is recognised by its pid on this host; the lease covers hosts
            # and containers that cannot see each other's pids, and must outlast a request.
            lease = max(SPOOL_LEASE, 4 * options.request_timeout)
            spool = functools.partial(Spool, options.spool_path, options.spool_max_bytes, lease)
        try:
            builder = EventBuilder(options.data_source, dict(options.static_data))
        except ValueError as exc:
            raise ConfigError(
                f"invalid value for odp-logging option 'static_data': {exc}"
            ) from None
        self._worker = Worker(
            builder,
            Transport(options.events_url, options.api_key or "", options.request_timeout),
            batch_size=options.batch_size,
            max_batch_bytes=MAX_BATCH_BYTES,
            flush_interval=options.flush_interval,
            max_queue_size=options.max_queue_size,
            retry=retry_policy,
            spool=spool,
            datafile=datafile,
        )
        self._closed = False
        _live_clients.add(self)
        if spool is not None and os.path.exists(options.spool_path or ""):
            self._worker.start()  # send what an earlier process left in the spool

    def __repr__(self) -> str:
        key = "<set>" if self.options.api_key else "<unset>"
        return f"OdpClient(api_host={self.options.api_host!r}, api_key={key})"

    def send_odp_event(
        self,
        action: str,
        *,
        identifiers: Mapping[str, str | int],
        type: str = "fullstack",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one ODP event; the Python form of the SDKs' ``sendOdpEvent``.

        Called on the application's thread: it copies the mappings, enqueues and
        returns. Validation, ids and encoding happen on the worker thread; an
        invalid event is dropped there, counted by reason and warned about.

        Args:
            action: The event's action, a non-empty string.
            identifiers: Who did it, e.g. ``{"fs_user_id": "u1", "email": ...}``.
            type: The event's type; empty means ``"fullstack"``.
            data: The event's data: str, int, float, bool or None values.
        """
        try:
            if self._refusal is not None:
                self._worker.count_caller_drop(self._refusal)
                return
            self._worker.submit(
                (action, type, _snapshot(identifiers), _snapshot(data), _context.get())
            )
        except Exception:  # noqa: BLE001 - never raise into the application
            self._worker.count_caller_drop("internal_error")

    def send_payload(self, payload: object, default_action: str | Callable[[], str]) -> None:
        """Queue the event an integration found in an ``odp`` payload.

        For integrations: reads ``action``, ``type``, ``identifiers`` and ``data``
        from ``payload``. A payload that is not a mapping is dropped as
        ``invalid_payload``. Never waits on the network, never raises.

        Args:
            payload: The ``odp`` value found on the record.
            default_action: The action when the payload names none (e.g. the log
                message), or a callable computing it, called only when needed.
        """
        try:
            if self._refusal is not None:
                self._worker.count_caller_drop(self._refusal)
                return
            # An exact dict, the usual payload, skips the Mapping ABC's isinstance check.
            if type(payload) is not dict and not isinstance(payload, Mapping):
                self._worker.submit_rejection(
                    Rejection(
                        "invalid_payload", "odp", f"must be a mapping, not {type(payload).__name__}"
                    )
                )
                return
            action = payload.get("action")
            if not action:
                action = default_action if isinstance(default_action, str) else default_action()
            identifiers = payload.get("identifiers")
            data = payload.get("data")
            # _snapshot() inlined: this is every integration's per-event path.
            self._worker.submit(
                (
                    action,
                    payload.get("type"),
                    dict.copy(identifiers) if isinstance(identifiers, dict) else identifiers,
                    dict.copy(data) if isinstance(data, dict) else data,
                    _context.get(),
                )
            )
        except Exception:  # noqa: BLE001 - a hostile mapping must not reach the caller
            self.count_unreadable_payload()

    def count_unreadable_payload(self) -> None:
        """Count an ``odp`` payload that raised while read, as ``invalid_payload``.

        For integrations, on the application's thread; the worker warns about it.
        """
        self._worker.submit_rejection(_UNREADABLE)

    def count_integration_error(self) -> None:
        """Count an event an integration lost to an error of its own, as ``internal_error``.

        For integrations, on the application's thread; never raises.
        """
        self._worker.count_caller_drop("internal_error")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is sent or dropped.

        Starts no thread, so it is safe at interpreter exit and under logging's
        locks.

        Args:
            timeout: Most seconds to wait; ``shutdown_timeout`` when None.

        Returns:
            True when everything queued before the call was settled in time.
        """
        return self._worker.flush(self.options.shutdown_timeout if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued, then stop the worker; later events are dropped as ``closed``.

        Idempotent and bounded: it returns within ``timeout`` whatever the network
        does (a backoff wait is cut short). Events not delivered by then are left in
        the spool if there is one, else dropped as ``shutdown``; either way they are
        reported once on stderr.

        Args:
            timeout: Most seconds to spend; ``shutdown_timeout`` when None.
        """
        if self._closed:
            return
        self._closed = True
        lost, kept = self._worker.close(
            self.options.shutdown_timeout if timeout is None else timeout
        )
        report_leftovers(lost, kept, self.options.spool_path)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def stats(self) -> OdpStats:
        """Return the counts: queued, sent, retried, spooled and dropped by reason."""
        return self._worker.stats()

    def _after_fork_in_child(self) -> None:
        self._worker.after_fork()


_UNREADABLE: Final = Rejection("invalid_payload", "odp", "could not be read (it raised an error)")


def _snapshot(value: object) -> object:
    """Copy a dict so that the caller may change it after logging; other types as-is.

    ``dict.copy`` reads the storage directly: it calls no method a subclass overrode.
    """
    return dict.copy(value) if isinstance(value, dict) else value


@contextlib.contextmanager
def context(
    *,
    identifiers: Mapping[str, str | int] | None = None,
    data: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Add identifiers and data to every ODP event sent inside the block.

    The event's own keys win over the context's; nested contexts merge, the inner
    one winning. Based on :mod:`contextvars`, so each thread and each asyncio task
    sees its own context. Invalid values are left out with a warning; nothing is
    raised.

    Args:
        identifiers: Identifiers for the events, e.g. ``{"fs_user_id": user.id}``.
        data: Data for the events.

    Example:
        >>> with odp_logging.context(identifiers={"fs_user_id": "u1"}):
        ...     log.info("added_to_cart", extra={"odp": {"data": {"sku": "A1"}}})
    """
    outer = _context.get()
    new_ids, new_data = clean_context(identifiers, data)
    if outer is not None:
        new_ids = {**outer[0], **new_ids}
        new_data = {**outer[1], **new_data}
    token = _context.set((new_ids, new_data))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # reset from another Context (e.g. a moved generator)
            _context.reset(token)


# -- the process-wide clients ---------------------------------------------------

SPOOL_LEASE: Final = 60.0
"""Seconds without a heartbeat after which a spool owner counts as dead (at least)."""

_live_clients: Final[weakref.WeakSet[OdpClient]] = weakref.WeakSet()
_shared: dict[Options, OdpClient] = {}
_first_shared: OdpClient | None = None
_shared_lock = threading.Lock()


def get_client(**options: Any) -> OdpClient:
    """Return the process-wide client that integrations share.

    Without options: the first shared client created, or a new one configured from
    the ``ODP_*`` environment. With options: the shared client for exactly those
    options, created on first use. Integrations created with equal options (say
    several handlers from one dictConfig) thus share one worker thread and one
    connection pool.

    Raises:
        odp_logging.ConfigError: An option has an invalid value.
    """
    global _first_shared  # noqa: PLW0603 - the registry is process state by design
    with _shared_lock:
        if not options and _first_shared is not None and not _first_shared.closed:
            return _first_shared
        resolved = Options.resolve(**options)
        client = _shared.get(resolved)
        if client is None or client.closed:
            client = _shared[resolved] = OdpClient.from_options(resolved)
        if _first_shared is None or _first_shared.closed:
            _first_shared = client
        return client


def client_for(client: OdpClient | None, options: Mapping[str, Any]) -> OdpClient:
    """Return ``client``, or else the shared client for ``options``: integrations' ``client=``.

    Raises:
        TypeError: Both ``client`` and options were given.
        odp_logging.ConfigError: An option has an invalid value.
    """
    if client is None:
        return get_client(**options)
    if options:
        raise TypeError("pass either client= or client options, not both")
    return client


def close_all(timeout: float | None = None) -> None:
    """Close every client of this process within one deadline (used at exit and in tests)."""
    global _first_shared  # noqa: PLW0603
    clients = list(_live_clients)
    if timeout is None:
        timeout = max((client.options.shutdown_timeout for client in clients), default=0.0)
    deadline = time.monotonic() + timeout
    for client in clients:
        client.close(max(deadline - time.monotonic(), 0.0))
    with _shared_lock:
        _shared.clear()
        _first_shared = None


def _after_fork_in_child() -> None:
    global _shared_lock  # noqa: PLW0603 - another thread may have held it at fork
    _shared_lock = threading.Lock()
    for client in list(_live_clients):
        client._after_fork_in_child()


def _before_fork() -> None:
    """Make multiprocessing's fork children close the clients when they end.

    They leave through ``os._exit()``, which skips atexit; multiprocessing runs its
    own finalizers first, and its after-fork hooks are where one can be registered
    (its registry is cleared in the child before they run). Nothing is imported:
    a program that does not use multiprocessing pays nothing.
    """
    global _multiprocessing_hooked  # noqa: PLW0603 - registered once per process tree
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _multiprocessing_hooked:
        util.register_after_fork(_close_at_multiprocessing_exit, _close_at_multiprocessing_exit)
        _multiprocessing_hooked = True


def _close_at_multiprocessing_exit(_: object) -> None:
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, close_all, exitpriority=0)


_multiprocessing_hooked = False
atexit.register(close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
