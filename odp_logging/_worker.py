"""The background worker: a bounded queue, batching, retries, flush, close and fork.

The application's threads only call :meth:`Worker.submit`, which appends a tuple to
a deque (no lock, no I/O, no encoding). Everything else (validation, ids, JSON,
HTTP, sleeps, diagnostics) happens on the worker's own daemon thread.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from odp_logging._diagnostics import RateLimitedLog
from odp_logging._event import EventBuilder, Rejection
from odp_logging._retry import RetryPolicy
from odp_logging._transport import Answer, Transport, Verdict

DROP_REASONS: Final = (
    "queue_full",
    "not_configured",
    "disabled",
    "closed",
    "invalid_payload",
    "invalid_action",
    "invalid_type",
    "invalid_identifiers",
    "no_identifiers",
    "invalid_data",
    "event_too_large",
    "rejected",
    "unauthorized",
    "retries_exhausted",
    "shutdown",
    "internal_error",
)
"""Every reason an accepted call can end without delivery; ``stats().dropped`` keys."""

Item = tuple[object, object, object, object, "tuple[Mapping[str, Any], Mapping[str, Any]] | None"]
"""What the application's thread enqueues: action, type, identifiers, data, context."""


@dataclasses.dataclass(frozen=True)
class OdpStats:
    """A snapshot of a client's counts since it started (or since a fork, in a child).

    Every event handed to the client is, at any moment, exactly one of: queued, sent
    or dropped (by reason). ``spooled`` counts events written to the durable spool.

    Attributes:
        queued: Events accepted and not yet settled (in the queue, a batch or in flight).
        sent: Events the ODP API accepted.
        retried: Event sends repeated after a transient failure.
        spooled: Events written to the spool.
        dropped: Events that will never be sent, by reason (every reason is present).
    """

    queued: int
    sent: int
    retried: int
    spooled: int
    dropped: Mapping[str, int]

    @property
    def total_dropped(self) -> int:
        """All dropped events, whatever the reason."""
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        """Every event handed to the client: queued + sent + dropped."""
        return self.queued + self.sent + self.total_dropped


class _FlushRequest(threading.Event):
    """A marker in the queue: set once everything queued before it is settled."""


class _Stop:
    """The marker that tells the worker thread to exit."""


class Worker:
    """Owns the queue and the daemon thread that builds, batches and sends events.

    Args:
        builder: Turns queued items into encoded events.
        transport: Sends batches; None when the client is not configured.
        batch_size: Most events per request.
        max_batch_bytes: Most bytes per request body.
        flush_interval: Longest wait, in seconds, before a partial batch is sent.
        max_queue_size: Most events waiting in the queue.
        retry: The retry policy of one batch.
    """

    def __init__(
        self,
        builder: EventBuilder,
        transport: Transport,
        *,
        batch_size: int,
        max_batch_bytes: int,
        flush_interval: float,
        max_queue_size: int,
        retry: RetryPolicy,
    ) -> None:
        self._builder = builder
        self._transport = transport
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._max_queue_size = max_queue_size
        self._retry = retry
        self._closed = False
        self._init_state()

    def _init_state(self) -> None:
        """Create the per-process state: at construction and in a forked child."""
        self._pid = os.getpid()
        self._log = RateLimitedLog()
        self._queue: collections.deque[Item | Rejection | _FlushRequest | _Stop] = (
            collections.deque()
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Drops counted on the application's threads; the worker never takes this lock.
        self._caller_drops_lock = threading.Lock()
        self._caller_drops = dict.fromkeys(DROP_REASONS, 0)
        self._reported_caller_drops = 0
        # Counts written by the worker thread only; readers copy them.
        self._drops = dict.fromkeys(DROP_REASONS, 0)
        self._sent = 0
        self._retried = 0
        self._in_hand = 0

    # -- the application's side ---------------------------------------------------

    def submit(self, item: Item) -> None:
        """Queue one event; called on the application's thread.

        Never blocks, never raises, does no I/O: a full queue drops the event and
        counts it as ``queue_full``.
        """
        if self._pid != os.getpid():
            self.after_fork()
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self.count_caller_drop("closed" if self._closed else "queue_full")
            return
        if self._closed:
            self.count_caller_drop("closed")
            return
        queue.append(item)
        if self._thread is None:
            self._start()
        if len(queue) >= self._batch_size:
            self._wake.set()

    def submit_rejection(self, rejection: Rejection) -> None:
        """Queue an integration's rejection, so the worker counts it and warns.

        Called on the application's thread, which must not log (logging is I/O).
        """
        self.submit(rejection)  # type: ignore[arg-type]

    def count_caller_drop(self, reason: str) -> None:
        """Count an event dropped on the application's thread (briefly takes a lock)."""
        with self._caller_drops_lock:
            self._caller_drops[reason] += 1

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued now is settled (sent or dropped).

        Starts no thread: safe under logging's locks and at interpreter exit.

        Args:
            timeout: Most seconds to wait.

        Returns:
            True when everything queued before the call was settled in time.
        """
        if self._pid != os.getpid():
            self.after_fork()
        if not self._queue and not self._in_hand:
            return True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        request = _FlushRequest()
        self._queue.append(request)
        self._wake.set()
        return request.wait(timeout)

    def close(self, timeout: float) -> int:
        """Flush within ``timeout``, then stop the thread; idempotent.

        Returns:
            Events left undelivered: still queued, in flight, or dropped at shutdown.
        """
        if self._closed:
            return 0
        self._closed = True
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        thread = self._thread
        self._stopping.set()
        self._queue.append(_Stop())
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))
        stats = self.stats()
        return stats.queued + stats.dropped["shutdown"]

    def stats(self) -> OdpStats:
        """Return a snapshot of the counts; safe from any thread."""
        with self._caller_drops_lock:
            caller_drops = dict(self._caller_drops)
        dropped = {reason: caller_drops[reason] + self._drops[reason] for reason in DROP_REASONS}
        queued = sum(1 for item in list(self._queue) if _is_event(item)) + self._in_hand
        return OdpStats(queued, self._sent, self._retried, 0, dropped)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="odp-logging-worker", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return
            self._thread = thread

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent alone sends what it had queued."""
        if self._pid == os.getpid():
            return
        self._transport.forget()
        self._init_state()

    # -- the worker thread --------------------------------------------------------

    def _run(self) -> None:
        batch: list[bytes] = []
        next_tick = time.monotonic() + self._flush_interval
        while True:
            self._wake.wait(max(next_tick - time.monotonic(), 0.0))
            self._wake.clear()
            try:
                stop = self._drain(batch)
                if stop or time.monotonic() >= next_tick:
                    self._send(batch)
                    next_tick = time.monotonic() + self._flush_interval
                self._report_caller_drops()
            except Exception:  # a bug of ours must not kill the thread and strand the queue
                logging.getLogger("odp_logging").exception(
                    "odp-logging worker error; batch dropped"
                )
                self._drop(self._in_hand, "internal_error")
                batch.clear()
                self._in_hand = 0
                stop = False
            if stop:
                self._abandon_queue()
                return

    def _drain(self, batch: list[bytes]) -> bool:
        """Move queued items into batches, sending each batch that fills.

        Returns:
            True when the stop marker was reached.
        """
        queue = self._queue
        build = self._builder.build
        batch_bytes = sum(len(part) + 1 for part in batch)
        while queue:
            item = queue.popleft()
            if isinstance(item, _FlushRequest):
                self._send(batch)
                batch_bytes = 0
                item.set()
                continue
            if isinstance(item, _Stop):
                return True
            self._in_hand += 1
            if isinstance(item, Rejection):
                self._reject(item)
                continue
            encoded = build(*item)
            if isinstance(encoded, Rejection):
                self._reject(encoded)
                continue
            size = len(encoded) + 1
            if size + 1 > self._max_batch_bytes:
                self._reject(Rejection("event_too_large", "event", "is larger than one request"))
                continue
            if batch_bytes + size + 1 > self._max_batch_bytes:
                self._send(batch)
                batch_bytes = 0
            batch.append(encoded)
            batch_bytes += size
            if len(batch) >= self._batch_size:
                self._send(batch)
                batch_bytes = 0
        return False

    def _send(self, batch: list[bytes]) -> None:
        """Deliver ``batch`` (with retries and 400 handling), then empty it."""
        if batch:
            self._deliver(batch)
            batch.clear()

    def _deliver(self, events: list[bytes]) -> None:
        if self._stopping.is_set():  # close() ran out of time: what is left stays unsent
            self._settle(len(events), sent=False, reason="shutdown")
            return
        started = time.monotonic()
        failed_attempts = 0
        while events:
            answer = self._transport.post(b"[" + b",".join(events) + b"]")
            verdict = answer.verdict
            if verdict is Verdict.DELIVERED:
                self._settle(len(events), sent=True)
                return
            if verdict is Verdict.RETRY:
                failed_attempts += 1
                delay = self._retry.delay(
                    failed_attempts, time.monotonic() - started, answer.retry_after
                )
                if delay is None:
                    self._fail(events, "retries_exhausted", answer)
                    return
                if self._stopping.wait(delay):
                    self._fail(events, "shutdown", answer)
                    return
                self._retried += len(events)
                continue
            if verdict is Verdict.INVALID:
                events = self._without_invalid(events, answer)
                continue
            reason = "unauthorized" if verdict is Verdict.UNAUTHORIZED else "rejected"
            self._fail(events, reason, answer)
            return

    def _without_invalid(self, events: list[bytes], answer: Answer) -> list[bytes]:
        """Drop the events a 400 named; when it named none, isolate them by halves."""
        named = [i for i in answer.invalid if 0 <= i < len(events)]
        if named:
            self._fail([events[i] for i in named], "rejected", answer)
            bad = set(named)
            return [event for i, event in enumerate(events) if i not in bad]
        if len(events) == 1:
            self._fail(events, "rejected", answer)
            return []
        half = len(events) // 2
        self._deliver(events[:half])
        return events[half:]

    def _fail(self, events: list[bytes], reason: str, answer: Answer) -> None:
        self._settle(len(events), sent=False, reason=reason)
        level = logging.ERROR if reason == "unauthorized" else logging.WARNING
        hint = " (check the api key)" if reason == "unauthorized" else ""
        self._log.log(
            level,
            reason,
            f"odp-logging dropped {len(events)} event(s) ({reason}): {answer.detail}{hint}",
        )

    def _reject(self, rejection: Rejection) -> None:
        self._settle(1, sent=False, reason=rejection.reason)
        self._log.log(
            logging.WARNING, f"{rejection.reason}:{rejection.field}", rejection.describe()
        )

    def _settle(self, count: int, *, sent: bool, reason: str = "") -> None:
        if sent:
            self._sent += count
        else:
            self._drops[reason] += count
        self._in_hand -= count

    def _drop(self, count: int, reason: str) -> None:
        self._drops[reason] += count

    def _abandon_queue(self) -> None:
        """At stop, count what is still queued as dropped at shutdown."""
        left = 0
        while self._queue:
            item = self._queue.popleft()
            if _is_event(item):
                left += 1
            elif isinstance(item, _FlushRequest):
                item.set()
        if left:
            self._drop(left, "shutdown")

    def _report_caller_drops(self) -> None:
        total = self._caller_drops["queue_full"]
        if total > self._reported_caller_drops:
            self._log.log(
                logging.WARNING,
                "queue_full",
                f"odp-logging queue is full ({self._max_queue_size} events): "
                f"{total - self._reported_caller_drops} event(s) dropped",
            )
            self._reported_caller_drops = total


def _is_event(item: object) -> bool:
    return type(item) is tuple or isinstance(item, Rejection)


def report_leftovers(count: int) -> None:
    """Tell the user, once, on stderr, that events were left undelivered at close."""
    if count:
        print(
            f"odp-logging: {count} event(s) were still queued at close and were not sent",
            file=sys.stderr,
        )
