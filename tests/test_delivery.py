"""How the client answers each kind of response, outages and backoff, against real servers."""

from __future__ import annotations

import email.utils
import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import odp_logging
from odp_logging._retry import MAX_RETRY_AFTER, RetryPolicy, parse_retry_after
from odp_logging._transport import Verdict, classify
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import FAST_RETRY, wait_until


def _client(receiver_url: str, **options: Any) -> odp_logging.OdpClient:
    """A client of the receiver with the fast retry policy and a 50 ms flush interval."""
    defaults: dict[str, Any] = {
        "api_key": API_KEY,
        "api_host": receiver_url,
        "flush_interval": 0.05,
    }
    return odp_logging.OdpClient(retry_policy=FAST_RETRY, **{**defaults, **options})


def _send(client: odp_logging.OdpClient, count: int, action: str = "a") -> None:
    for i in range(count):
        client.send_odp_event(action, identifiers={"fs_user_id": f"u{i}"}, data={"i": i})


def _invalids(*indices: int) -> str:
    """An ODP 400 body naming the events at ``indices`` invalid."""
    invalids = [{"event": i, "message": "data.x must be a string"} for i in indices]
    return json.dumps({"title": "Bad Request", "status": 400, "detail": {"invalids": invalids}})


class _PoisonServer(http.server.ThreadingHTTPServer):
    """Answers 400 without naming events to a batch holding a poison event, 202 otherwise.

    The local receiver can only play faults in order; this one judges each body, as ODP
    would when one event of a batch breaks a rule it does not report per event.
    """

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.batches: list[int] = []
        super().__init__(("127.0.0.1", 0), _PoisonHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _PoisonHandler(http.server.BaseHTTPRequestHandler):
    server: _PoisonServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        events = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.batches.append(len(events))
        poisoned = any(event["action"] == "poison" for event in events)
        if not poisoned:
            self.server.accepted.extend(events)
        body = b'{"message": "bad request"}' if poisoned else b'{"title": "Accepted"}'
        self.send_response(400 if poisoned else 202)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture(name="poison_server")
def _poison_server() -> Iterator[_PoisonServer]:
    """A running _PoisonServer."""
    server = _PoisonServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


class TestBadRequest:
    """400 answers: named events are dropped exactly; otherwise the batch is split."""

    def test_named_invalids_dropped_exactly(self, receiver: Receiver) -> None:
        """A 400 naming events 1 and 3 of 5 drops those two and delivers the other three."""
        client = _client(receiver.url, batch_size=5, flush_interval=5)
        receiver.inject(Fault("status", status=400, body=_invalids(1, 3)))
        _send(client, 5)
        assert client.flush(5)
        assert [0, 2, 4] == [event["data"]["i"] for event in receiver.events()]
        stats = client.stats()
        assert (3, 2, 0) == (stats.sent, stats.dropped["rejected"], stats.queued)
        client.close()

    def test_out_of_range_indices_ignored(self, receiver: Receiver) -> None:
        """Indices outside the batch name nothing: the batch is split instead."""
        client = _client(receiver.url, batch_size=2, flush_interval=5)
        receiver.inject(
            Fault("status", status=400, body=_invalids(7)),
            Fault("status", status=400, body=_invalids(9)),
        )
        _send(client, 2)
        assert client.flush(5)
        assert ([1], 1) == (
            [event["data"]["i"] for event in receiver.events()],
            client.stats().sent,
        )
        assert 1 == client.stats().dropped["rejected"]
        client.close()

    def test_poison_event_isolated(self, poison_server: _PoisonServer) -> None:
        """One poison event in 100 costs only itself: the 99 others arrive, few requests."""
        client = _client(poison_server.url, batch_size=100, flush_interval=5)
        for i in range(100):
            action = "poison" if i == 37 else "good"
            client.send_odp_event(action, identifiers={"fs_user_id": f"u{i}"}, data={"i": i})
        assert client.flush(10)
        assert [i for i in range(100) if i != 37] == [
            event["data"]["i"] for event in poison_server.accepted
        ]
        assert (99, 1) == (client.stats().sent, client.stats().dropped["rejected"])
        assert len(poison_server.batches) <= 2 * 7 + 1  # two requests per halving, at most
        client.close()

    def test_too_large_split(self, receiver: Receiver) -> None:
        """A 413 splits the batch, whose halves then go through."""
        client = _client(receiver.url, batch_size=2, flush_interval=5)
        receiver.inject(Fault("status", status=413))
        _send(client, 2)
        assert client.flush(5)
        assert [1, 1] == [request["events"] for request in receiver.requests()[1:]]
        assert 2 == client.stats().sent
        client.close()


class TestAuthError:
    """401/403: one error naming the problem, sending paused, events kept."""

    @pytest.mark.parametrize("status", [401, 403])
    def test_paused_then_resumed(
        self, status: int, receiver: Receiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Refusals keep the events; one error is logged; they arrive when the key works."""
        client = _client(receiver.url)
        receiver.inject(Fault("status", status=status, times=4))
        with caplog.at_level(logging.INFO, logger="odp_logging"):
            _send(client, 10)
            assert client.flush(10)
        assert 10 == len(receiver.events())
        stats = client.stats()
        assert (10, 0) == (stats.sent, stats.total_dropped)
        errors = [record for record in caplog.records if record.levelno == logging.ERROR]
        assert 1 == len(errors)
        assert f"HTTP {status}" in errors[0].getMessage()
        assert "api key" in errors[0].getMessage()
        assert API_KEY not in caplog.text

    def test_kept_within_queue_limit(self, receiver: Receiver) -> None:
        """While refused, events beyond max_queue_size are dropped as queue_full, no others."""
        client = _client(receiver.url, max_queue_size=20, batch_size=10)
        receiver.inject(Fault("status", status=403, times=None))
        _send(client, 10)
        assert wait_until(lambda: client.stats().retried > 0)
        _send(client, 40)
        stats = client.stats()
        # Held: 10 in the refused batch, at most 10 waiting for the next, 20 in the queue.
        assert 10 <= stats.dropped["queue_full"] == stats.total_dropped
        receiver.clear_faults()
        assert client.flush(10)
        kept = 50 - stats.dropped["queue_full"]
        assert kept == len(receiver.events()) == client.stats().sent
        client.close()


class TestOutage:
    """Transient failures: backoff shared by all batches, bounded request rate."""

    @pytest.mark.parametrize(
        "fault",
        [Fault("status", status=503, times=None), Fault("reset", times=None)],
        ids=["503", "reset"],
    )
    def test_request_rate_bounded(self, fault: Fault, receiver: Receiver) -> None:
        """During an outage with many batches waiting, requests stay few (no tight loop)."""
        client = _client(receiver.url, batch_size=10, max_queue_size=100_000)
        receiver.inject(fault)
        started = time.monotonic()
        _send(client, 1000)
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        requests = len(receiver.requests())
        # The backoff reaches 0.2 s after three failures: about 5 requests a second.
        assert 1 <= requests <= 6 + 6 * elapsed
        receiver.clear_faults()
        assert client.flush(15)
        assert 1000 == client.stats().sent
        client.close()

    def test_outage_then_recovery(self, receiver: Receiver) -> None:
        """Without a spool, events queued during a short outage are all delivered after it."""
        client = _client(receiver.url)
        receiver.inject(Fault("status", status=500, times=None))
        _send(client, 50)
        assert not client.flush(0.3)
        receiver.clear_faults()
        assert client.flush(10)
        assert 50 == len({event["data"]["idempotence_id"] for event in receiver.events()})
        client.close()

    def test_retries_exhausted(self, receiver: Receiver) -> None:
        """Without a spool, a batch is given up after max_attempts and counted."""
        policy = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.02)
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=receiver.url, flush_interval=0.05, retry_policy=policy
        )
        receiver.inject(Fault("status", status=502, times=None))
        _send(client, 4)
        assert client.flush(5)
        assert 4 == client.stats().dropped["retries_exhausted"]
        assert 3 == len(receiver.requests())
        client.close()

    def test_retry_after_http_date(self, receiver: Receiver) -> None:
        """A Retry-After given as an HTTP date is waited for."""
        client = _client(receiver.url)
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        receiver.inject(Fault("status", status=429, retry_after=when))
        _send(client, 1)
        assert client.flush(10)
        first, second = (request["received_at"] for request in receiver.requests())
        assert _seconds(second) - _seconds(first) >= 0.9
        client.close()

    def test_close_cuts_backoff_short(self, receiver: Receiver) -> None:
        """close() during a 60 s Retry-After returns at once instead of waiting it out."""
        client = _client(receiver.url, shutdown_timeout=30)
        receiver.inject(Fault("status", status=429, retry_after="60"))
        _send(client, 3)
        assert wait_until(lambda: client.stats().retried == 3)
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 5  # hang guard: the wait is 60 s
        assert 3 == client.stats().dropped["shutdown"]


class TestRetryPolicy:
    """The backoff schedule as a value."""

    def test_grows_then_caps(self) -> None:
        """Waits double from backoff_initial up to backoff_max, within the jitter."""
        policy = RetryPolicy(backoff_initial=1.0, backoff_max=8.0, jitter=0.0)
        assert [1.0, 2.0, 4.0, 8.0, 8.0] == [policy.backoff(n, None) for n in range(1, 6)]

    def test_huge_failure_count(self) -> None:
        """A days-long outage neither overflows nor exceeds backoff_max."""
        assert RetryPolicy().backoff(10_000, None) <= RetryPolicy().backoff_max * 1.2

    def test_jitter_bounds(self) -> None:
        """Jitter stays within +/- the configured fraction."""
        policy = RetryPolicy(backoff_initial=10.0, jitter=0.2)
        waits = [policy.backoff(1, None) for _ in range(200)]
        assert 8.0 <= min(waits) < max(waits) <= 12.0

    def test_retry_after_is_a_capped_floor(self) -> None:
        """Retry-After raises the wait, never lowers it, and is capped."""
        policy = RetryPolicy(backoff_initial=4.0, jitter=0.0)
        assert (4.0, 7.0, MAX_RETRY_AFTER) == (
            policy.backoff(1, 0.0),
            policy.backoff(1, 7.0),
            policy.backoff(1, 3600.0),
        )

    def test_gives_up(self) -> None:
        """A batch is given up after max_attempts or past max_elapsed."""
        policy = RetryPolicy(max_attempts=3, max_elapsed=10.0)
        assert (False, True, True) == (
            policy.gives_up(2, 1.0, 1.0),
            policy.gives_up(3, 1.0, 1.0),
            policy.gives_up(1, 9.0, 2.0),
        )


class TestParseRetryAfter:
    """Retry-After as seconds or an HTTP date."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 3 ", 3.0),
            ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
            ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
            ("soon", None),
            ("-5", None),
            ("", None),
            (None, None),
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        """Each form parses to seconds from now (a past date to 0), garbage to None."""
        now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
        assert expected == parse_retry_after(value, now=now)


class TestClassify:
    """Each HTTP status maps to what the worker does with the batch."""

    @pytest.mark.parametrize(
        ("status", "verdict"),
        [
            (200, Verdict.DELIVERED),
            (202, Verdict.DELIVERED),
            (307, Verdict.REJECTED),
            (400, Verdict.INVALID),
            (401, Verdict.UNAUTHORIZED),
            (403, Verdict.UNAUTHORIZED),
            (404, Verdict.REJECTED),
            (408, Verdict.RETRY),
            (413, Verdict.INVALID),
            (429, Verdict.RETRY),
            (500, Verdict.RETRY),
            (503, Verdict.RETRY),
        ],
    )
    def test_status(self, status: int, verdict: Verdict) -> None:
        """design.md section 3's table of answers (a redirect is never followed)."""
        assert verdict is classify(status, None, b"{}").verdict

    @pytest.mark.parametrize(
        "body",
        [b"", b"not json", b"[" * 100_000, b'{"detail": {"invalids": [{"event": "x"}]}}'],
        ids=["empty", "text", "deep", "bad-index"],
    )
    def test_unreadable_400_names_nothing(self, body: bytes) -> None:
        """A 400 body that cannot be read names no event (the batch gets split)."""
        assert () == classify(400, None, body).invalid


def _seconds(received_at: str) -> float:
    """Seconds since the epoch of the receiver's ISO 8601 receipt time."""
    from datetime import datetime

    return datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
