"""Accounting: every event logged is sent, dropped by reason, or still queued or spooled."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import odp_logging
from odp_logging._retry import RetryPolicy
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import wait_until

THREADS = 4
PER_THREAD = 300
CHAOS_RETRY = RetryPolicy(max_attempts=4, backoff_initial=0.02, backoff_max=0.1, max_elapsed=1.0)


def _log(client: odp_logging.OdpClient, thread: int) -> None:
    """Log PER_THREAD events; every 17th has invalid data, every 23rd no identifier."""
    for i in range(PER_THREAD):
        data: dict[str, Any] = {"thread": thread, "i": i}
        if i % 17 == 0:
            data["price"] = float("nan")
        identifiers = {} if i % 23 == 0 else {"fs_user_id": f"t{thread}-{i}"}
        client.send_odp_event("chaos", identifiers=identifiers, data=data)


def _log_from_threads(client: odp_logging.OdpClient) -> int:
    threads = [threading.Thread(target=_log, args=(client, n)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return THREADS * PER_THREAD


class TestIdentity:
    """logged == sent + dropped + queued + spooled, after faults of every kind."""

    @pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
    def test_after_chaos(self, spool: bool, receiver: Receiver, tmp_path: Path) -> None:
        """A chaos run ends with every event accounted for, by the client and the receiver."""
        options: dict[str, Any] = {"batch_size": 20, "max_queue_size": 400}
        if spool:
            options.update(spool_path=str(tmp_path / "spool.db"), spool_max_bytes=200_000)
        client = odp_logging.OdpClient(
            api_key=API_KEY,
            api_host=receiver.url,
            flush_interval=0.02,
            shutdown_timeout=0.3,
            retry_policy=CHAOS_RETRY,
            **options,
        )
        invalids = {"detail": {"invalids": [{"event": 0}, {"event": 3}]}}
        receiver.inject(
            Fault("status", status=500, times=3),
            Fault("status", status=429, retry_after="1"),
            Fault("reset", times=2),
            Fault("drop"),
            Fault("delay", delay=0.2, times=2),
            Fault("status", status=400, body=json.dumps(invalids)),
            Fault("status", status=403),
            Fault("status", status=503, times=12),  # an outage: batches in memory give up
        )
        logged = _log_from_threads(client)
        client.flush(10)
        receiver.clear_faults()
        logged += _log_from_threads(client)
        assert client.flush(10)
        # Down again at exit, asking for a long wait: what is queued is left over at close,
        # however fast the worker got through the events while they were logged.
        receiver.inject(Fault("status", status=503, retry_after="30", times=None))
        logged += _log_from_threads(client)
        client.close()
        client.send_odp_event("late", identifiers={"fs_user_id": "x"})
        logged += 1

        stats = client.stats()
        assert logged == stats.sent + stats.total_dropped + stats.queued + stats.spooled
        assert logged == stats.total
        assert 0 == stats.recovered
        ids = [event["data"]["idempotence_id"] for event in receiver.events()]
        assert stats.sent == len(ids) == len(set(ids))
        # The run went through every bucket it is meant to exercise.
        exercised = {
            "invalid_data": stats.dropped["invalid_data"],
            "no_identifiers": stats.dropped["no_identifiers"],
            "rejected": stats.dropped["rejected"],
            "closed": stats.dropped["closed"],
            "retried": stats.retried,
            "sent": stats.sent,
        }
        if spool:
            exercised["spooled"] = stats.spooled
        else:
            exercised["shutdown"] = stats.dropped["shutdown"]
            exercised["exhausted or full"] = (
                stats.dropped["retries_exhausted"] + stats.dropped["queue_full"]
            )
        assert all(exercised.values()), exercised

    def test_identity_holds_at_rest(self, receiver: Receiver) -> None:
        """With the worker idle in an outage, the counts add up while events are still queued."""
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=receiver.url, flush_interval=0.02, batch_size=10
        )
        receiver.inject(Fault("status", status=503, retry_after="60", times=None))
        logged = _log_from_threads(client)
        assert wait_until(lambda: client.stats().retried > 0)
        stats = client.stats()
        assert stats.queued > 0
        assert logged == stats.total
        client.close(timeout=0.2)
