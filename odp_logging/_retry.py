"""The retry policy as a small immutable value, in the manner of urllib3's ``Retry``."""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time
from typing import Final

MAX_RETRY_AFTER: Final = 60.0
"""Longest ``Retry-After`` honoured, in seconds: a server asking for more gets this."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long to wait after failed attempts, and when a batch held in memory is given up.

    The wait grows exponentially with the number of *consecutive* failed attempts,
    counted across batches (so a dead host sees at most one request per
    ``backoff_max`` seconds, however many batches wait), from ``backoff_initial`` to
    ``backoff_max``, with +/-``jitter`` of randomness so that many processes
    recovering from the same outage do not retry in step. ``backoff_max`` is also how
    late, at worst, the client notices that an outage is over: 10 s keeps that short
    while a dead host still sees only a few requests a minute from each process.

    A server's ``Retry-After`` is a floor: the wait is never shorter than it asks
    (capped at :data:`MAX_RETRY_AFTER`), and a ``Retry-After: 0`` cannot make the
    client spin.

    Attributes:
        max_attempts: Attempts per batch held in memory, the first one included.
        backoff_initial: The wait after the first failed attempt, in seconds.
        backoff_max: The longest computed wait, in seconds.
        jitter: The fraction of randomness applied to a computed wait.
        max_elapsed: The time budget of one batch held in memory, in seconds: no
            attempt starts later. Batches in the durable spool are never given up.
    """

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    jitter: float = 0.2
    max_elapsed: float = 120.0

    def backoff(self, failures: int, retry_after: float | None) -> float:
        """Return the seconds to wait before the next attempt.

        Args:
            failures: Consecutive failed attempts so far (at least 1).
            retry_after: The server's ``Retry-After`` in seconds, if it sent one.
        """
        # The exponent is capped so that a days-long outage cannot overflow a float.
        base = min(self.backoff_initial * 2.0 ** min(failures - 1, 32), self.backoff_max)
        wait = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return wait

    def gives_up(self, attempts: int, elapsed: float, wait: float) -> bool:
        """Whether a batch held in memory is dropped rather than tried again after ``wait``.

        Args:
            attempts: Attempts of this batch so far.
            elapsed: Seconds since its first attempt started.
            wait: The wait before its next attempt.
        """
        return attempts >= self.max_attempts or elapsed + wait > self.max_elapsed


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header given as seconds or as an HTTP date.

    Args:
        value: The header's value, or None when absent.
        now: The current epoch time (for tests); ``time.time()`` when None.

    Returns:
        Seconds to wait (never negative), or None when absent or unreadable.
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
