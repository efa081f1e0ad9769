"""OdpClient against the real local receiver: wire format, batching, retries, lifecycle."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import odp_logging
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY


class _RawCapture:
    """A one-shot HTTP endpoint on 127.0.0.1 that records the raw request bytes."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.raw = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with self._sock:
            conn, _ = self._sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.raw = head + b"\r\n\r\n" + body
            conn.sendall(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            )

    def request(self, timeout: float = 5.0) -> tuple[str, dict[str, str], Any]:
        """Return the request line, headers (lower-cased names) and decoded body."""
        self._thread.join(timeout)
        head, _, body = self.raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {
            name.lower(): value.strip()
            for name, value in (line.split(":", 1) for line in lines[1:])
        }
        return lines[0], headers, json.loads(body)


@pytest.fixture(name="capture")
def _capture() -> _RawCapture:
    """A raw capture endpoint."""
    return _RawCapture()


class TestWireFormat:
    """What goes on the wire, byte for byte where it matters."""

    def test_request_like_optimizely_sdk(self, capture: _RawCapture) -> None:
        """POST /v3/events with content-type, x-api-key and a JSON array of events."""
        client = odp_logging.OdpClient(api_key=API_KEY, api_host=capture.url)
        client.send_odp_event("purchased", identifiers={"fs-user-id": "u1"}, data={"price": 50.0})
        client.close()
        request_line, headers, body = capture.request()
        assert "POST /v3/events HTTP/1.1" == request_line
        assert "application/json" == headers["content-type"]
        assert API_KEY == headers["x-api-key"]
        assert isinstance(body, list)
        assert 1 == len(body)
        event = body[0]
        assert ["type", "action", "identifiers", "data"] == list(event)
        assert ("fullstack", "purchased", {"fs_user_id": "u1"}) == (
            event["type"],
            event["action"],
            event["identifiers"],
        )
        assert {
            "data_source_type": "sdk",
            "data_source": "odp-logging",
            "price": 50.0,
        }.items() <= event["data"].items()


class TestDelivery:
    """Events reach the receiver, batched by count, bytes and time."""

    def test_events_arrive(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """Sent events are stored by the receiver with their identifiers and data."""
        for i in range(3):
            client.send_odp_event(
                "viewed", identifiers={"email": f"u{i}@example.com"}, data={"i": i}
            )
        assert client.flush(5)
        events = receiver.events(action="viewed")
        assert [0, 1, 2] == [event["data"]["i"] for event in events]
        assert 3 == client.stats().sent

    def test_batches_by_count(self, client_options: dict[str, Any], receiver: Receiver) -> None:
        """25 events with batch_size 10 go as requests of 10, 10 and 5."""
        client = odp_logging.OdpClient(**{**client_options, "batch_size": 10, "flush_interval": 5})
        for i in range(25):
            client.send_odp_event("a", identifiers={"fs_user_id": str(i)})
        assert client.flush(5)
        assert [10, 10, 5] == [request["events"] for request in receiver.requests()]
        client.close()

    def test_batches_by_bytes(self, client_options: dict[str, Any], receiver: Receiver) -> None:
        """No request body exceeds 500 KB: big events split batches early."""
        client = odp_logging.OdpClient(**client_options)
        for i in range(6):
            client.send_odp_event(
                "big", identifiers={"fs_user_id": str(i)}, data={"blob": "x" * 150_000}
            )
        assert client.flush(10)
        sizes = [request["body_bytes"] for request in receiver.requests()]
        assert 6 == sum(request["events"] for request in receiver.requests())
        assert len(sizes) >= 2
        assert max(sizes) <= 500_000
        client.close()

    def test_flush_interval_sends_partial_batch(
        self, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """A partial batch leaves within flush_interval without any flush() call."""
        client = odp_logging.OdpClient(**{**client_options, "flush_interval": 0.2})
        client.send_odp_event("lonely", identifiers={"fs_user_id": "u"})
        assert receiver.wait_for_events(1, timeout=5)
        client.close()

    def test_keep_alive(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """Successive batches reuse one connection."""
        for _ in range(3):
            client.send_odp_event("a", identifiers={"fs_user_id": "u"})
            assert client.flush(5)
        assert 1 == len({request["connection"] for request in receiver.requests()})


class TestRetries:
    """Transient failures are retried with the same events; others are not."""

    @pytest.mark.parametrize("status", [500, 503, 408])
    def test_retried_on_server_errors(
        self, status: int, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """A 5xx or 408 is retried and the event then delivered once."""
        receiver.inject(Fault("status", status=status))
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert client.flush(10)
        requests = receiver.requests()
        assert [status, 202] == [request["status"] for request in requests]
        assert requests[0]["idempotence_ids"] == requests[1]["idempotence_ids"]
        assert (1, 1) == (client.stats().sent, client.stats().retried)

    def test_retry_after_honoured(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """A 429 with Retry-After: 1 waits about a second before the next attempt."""
        receiver.inject(Fault("status", status=429, retry_after="1"))
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert client.flush(10)
        first, second = (_seconds(request["received_at"]) for request in receiver.requests())
        assert second - first >= 0.9
        assert 1 == client.stats().sent

    @pytest.mark.parametrize("kind", ["reset", "drop"])
    def test_retried_on_broken_connection(
        self, kind: str, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """A connection reset or closed without an answer is retried."""
        receiver.inject(Fault(kind))  # type: ignore[arg-type]
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert client.flush(10)
        assert 1 == len(receiver.events())
        assert 1 == client.stats().sent

    @pytest.mark.parametrize("status", [404, 409, 422])
    def test_other_4xx_not_retried(
        self, status: int, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """Other 4xx answers drop the batch as rejected after one attempt."""
        receiver.inject(Fault("status", status=status))
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert client.flush(5)
        assert 1 == len(receiver.requests())
        assert 1 == client.stats().dropped["rejected"]


class TestLifecycle:
    """flush(), close() and the counts."""

    def test_flush_with_nothing_queued(self, client: odp_logging.OdpClient) -> None:
        """flush() on an idle client returns True at once and starts no thread."""
        before = threading.active_count()
        assert client.flush(1)
        assert before == threading.active_count()

    def test_close_twice(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """close() delivers what is queued and may be called again."""
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        client.close()
        client.close()
        assert 1 == len(receiver.events())
        assert client.closed

    def test_send_after_close_counted(self, client: odp_logging.OdpClient) -> None:
        """An event sent after close() is dropped as closed, not raised."""
        client.close()
        client.send_odp_event("late", identifiers={"fs_user_id": "u"})
        assert 1 == client.stats().dropped["closed"]

    def test_accounting(self, client: odp_logging.OdpClient) -> None:
        """Every call ends up sent or dropped by reason."""
        client.send_odp_event("ok", identifiers={"fs_user_id": "u"})
        client.send_odp_event("", identifiers={"fs_user_id": "u"})
        client.send_odp_event("ok", identifiers={})
        client.send_odp_event("ok", identifiers={"fs_user_id": "u"}, data={"x": [1]})
        assert client.flush(5)
        stats = client.stats()
        assert (4, 1, 0) == (stats.total, stats.sent, stats.queued)
        assert (1, 1, 1) == (
            stats.dropped["invalid_action"],
            stats.dropped["no_identifiers"],
            stats.dropped["invalid_data"],
        )

    def test_send_never_raises(self, client: odp_logging.OdpClient) -> None:
        """Nonsense arguments are counted drops, never exceptions."""
        client.send_odp_event(None, identifiers=None, data=object(), type=7)  # type: ignore[arg-type]
        client.send_payload(object(), "x")
        assert client.flush(5)
        assert 2 == client.stats().total_dropped

    def test_queue_full_counted(self, client_options: dict[str, Any]) -> None:
        """Past max_queue_size, events are dropped as queue_full, newest first."""
        client = odp_logging.OdpClient(
            **{**client_options, "max_queue_size": 5, "flush_interval": 60}
        )
        for _ in range(8):
            client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert 3 == client.stats().dropped["queue_full"]
        client.close()


class TestMissingKey:
    """No api key: one warning, counted drops, nothing raised."""

    def test_not_configured(self, caplog: pytest.LogCaptureFixture) -> None:
        """Without a key the client warns once and drops events as not_configured."""
        with caplog.at_level(logging.WARNING, logger="odp_logging"):
            client = odp_logging.OdpClient()
            for _ in range(3):
                client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert 3 == client.stats().dropped["not_configured"]
        assert 1 == sum("ODP_API_KEY" in record.getMessage() for record in caplog.records)

    def test_disabled(self) -> None:
        """enabled=False drops events as disabled, without a warning about the key."""
        client = odp_logging.OdpClient(enabled=False)
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert 1 == client.stats().dropped["disabled"]


class TestSharedClient:
    """The process-wide client of the integrations."""

    def test_same_options_share(self, client_options: dict[str, Any]) -> None:
        """get_client() with equal options returns one client."""
        assert odp_logging.get_client(**client_options) is odp_logging.get_client(**client_options)

    def test_first_is_default(self, client_options: dict[str, Any]) -> None:
        """get_client() without options returns the first shared client."""
        first = odp_logging.get_client(**client_options)
        assert first is odp_logging.get_client()

    def test_different_options_separate(self, client_options: dict[str, Any]) -> None:
        """Different options get their own client."""
        other = {**client_options, "batch_size": 7}
        assert odp_logging.get_client(**client_options) is not odp_logging.get_client(**other)


class TestContext:
    """odp_logging.context() per thread and merged under events."""

    def test_context_merged(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """Context identifiers and data are added under the event's own."""
        with odp_logging.context(identifiers={"fs_user_id": "ctx"}, data={"page": "home"}):  # noqa: SIM117 - nesting is the point
            with odp_logging.context(data={"section": "shoes"}):
                client.send_odp_event(
                    "a", identifiers={"email": "e@example.com"}, data={"page": "cart"}
                )
        client.send_odp_event("b", identifiers={"email": "e@example.com"})
        assert client.flush(5)
        inside, outside = receiver.events()
        assert {"fs_user_id": "ctx", "email": "e@example.com"} == inside["identifiers"]
        assert ("cart", "shoes") == (inside["data"]["page"], inside["data"]["section"])
        assert {"email": "e@example.com"} == outside["identifiers"]

    def test_context_is_per_thread(self, client: odp_logging.OdpClient, receiver: Receiver) -> None:
        """A context in one thread does not leak into another."""

        def other_thread() -> None:
            client.send_odp_event("other", identifiers={"email": "o@example.com"})

        with odp_logging.context(identifiers={"fs_user_id": "ctx"}):
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
        assert client.flush(5)
        assert {"email": "o@example.com"} == receiver.events(action="other")[0]["identifiers"]


class TestExit:
    """Interpreter exit delivers what is queued, in a real subprocess."""

    def test_atexit_delivers(self, receiver: Receiver) -> None:
        """A script that sends and exits without flush() still delivers its events."""
        script = textwrap.dedent(
            """
            import odp_logging
            client = odp_logging.OdpClient(flush_interval=30)
            for i in range(50):
                client.send_odp_event("exit", identifiers={"fs_user_id": str(i)})
            """
        )
        env = {**os.environ, "ODP_API_KEY": API_KEY, "ODP_API_HOST": receiver.url}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert 50 == len(receiver.events(action="exit"))
        assert API_KEY not in result.stdout + result.stderr

    def test_exit_reports_leftovers(self) -> None:
        """With nowhere to deliver, exit is bounded and the loss is reported on stderr."""
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            dead_url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        script = textwrap.dedent(
            """
            import odp_logging
            client = odp_logging.OdpClient(shutdown_timeout=1)
            client.send_odp_event("lost", identifiers={"fs_user_id": "u"})
            """
        )
        env = {**os.environ, "ODP_API_KEY": API_KEY, "ODP_API_HOST": dead_url}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert 0 == result.returncode
        assert "not sent" in result.stderr
        assert API_KEY not in result.stdout + result.stderr


class TestSecrets:
    """The api key stays secret."""

    def test_not_in_repr_or_stats(self, client: odp_logging.OdpClient) -> None:
        """Neither repr() nor stats() shows the key."""
        assert API_KEY not in repr(client)
        assert API_KEY not in repr(client.stats())
        assert API_KEY not in repr(client.options)

    def test_not_in_warnings(
        self, client: odp_logging.OdpClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Failure warnings name the problem, never the key or payload values."""
        receiver.inject(Fault("status", status=403, body='{"message": "Forbidden"}'))
        client.send_odp_event("a", identifiers={"email": "private@example.com"})
        client.send_odp_event("a", identifiers={"email": ["private@example.com"]})
        assert client.flush(5)
        assert caplog.records
        assert API_KEY not in caplog.text
        assert "private@example.com" not in caplog.text


def _seconds(received_at: str) -> float:
    """Seconds since the epoch of the receiver's ISO 8601 receipt time."""
    from datetime import datetime

    return datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp()
