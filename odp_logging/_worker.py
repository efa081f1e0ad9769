"""The background worker: a bounded queue, batching, retries, the spool, flush, close and fork.

The application's threads only call :meth:`Worker.submit`, which appends a tuple to
a deque (no lock, no I/O, no encoding; past half the queue, a short pause now and then
hands the GIL to the worker). Everything else (validation, ids, JSON, HTTP, the spool,
diagnostics) happens on the worker's own daemon thread.

The worker never sleeps in a backoff: after a failed request it notes when it may
send again (``_resume_at``, shared by every batch, so that a dead host sees a
bounded request rate) and goes on waking at each ``flush_interval`` to move new
events to the spool. Its waits end at once when ``flush()`` or ``close()`` asks.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from odp_logging._datafile import DatafilePoller
from odp_logging._diagnostics import RateLimitedLog, logger
from odp_logging._event import EventBuilder, Rejection
from odp_logging._fork import process_mark
from odp_logging._retry import RetryPolicy
from odp_logging._spool import Spool, SpooledEvent, SpoolError, cut_batch
from odp_logging._transport import Answer, Transport, Verdict

DROP_REASONS: Final = (
    "queue_full",
    "spool_full",
    "not_configured",
    "not_integrated",
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
    "retries_exhausted",
    "shutdown",
    "internal_error",
)
"""Every reason an accepted call can end without delivery; ``stats().dropped`` keys."""

WORKER_THREAD_NAME: Final = "odp-logging-worker"
"""The name of every client's worker thread."""

worker_thread_idents: Final[set[int]] = set()
"""Idents of this process's running worker threads: what they log never becomes an event
(the HTTP libraries' records while a worker sends), so a handler cannot feed itself."""

MIN_WAIT: Final = 0.01
"""Shortest sleep of the worker loop: whatever goes wrong, it never spins."""

BACKPRESSURE_PAUSE: Final = 0.0002
"""Seconds a call sleeps, now and then, while the queue is past half full."""

Item = tuple[object, object, object, object, "tuple[Mapping[str, Any], Mapping[str, Any]] | None"]
"""What the application's thread enqueues: action, type, identifiers, data, context."""

_inherited_spools: list[Spool] = []
"""Spool connections a forked child inherited: kept referenced, never used or closed,
because SQLite connections must not cross a fork and closing one could disturb the
parent's file."""


@dataclasses.dataclass(frozen=True)
class OdpStats:
    """A snapshot of a client's counts since it started (or since a fork, in a child).

    Every event handed to the client is, at any moment, exactly one of: queued,
    spooled, sent or dropped (by reason). Events adopted from the spool (left by an
    earlier run, or by a process that died) add to ``recovered`` when found, then
    move through spooled to sent or dropped like the others. Hence
    ``total == queued + spooled + sent + total_dropped - recovered``.

    Attributes:
        queued: Events held in memory: in the queue, a batch or a request in flight.
        sent: Events the ODP API accepted.
        retried: Event sends repeated after a failed attempt.
        spooled: Events this client holds in its durable spool (in flight included);
            after close, those left there for the next process.
        dropped: Events that will never be sent, by reason (every reason is present).
        recovered: Events adopted from the spool that this client did not log.
    """

    queued: int
    sent: int
    retried: int
    spooled: int
    dropped: Mapping[str, int]
    recovered: int = 0

    @property
    def total_dropped(self) -> int:
        """All dropped events, whatever the reason."""
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        """Every event handed to this client: queued + spooled + sent + dropped - recovered."""
        return self.queued + self.spooled + self.sent + self.total_dropped - self.recovered


class _FlushRequest(threading.Event):
    """A marker in the queue: set once the events stored before it are settled, or never will be.

    Attributes:
        boundary: The id of the last event stored before the marker was reached.
        settled: Whether they were all sent or dropped (False when abandoned at close).
    """

    def __init__(self) -> None:
        super().__init__()
        self.boundary = 0
        self.settled = False

    def finish(self, *, settled: bool) -> None:
        self.settled = settled
        self.set()


@dataclasses.dataclass
class _Batch:
    """Events taken for one request, with the history of their attempts."""

    events: list[SpooledEvent]
    attempts: int = 0
    started: float = 0.0


class _MemoryOutbox:
    """Encoded events waiting for a request, held in memory: the outbox without a spool.

    Args:
        first_id: The id of the first event added.
        held: Events already taken from elsewhere that it answers for.
    """

    def __init__(self, first_id: int = 1, held: int = 0) -> None:
        self._waiting: collections.deque[SpooledEvent] = collections.deque()
        self.last_id = first_id - 1
        self.held = held
        """Events waiting or taken and not yet removed."""

    @property
    def waiting(self) -> int:
        """Events not yet taken."""
        return len(self._waiting)

    def add(self, events: Sequence[bytes]) -> int:
        for body in events:
            self.last_id += 1
            self._waiting.append((self.last_id, body))
        self.held += len(events)
        return len(events)

    def take(self, max_count: int, max_bytes: int) -> list[SpooledEvent]:
        batch = cut_batch(list(itertools.islice(self._waiting, max_count)), max_bytes)
        for _ in batch:
            self._waiting.popleft()
        return batch

    def remove(self, ids: Sequence[int]) -> None:
        self.held -= len(ids)

    def oldest_id(self) -> int | None:
        return self._waiting[0][0] if self._waiting else None


class Worker:
    """Owns the queue and the daemon thread that builds, batches, spools and sends events.

    Args:
        builder: Turns queued items into encoded events.
        transport: Sends batches.
        batch_size: Most events per request.
        max_batch_bytes: Most bytes per request body.
        flush_interval: Longest wait, in seconds, before a partial batch is sent and
            before a queued event reaches the spool.
        max_queue_size: Most events waiting in the queue.
        retry: When to retry, and when a batch held in memory is given up.
        spool: Makes the durable spool (opened on the worker thread); None for none.
        datafile: Fetches the Optimizely datafile naming the ODP key and host, on the
            worker thread; None when they are configured directly.
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
        spool: Callable[[], Spool] | None = None,
        datafile: DatafilePoller | None = None,
    ) -> None:
        self._builder = builder
        self._transport = transport
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._max_queue_size = max_queue_size
        self._high_water = max_queue_size // 2
        self._half_batch = max(batch_size // 2, 1)
        self._retry = retry
        self._make_spool = spool
        self._datafile = datafile
        self._closed = False
        self._init_state()

    def _init_state(self) -> None:
        """Create the per-process state: at construction and in a forked child."""
        self._mark = process_mark()
        self._log = RateLimitedLog()
        self._queue: collections.deque[Item | Rejection | _FlushRequest] = collections.deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._close_deadline: float | None = None
        self._crowded_calls = 0
        # Drops counted on the application's threads; the worker never takes this lock.
        self._caller_drops_lock = threading.Lock()
        self._caller_drops = dict.fromkeys(DROP_REASONS, 0)
        self._reported_drops = dict.fromkeys(("queue_full", "spool_full"), 0)
        # Written by the worker thread only; other threads read them.
        self._outbox: _MemoryOutbox | Spool = _MemoryOutbox()
        self._outbox_ready = self._make_spool is None
        self._stranded = 0  # events left in a spool that failed
        self._drops = dict.fromkeys(DROP_REASONS, 0)
        self._sent = 0
        self._retried = 0
        self._recovered = 0
        self._in_hand = 0  # taken from the queue, not yet in the outbox nor settled
        # The worker thread's own state.
        self._worklist: collections.deque[_Batch] = collections.deque()
        self._flushes: list[_FlushRequest] = []
        self._failures = 0  # consecutive failed requests, across batches
        self._resume_at = 0.0
        self._auth_refused = False
        self._next_tick = 0.0

    # -- the application's side ---------------------------------------------------

    def submit(self, item: Item) -> None:
        """Queue one event; called on the application's thread.

        Never raises, does no I/O, takes no lock the worker holds: a full queue drops
        the event and counts it as ``queue_full``. Wakes the worker once per
        ``batch_size`` events (not on every call, so that a backlog does not make each
        call take a lock).

        Past half the queue, see :meth:`_submit_crowded`.
        """
        if not self._mark[0]:
            self.after_fork()
        queue = self._queue
        size = len(queue)
        if size >= self._high_water or self._closed:
            self._submit_crowded(item, size)
            return
        queue.append(item)
        if self._thread is None:
            self.start()
        if (size + 1) % self._batch_size == 0:
            self._wake.set()

    def _submit_crowded(self, item: Item, size: int) -> None:
        """Queue (or drop) an event past half the queue: a burst, or a host not answering.

        A thread logging in a tight loop holds the GIL, and the worker gets it back only
        at the interpreter's switch interval (5 ms) after each request: it would ship a
        few thousand events a second while the queue overflows. So here the caller
        sleeps :data:`BACKPRESSURE_PAUSE` (no lock, no I/O), which hands the GIL to the
        worker: twice per ``batch_size`` calls, unless the worker is waiting out a
        backoff; with a spool, on every call, so that the worker writes the whole burst
        to disk rather than drop any of it.
        """
        if self._closed:
            self.count_caller_drop("closed")
            return
        if size >= self._max_queue_size:
            self.count_caller_drop("queue_full")
        else:
            self._queue.append(item)
            if self._thread is None:
                self.start()
        self._crowded_calls += 1  # not exact when threads race: it only paces the pauses
        half_batch = self._crowded_calls % self._half_batch == 0
        if half_batch:
            self._wake.set()
        if self._make_spool is not None or (half_batch and time.monotonic() >= self._resume_at):
            time.sleep(BACKPRESSURE_PAUSE)

    def submit_rejection(self, rejection: Rejection) -> None:
        """Queue an integration's rejection, so the worker counts it and warns.

        Called on the application's thread, which must not log (logging is I/O).
        """
        self.submit(rejection)  # type: ignore[arg-type]

    def count_caller_drop(self, reason: str) -> None:
        """Count an event dropped on the application's thread (briefly takes a lock)."""
        with self._caller_drops_lock:
            self._caller_drops[reason] += 1

    def start(self) -> None:
        """Start the worker thread if it is not running; safe from any thread."""
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=WORKER_THREAD_NAME, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return
            self._thread = thread

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued now is settled (sent or dropped).

        Starts no thread: safe under logging's locks and at interpreter exit.

        Args:
            timeout: Most seconds to wait.

        Returns:
            True when everything queued before the call was settled in time.
        """
        if not self._mark[0]:
            self.after_fork()
        thread = self._thread
        idle = not self._queue and not self._in_hand and not self._outbox.held
        if idle and (self._outbox_ready or thread is None):
            return True
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return False
        if self._close_deadline is not None:  # after close() no wait outlasts its deadline
            timeout = min(timeout, self._close_deadline - time.monotonic())
            if timeout <= 0:
                return False
        request = _FlushRequest()
        self._queue.append(request)
        self._wake.set()
        return request.wait(timeout) and request.settled

    def close(self, timeout: float) -> tuple[int, int]:
        """Send what is queued within ``timeout``, then stop the thread; idempotent.

        What cannot be sent in time is dropped as ``shutdown`` or, with a spool, left
        in it for the next process. A backoff wait ends at once: the worker tries
        again only if its next attempt falls before the deadline.

        Returns:
            Events lost (dropped at shutdown, or still in memory when time ran out) and
            events kept in the spool; (0, 0) when already closed.
        """
        if not self._mark[0]:
            self.after_fork()
        if self._closed:
            return 0, 0
        self._closed = True
        deadline = time.monotonic() + timeout
        self._close_deadline = deadline
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))
        stats = self.stats()
        return stats.queued + self._drops["shutdown"], stats.spooled

    def stats(self) -> OdpStats:
        """Return a snapshot of the counts; safe from any thread."""
        if not self._mark[0]:
            self.after_fork()
        with self._caller_drops_lock:
            caller_drops = dict(self._caller_drops)
        dropped = {reason: caller_drops[reason] + self._drops[reason] for reason in DROP_REASONS}
        outbox = self._outbox
        in_memory = outbox.held if isinstance(outbox, _MemoryOutbox) else 0
        spooled = self._stranded + (0 if isinstance(outbox, _MemoryOutbox) else outbox.held)
        queued = sum(1 for item in list(self._queue) if _is_event(item)) + self._in_hand + in_memory
        return OdpStats(queued, self._sent, self._retried, spooled, dropped, self._recovered)

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent alone sends what it had queued."""
        if self._mark[0]:
            return
        if isinstance(self._outbox, Spool):
            _inherited_spools.append(self._outbox)
        self._builder.after_fork()
        self._transport.forget()
        self._init_state()

    # -- the worker thread --------------------------------------------------------

    @property
    def _durable(self) -> bool:
        return isinstance(self._outbox, Spool)

    def _run(self) -> None:
        ident = threading.get_ident()
        worker_thread_idents.add(ident)
        try:
            self._open_spool()
            self._next_tick = time.monotonic() + self._flush_interval
            while True:
                self._wake.wait(self._seconds_to_next_step())
                self._wake.clear()
                if self._step_safely():
                    return
        finally:
            worker_thread_idents.discard(ident)  # idents are reused by later threads

    def _open_spool(self) -> None:
        if self._make_spool is not None:
            spool = self._make_spool()
            try:
                self._recovered += spool.open()
            except Exception as exc:  # noqa: BLE001 - without a spool, carry on in memory
                logger.error("odp-logging cannot use its spool: %s; events stay in memory", exc)
                with contextlib.suppress(Exception):
                    spool.close()
            else:
                self._outbox = spool
        self._outbox_ready = True

    def _seconds_to_next_step(self) -> float:
        now = time.monotonic()
        until = self._next_tick
        if self._resume_at > now and (self._worklist or self._outbox.held):
            until = min(until, self._resume_at)
        if isinstance(self._outbox, Spool):
            until = min(until, self._outbox.next_maintenance)
        if self._close_deadline is not None:
            until = min(until, self._close_deadline)
        return max(until - now, MIN_WAIT)

    def _step_safely(self) -> bool:
        """Run one step; returns True when the worker is done (closed)."""
        try:
            return self._step()
        except SpoolError as exc:
            self._lose_spool(exc)
        except Exception:  # noqa: BLE001 - a bug of ours must not kill the thread
            self._log.log(
                logging.ERROR,
                "internal_error",
                "odp-logging worker error; the events in hand are dropped (internal_error)\n"
                + traceback.format_exc(),
            )
            self._drop_in_hand()
            self._resume_at = time.monotonic() + self._retry.backoff(1, None)
        if self._close_deadline is not None and time.monotonic() >= self._close_deadline:
            self._finish()
            return True
        return False

    def _step(self) -> bool:
        now = time.monotonic()
        due = now >= self._next_tick
        if due:
            self._next_tick = now + self._flush_interval
        self._accept()
        if isinstance(self._outbox, Spool):
            self._recovered += self._outbox.maintain()
        closing = self._close_deadline is not None
        self._send(due=due or closing)
        self._complete_flushes()
        self._report_drops()
        if closing and self._close_done():
            self._finish()
            return True
        return False

    def _accept(self) -> None:
        """Move queued items into the outbox: all of them into a spool, else one batch's worth."""
        queue = self._queue
        build = self._builder.build
        outbox = self._outbox
        room = None if isinstance(outbox, Spool) else self._batch_size - outbox.waiting
        encoded: list[bytes] = []
        while queue and (room is None or len(encoded) < room):
            item = queue.popleft()
            if isinstance(item, _FlushRequest):
                self._store(encoded)
                encoded = []
                item.boundary = self._outbox.last_id
                self._flushes.append(item)
                continue
            self._in_hand += 1
            if isinstance(item, Rejection):
                self._reject(item)
                continue
            result = build(*item)
            if isinstance(result, Rejection):
                self._reject(result)
            elif len(result) + 2 > self._max_batch_bytes:
                self._reject(Rejection("event_too_large", "event", "is larger than one request"))
            else:
                encoded.append(result)
        self._store(encoded)

    def _store(self, encoded: list[bytes]) -> None:
        """Put built events into the outbox; those past the spool's size limit are dropped."""
        if not encoded:
            return
        try:
            stored = self._outbox.add(encoded)
        except SpoolError as exc:
            self._lose_spool(exc)
            stored = self._outbox.add(encoded)
        self._in_hand -= len(encoded)
        self._drops["spool_full"] += len(encoded) - stored

    def _send(self, *, due: bool) -> None:
        """Send batches while allowed: full ones, or partial ones when ``due`` or flushing.

        Returns at the next tick at the latest, so that a long backlog does not keep
        new events from the spool or flush requests from being answered.
        """
        if not self._credentials_ready():
            return
        deadline = self._next_tick
        while self._resume_at <= time.monotonic() < deadline:
            if not self._worklist:
                partial_ok = due or self._flushes  # a refill may have reached a flush request
                if not self._outbox.held or (
                    not partial_ok and self._outbox.held < self._batch_size
                ):
                    return
                events = self._outbox.take(self._batch_size, self._max_batch_bytes)
                if not events:
                    return
                self._worklist.append(_Batch(events))
            if not self._attempt(self._worklist[0]):
                return
            if not self._durable or len(self._queue) >= self._batch_size:
                # Refill: without a spool the outbox holds one batch at most; with one,
                # a burst goes to disk between requests, before the queue fills.
                self._accept()

    def _credentials_ready(self) -> bool:
        """With a datafile URL, learn (and follow) the ODP key and host it names.

        Until the datafile is known, events are held (within the queue limit); a
        datafile without an ODP integration drops them as ``not_integrated``.
        """
        poller = self._datafile
        if poller is None:
            return True
        if poller.poll():
            integration = poller.integration
            if integration is not None:
                self._transport.configure(f"{integration.api_host}/v3/events", integration.api_key)
            else:
                logger.warning(
                    "odp-logging: the Optimizely datafile has no ODP integration; events are "
                    "dropped (counted as not_integrated) until it has one"
                )
        elif not poller.known and poller.last_error:
            self._log.log(
                logging.WARNING,
                "datafile",
                f"odp-logging cannot fetch the Optimizely datafile ({poller.last_error}); "
                "events are held until it can",
            )
        if poller.known and poller.integration is None:
            self._drop_held("not_integrated")
            return False
        return poller.known

    def _drop_held(self, reason: str) -> None:
        """Settle every event waiting to be sent as dropped for ``reason``."""
        while self._worklist:
            self._settle(self._worklist.popleft().events, sent=False, reason=reason)
        while self._outbox.held:
            events = self._outbox.take(self._batch_size, self._max_batch_bytes)
            if not events:
                return
            self._settle(events, sent=False, reason=reason)
            if not self._durable:
                self._accept()

    def _attempt(self, batch: _Batch) -> bool:
        """Send ``batch`` (the head of the worklist) once and act on the answer.

        Returns:
            True when the worker may send the next batch at once.
        """
        now = time.monotonic()
        timeout = None
        if self._close_deadline is not None:
            timeout = self._close_deadline - now
            if timeout <= 0:
                return False
        if not batch.attempts:
            batch.started = now
        batch.attempts += 1
        answer = self._transport.post(
            b"[" + b",".join(body for _, body in batch.events) + b"]", timeout
        )
        verdict = answer.verdict
        if verdict is Verdict.RETRY or verdict is Verdict.UNAUTHORIZED:
            return self._back_off(batch, answer)
        self._worklist.popleft()
        self._host_answered()
        if verdict is Verdict.DELIVERED:
            self._settle(batch.events, sent=True)
        elif verdict is Verdict.INVALID:
            self._isolate_invalid(batch.events, answer)
        else:
            self._fail(batch.events, "rejected", answer)
        return True

    def _back_off(self, batch: _Batch, answer: Answer) -> bool:
        """After a transient failure or an auth error: wait before any next request."""
        self._failures += 1
        wait = self._retry.backoff(self._failures, answer.retry_after)
        now = time.monotonic()
        self._resume_at = now + wait
        if answer.verdict is Verdict.UNAUTHORIZED:
            if not self._auth_refused:
                self._auth_refused = True
                logger.error(
                    "odp-logging: ODP refused the api key (%s). Sending is paused and retried "
                    "with backoff; events are kept up to max_queue_size (or the spool's size "
                    "limit). Check ODP_API_KEY or the api_key option.",
                    answer.detail,
                )
        elif not self._durable and self._retry.gives_up(batch.attempts, now - batch.started, wait):
            self._worklist.popleft()
            self._fail(batch.events, "retries_exhausted", answer)
            return False
        elif self._close_deadline is None:  # when closing, close() reports what is left
            self._log.log(
                logging.WARNING,
                "retry",
                f"odp-logging could not deliver {len(batch.events)} event(s) ({answer.detail}); "
                f"retrying in {wait:.2g} s",
            )
        self._retried += len(batch.events)
        return False

    def _host_answered(self) -> None:
        """The host took a request: the outage, if any, is over."""
        self._failures = 0
        if self._auth_refused:
            self._auth_refused = False
            logger.warning("odp-logging: ODP accepted the api key again; sending resumed")

    def _isolate_invalid(self, events: list[SpooledEvent], answer: Answer) -> None:
        """Drop the events a 400 named and queue the rest; when it named none, split in halves."""
        named = {i for i in answer.invalid if 0 <= i < len(events)}
        if named:
            self._fail([events[i] for i in sorted(named)], "rejected", answer)
            rest = [event for i, event in enumerate(events) if i not in named]
            if rest:
                self._worklist.appendleft(_Batch(rest))
        elif len(events) == 1:
            self._fail(events, "rejected", answer)
        else:
            half = len(events) // 2
            self._worklist.extendleft([_Batch(events[half:]), _Batch(events[:half])])

    def _fail(self, events: list[SpooledEvent], reason: str, answer: Answer) -> None:
        self._settle(events, sent=False, reason=reason)
        self._log.log(
            logging.WARNING,
            reason,
            f"odp-logging dropped {len(events)} event(s) ({reason}): {answer.detail}",
        )

    def _settle(self, events: list[SpooledEvent], *, sent: bool, reason: str = "") -> None:
        if sent:
            self._sent += len(events)
        else:
            self._drops[reason] += len(events)
        self._outbox.remove([event_id for event_id, _ in events])

    def _reject(self, rejection: Rejection) -> None:
        self._drops[rejection.reason] += 1
        self._in_hand -= 1
        self._log.log(
            logging.WARNING, f"{rejection.reason}:{rejection.field}", rejection.describe()
        )

    def _complete_flushes(self) -> None:
        if not self._flushes:
            return
        oldest = self._outbox.oldest_id()
        for batch in self._worklist:
            first = batch.events[0][0]
            oldest = first if oldest is None else min(oldest, first)
        waiting = []
        for request in self._flushes:
            if oldest is None or oldest > request.boundary:
                request.finish(settled=True)
            else:
                waiting.append(request)
        self._flushes = waiting

    def _close_done(self) -> bool:
        """Whether closing is over: all sent, time up, or the next attempt comes too late."""
        deadline = self._close_deadline
        assert deadline is not None
        if time.monotonic() >= deadline or self._resume_at >= deadline:
            return True
        return not self._queue and not self._worklist and not self._outbox.held

    def _finish(self) -> None:
        """Stop: release the spool's events for the next process, or count them lost."""
        self._worklist.clear()
        if isinstance(self._outbox, Spool):
            try:
                self._outbox.close()
            except SpoolError as exc:
                logger.error("odp-logging: %s", exc)
        else:
            self._drops["shutdown"] += self._outbox.held
            self._outbox.held = 0
        self._drops["shutdown"] += self._in_hand
        self._in_hand = 0
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushRequest):
                item.finish(settled=False)
            else:
                self._drops["shutdown"] += 1
        for request in self._flushes:
            request.finish(settled=False)
        self._flushes = []

    def _lose_spool(self, error: SpoolError) -> None:
        """Carry on in memory after the spool failed; its events stay there for later."""
        spool = self._outbox
        if not isinstance(spool, Spool):
            raise error
        logger.error(
            "odp-logging cannot use its spool any more: %s; events stay in memory from now on",
            error,
        )
        in_flight = sum(len(batch.events) for batch in self._worklist)
        self._stranded = spool.held - in_flight
        try:
            spool.close()
        except SpoolError:
            _inherited_spools.append(spool)  # a broken connection: leave it alone
        self._outbox = _MemoryOutbox(first_id=spool.last_id + 1, held=in_flight)

    def _drop_in_hand(self) -> None:
        """After an unexpected error: drop what the failed step held, so it cannot repeat."""
        self._drops["internal_error"] += self._in_hand
        self._in_hand = 0
        if self._worklist:
            batch = self._worklist.popleft()
            self._drops["internal_error"] += len(batch.events)
            try:
                self._outbox.remove([event_id for event_id, _ in batch.events])
            except SpoolError as exc:
                self._lose_spool(exc)

    def _report_drops(self) -> None:
        """Warn (rate-limited) about events dropped because a queue or the spool was full."""
        counts = {
            "queue_full": self._caller_drops["queue_full"],
            "spool_full": self._drops["spool_full"],
        }
        for reason, total in counts.items():
            new = total - self._reported_drops[reason]
            if new:
                where = "queue" if reason == "queue_full" else "spool"
                self._log.log(
                    logging.WARNING,
                    reason,
                    f"odp-logging {where} is full: {new} event(s) dropped ({reason})",
                )
                self._reported_drops[reason] = total


def _is_event(item: object) -> bool:
    return type(item) is tuple or isinstance(item, Rejection)


def report_leftovers(lost: int, kept: int, spool_path: str | None) -> None:
    """Tell the user, once, on stderr, what close() could not deliver.

    Printed rather than logged: at interpreter exit logging may be gone already.
    """
    if lost:
        print(
            f"odp-logging: {lost} event(s) were still queued at close and were not sent",
            file=sys.stderr,
        )
    if kept:
        print(
            f"odp-logging: {kept} event(s) are kept in the spool {spool_path} "
            "and will be sent by the next process that uses it",
            file=sys.stderr,
        )


if hasattr(os, "register_at_fork"):
    # No worker survives a fork, and the child's new threads may reuse their idents.
    os.register_at_fork(after_in_child=worker_thread_idents.clear)
