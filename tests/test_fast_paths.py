"""The fast paths: ids, plain events with and without orjson, the transport's environment."""

from __future__ import annotations

import itertools
import json
import logging
import logging.handlers
import queue
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import odp_logging
from odp_logging import _event, _worker
from odp_logging._event import EventBuilder
from odp_logging._transport import Transport
from odp_logging.server import Fault, Receiver

USER = {"fs_user_id": "u1", "email": "u1@example.com"}
EVENT = {"type": "fullstack", "action": "bought", "identifiers": USER, "data": {}}

PLAIN_DATA: list[dict[str, Any]] = [
    {"text": 'quote " backslash \\ slash / tab \t newline \n bell \x07 del \x7f'},
    {"text": "é ü 中文 🎉 \u2028 \u2029 \ufeff"},
    {"int": 0, "neg": -1, "max": 2**63 - 1, "min": -(2**63), "yes": True, "no": False},
    {"a": 0.1, "b": 1e-4, "c": 9.999999999999998e15, "d": 123456789.125, "e": 2.0**52},
    {"zero": 0.0, "negzero": -0.0, "third": 1 / 3, "neg": -2.5, "big": 1234567890123456.0},
    {},
]
"""Data the plain path takes: every kind of value it sends as it is."""


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with orjson (when installed) and with the stdlib encoder alone."""
    if request.param == "orjson":
        if _event.orjson is None:
            pytest.skip("orjson is not installed (the fast extra)")
    else:
        monkeypatch.setattr(_event, "orjson", None)
    return str(request.param)


def _canonical(encoded: bytes) -> bytes:
    """What the stdlib encoder writes for the same JSON: the reference bytes."""
    return json.dumps(
        json.loads(encoded), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


class TestIds:
    """The idempotence ids drawn from one random read per 256 ids."""

    def test_ids_are_uuid4(self) -> None:
        """Every id is a canonical UUID of version 4 and the RFC 4122 variant."""
        ids = list(itertools.islice(_event._ids(), 1000))
        for text in ids:
            parsed = uuid.UUID(text)
            assert (4, uuid.RFC_4122, text) == (parsed.version, parsed.variant, str(parsed))
        assert len(set(ids)) == len(ids)

    def test_every_variant_digit_occurs(self) -> None:
        """The variant digit keeps two random bits: 8, 9, a and b all occur."""
        digits = {text[19] for text in itertools.islice(_event._ids(), 1000)}
        assert {"8", "9", "a", "b"} == digits


class TestPlainEncoding:
    """Plain events encode to the stdlib's bytes, with orjson or without it."""

    @pytest.mark.parametrize("data", PLAIN_DATA)
    def test_bytes_equal_the_stdlib_encoder(self, encoder: str, data: dict[str, Any]) -> None:
        """The encoded event is byte for byte what the stdlib encoder writes."""
        encoded = EventBuilder("odp-logging").build("bought", None, dict(USER), data)
        assert isinstance(encoded, bytes)
        assert _canonical(encoded) == encoded
        assert data == {k: v for k, v in json.loads(encoded)["data"].items() if k in data}

    @pytest.mark.parametrize(
        "data", [{"small": 1e-5}, {"large": 1e16}, {"none": None}, {"tiny": -5e-324}]
    )
    def test_values_outside_the_plain_path(self, encoder: str, data: dict[str, Any]) -> None:
        """Floats written with an exponent and converted values take the stdlib's way."""
        encoded = EventBuilder("odp-logging").build("bought", None, dict(USER), data)
        assert isinstance(encoded, bytes)
        assert _canonical(encoded) == encoded

    def test_lone_surrogate_replaced(self, encoder: str) -> None:
        """Text orjson refuses (a lone surrogate) falls back to the stdlib, replaced."""
        ids = {"fs_user_id": "u\udc80"}
        encoded = EventBuilder("odp-logging").build("bought", None, ids, {"v": "a\ud800b"})
        assert isinstance(encoded, bytes)
        event = json.loads(encoded)
        assert ("u?", "a?b") == (event["identifiers"]["fs_user_id"], event["data"]["v"])

    def test_context_and_static_data(self, encoder: str) -> None:
        """Context and static data merge in the general rules' order on the plain path."""
        builder = EventBuilder("odp-logging", {"app": "shop", "v": 1})
        context = ({"email": "ctx@example.com", "fs_user_id": "ctx"}, {"v": 2, "page": "home"})
        encoded = builder.build("bought", "", {"fs_user_id": "u1"}, {"v": 3}, context)
        assert isinstance(encoded, bytes)
        event = json.loads(encoded)
        assert "fullstack" == event["type"]
        assert {"email": "ctx@example.com", "fs_user_id": "u1"} == event["identifiers"]
        assert ["app", "v", "page"] == list(event["data"])[4:]
        assert ("shop", 3, "home") == (
            event["data"]["app"],
            event["data"]["v"],
            event["data"]["page"],
        )
        assert _canonical(encoded) == encoded

    def test_alias_still_renamed(self, encoder: str) -> None:
        """An ``FS-USER-ID`` identifier is renamed as the SDKs do, fast path or not."""
        encoded = EventBuilder("odp-logging").build("bought", None, {"FS-USER-ID": "u1"}, None)
        assert isinstance(encoded, bytes)
        assert {"fs_user_id": "u1"} == json.loads(encoded)["identifiers"]


class TestTransportEnvironment:
    """Proxy and CA bundle settings of the environment, read once per session."""

    def test_no_proxy_honoured(
        self, monkeypatch: pytest.MonkeyPatch, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """With a proxy set and the receiver in NO_PROXY, events go straight to it."""
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a closed port
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = odp_logging.OdpClient(**client_options)
        client.send_odp_event("bought", identifiers=USER)
        assert client.flush(5)
        assert 1 == len(receiver.events(action="bought"))

    def test_http_proxy_carries_the_batch(
        self, monkeypatch: pytest.MonkeyPatch, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Through HTTP_PROXY, the batch goes to the proxy, naming the events URL whole."""
        monkeypatch.setenv("HTTP_PROXY", receiver.url)  # the receiver plays the proxy
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A host no resolver knows: only the proxy can have taken the batch.
        options = {**client_options, "api_host": "http://odp.invalid", "allow_insecure_http": True}
        client = odp_logging.OdpClient(**options)
        client.send_odp_event("proxied", identifiers=USER)
        assert client.flush(5)
        assert ["/v3/events"] == [request["path"] for request in receiver.requests()]
        assert 1 == len(receiver.events(action="proxied"))

    def test_proxy_used(
        self, monkeypatch: pytest.MonkeyPatch, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """A proxy named by HTTP_PROXY is used: a dead one means a retry, not a delivery."""
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = Transport(f"{receiver.url}/v3/events", "key", 2.0)
        assert "retry" == transport.post(b"[]").verdict.value
        assert [] == receiver.requests()

    def test_ca_bundle_variable(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, names the CA file; else verify is on."""
        transport = Transport("https://127.0.0.1:9/v3/events", "key", 1.0)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        assert transport._get_route().verify is True
        for variable in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
            bundle = tmp_path / variable
            bundle.write_text("")
            monkeypatch.setenv(variable, str(bundle))
            transport.reset()
            assert str(bundle) == transport._get_route().verify

    def test_certificates_are_checked(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Over HTTPS, a certificate no CA vouches for is refused; the named bundle admits it."""
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl command to make a certificate")
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
        subprocess.run(
            [
                *command.split(),
                *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with Receiver(ssl_context=context) as receiver:
            assert receiver.url.startswith("https://127.0.0.1:")
            transport = Transport(f"{receiver.url}/v3/events", "key", 5.0)
            refused = transport.post(json.dumps([EVENT]).encode())
            assert ("retry", "network error (SSLError)") == (
                refused.verdict.value,
                refused.detail,
            )
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
            transport.reset()
            assert "delivered" == transport.post(json.dumps([EVENT]).encode()).verdict.value
            assert 1 == len(receiver.events())

    def test_timeout_is_named(self, receiver: Receiver) -> None:
        """An answer slower than the timeout is a retry that says it timed out."""
        receiver.inject(Fault("delay", delay=2.0))
        transport = Transport(f"{receiver.url}/v3/events", "key", 0.2)
        answer = transport.post(json.dumps([EVENT]).encode())
        assert ("retry", "the request timed out") == (answer.verdict.value, answer.detail)

    def test_missing_ca_bundle_is_a_network_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
    ) -> None:
        """A CA bundle variable naming no file makes each attempt fail and be retried."""
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
        answer = Transport("https://127.0.0.1:9/v3/events", "key", 1.0).post(b"[]")
        assert ("retry", "network error (OSError)") == (answer.verdict.value, answer.detail)


class TestWorkerThreadGuard:
    """Records a worker thread logs never become events, even handed over by a listener."""

    def test_worker_records_behind_a_queue_listener(
        self, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """A record made on a worker thread, emitted on a listener's, is not an event."""
        client.send_odp_event("first", identifiers=USER)
        assert client.flush(5)
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(records, odp_logging.OdpHandler(client=client))
        worker_ident = next(iter(_worker.worker_thread_idents))
        own = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, "req", (), None)
        own.thread, own.odp = worker_ident, {"identifiers": USER}
        app = logging.LogRecord("shop", logging.INFO, __file__, 1, "bought", (), None)
        app.thread, app.odp = threading.get_ident(), {"identifiers": USER}
        listener.start()
        try:
            records.put(own)
            records.put(app)
        finally:
            listener.stop()
        assert client.flush(5)
        assert ["first", "bought"] == [event["action"] for event in receiver.events()]


class TestBurstBackpressure:
    """Past half the queue, calls pause now and then so that the worker can ship."""

    def test_burst_is_mostly_shipped_without_spool(self, client_options: dict[str, Any]) -> None:
        """Ten queues' worth in a tight loop: the pauses let the worker ship most of it."""
        client = odp_logging.OdpClient(**{**client_options, "max_queue_size": 2000})
        for i in range(20_000):
            client.send_odp_event("burst", identifiers=USER, data={"i": i})
        assert client.flush(10)
        # Measured about 17,000 sent; without the pauses, about 2,100 (the queue and a batch).
        assert client.stats().sent >= 10_000
        client.close(timeout=1)

    def test_no_pause_while_the_worker_backs_off(
        self,
        receiver: Receiver,
        client_options: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A host that refuses: a full queue drops without pausing, as pausing cannot help."""
        pauses = []
        real_sleep = time.sleep
        caller = threading.current_thread()

        def sleep(seconds: float) -> None:
            if threading.current_thread() is caller:
                pauses.append(seconds)
            real_sleep(seconds)

        def crowd(client: odp_logging.OdpClient) -> int:
            pauses.clear()
            monkeypatch.setattr(time, "sleep", sleep)
            for _ in range(1000):
                client.send_odp_event("burst", identifiers=USER)
            monkeypatch.setattr(time, "sleep", real_sleep)
            return len(pauses)

        receiver.inject(Fault("status", status=503, retry_after="30", times=None))
        options = {**client_options, "max_queue_size": 200, "batch_size": 10}
        down = odp_logging.OdpClient(**options)
        down.send_odp_event("first", identifiers=USER)
        assert not down.flush(0.5)
        assert 1 == down.stats().retried  # waiting 30 s before its next attempt
        assert 0 == crowd(down)
        down.close(timeout=0)

        receiver.clear_faults()
        up = odp_logging.OdpClient(**options)
        assert crowd(up) > 0  # the same calls pause when the worker can ship
        up.close(timeout=1)

    def test_burst_beyond_the_queue_is_spooled(self, tmp_path: Any) -> None:
        """With a spool, five queues' worth in a tight loop, receiver down: all spooled."""
        client = odp_logging.OdpClient(
            api_key="key",
            api_host="http://127.0.0.1:9",  # a closed port: the events stay in the spool
            max_queue_size=1000,
            spool_path=str(tmp_path / "spool.db"),
        )
        for i in range(5000):
            client.send_odp_event("burst", identifiers=USER, data={"i": i})
        deadline = time.monotonic() + 20
        while client.stats().spooled < 5000 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = client.stats()
        assert (5000, 0) == (stats.spooled, stats.total_dropped)
        client.close(timeout=0.5)
