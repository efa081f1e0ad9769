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
    """How long to wait before each new attempt of one batch, and when to give up.

    Delays grow exponentially from ``backoff_initial`` to ``backoff_max`` with
    +/-``jitter`` of randomness, so that many processes recovering from the same
    outage do not retry in step. A server's ``Retry-After`` replaces the computed
    delay (capped at :data:`MAX_RETRY_AFTER`).

    Attributes:
        max_attempts: Attempts per batch, the first one included.
        backoff_initial: The delay after the first failed attempt, in seconds.
        backoff_max: The longest computed delay, in seconds.
        jitter: The fraction of randomness applied to a computed delay.
        max_elapsed: The time budget of one batch, in seconds: no attempt starts later.
    """

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.2
    max_elapsed: float = 120.0

    def delay(
        self, failed_attempts: int, elapsed: float, retry_after: float | None
    ) -> float | None:
        """Return the seconds to wait before the next attempt, or None to give up.

        Args:
            failed_attempts: Attempts made so far (at least 1).
            elapsed: Seconds since the first attempt started.
            retry_after: The server's ``Retry-After`` in seconds, if it sent one.
        """
        if failed_attempts >= self.max_attempts:
            return None
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        else:
            base = min(self.backoff_initial * 2 ** (failed_attempts - 1), self.backoff_max)
            wait = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


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
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
