"""The library's own diagnostics: the ``odp_logging`` logger, rate-limited.

Integrations never turn records of this logger into events, and the worker never
logs more than one line per kind of problem per interval, so a broken network or a
flood of bad payloads cannot flood the application's logs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

logger: Final = logging.getLogger("odp_logging")

WARNING_INTERVAL: Final = 60.0


class RateLimitedLog:
    """Logs each kind of message at most once per ``interval`` seconds.

    A message logged after a quiet spell says how many similar ones were suppressed.
    The messages must never contain payload values or the api key.

    Args:
        interval: Seconds between two messages of the same kind.
    """

    def __init__(self, interval: float = WARNING_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, kind: str, message: str) -> None:
        """Log ``message`` unless a message of the same ``kind`` was logged recently."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message = f"{message} ({suppressed} similar messages suppressed)"
        logger.log(level, message)
