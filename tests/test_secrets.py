"""Secrets and personal data: the API key and payload values never leak; TLS stays verified."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import odp_logging
from odp_logging._transport import Transport
from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import FAST_RETRY, dead_url, run_python, spooled_rows, wait_until

PRIVATE_EMAIL = "private.person@example.com"
PRIVATE_DATA = "card-4111-1111"


class _Recorder(http.server.ThreadingHTTPServer):
    """A local HTTP(S) server that records the paths and headers it is sent, and answers.

    Args:
        status: The status it answers.
        location: A Location header to send (for redirects).
    """

    def __init__(self, status: int = 202, location: str | None = None) -> None:
        self.status = status
        self.location = location
        self.requests: list[tuple[str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _RecorderHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Failed TLS handshakes are what some tests expect: stay quiet."""


class _RecorderHandler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.requests.append((self.path, dict(self.headers)))
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("location", self.server.location)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def _serving(server: _Recorder) -> Iterator[_Recorder]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture(name="tls_server")
def _tls_server(tmp_path: Path) -> Iterator[tuple[_Recorder, Path]]:
    """An HTTPS recorder on 127.0.0.1 with a self-signed certificate, and that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Recorder()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for recorder in _serving(server):
        yield recorder, cert


class TestApiKey:
    """The key appears nowhere but in the x-api-key header."""

    def test_not_in_reprs(self, client: odp_logging.OdpClient) -> None:
        """Client, options, transport and stats reprs leave the key out."""
        transport = Transport("https://api.zaius.com/v3/events", API_KEY, 10)
        texts = [repr(client), str(client), repr(client.options), repr(transport)]
        texts.append(repr(client.stats()))
        assert all(API_KEY not in text for text in texts)

    @pytest.mark.parametrize(
        "options",
        [
            {"api_host": "http://odp.example.com"},
            {"batch_size": "many"},
            {"flush_interval": -1},
            {"static_data": {"x": [1]}},
            {"spool_path": 3},
        ],
        ids=["insecure-host", "batch-size", "flush-interval", "static-data", "spool-path"],
    )
    def test_not_in_config_errors(self, options: dict[str, Any]) -> None:
        """Configuration errors name the option, never the key."""
        with pytest.raises(odp_logging.ConfigError) as error:
            odp_logging.OdpClient(api_key=API_KEY, **options)
        assert API_KEY not in str(error.value)

    def test_not_in_any_output(self, receiver: Receiver) -> None:
        """A run through every failure, all logged at DEBUG, prints neither key nor values."""
        receiver.inject(
            Fault("status", status=403),
            Fault("status", status=503, retry_after="0"),
            Fault("reset"),
            Fault("status", status=400, body='{"detail": {"invalids": [{"event": 0}]}}'),
            Fault("status", status=404),
        )
        result = run_python(
            """
            import logging, os, odp_logging
            from odp_logging._retry import RetryPolicy
            logging.basicConfig(level=logging.DEBUG)
            email, card = os.environ["EMAIL"], os.environ["CARD"]
            client = odp_logging.OdpClient(
                flush_interval=0.05, retry_policy=RetryPolicy(backoff_initial=0.01)
            )
            for _ in range(6):
                client.send_odp_event("a", identifiers={"email": email}, data={"card": card})
                client.send_odp_event("a", identifiers={"email": [email]}, data={"x": card})
                client.send_odp_event("a", identifiers={"email": email}, data={"card": [card]})
                client.flush(5)
            print(repr(client), client.stats(), client.options)
            dead = odp_logging.OdpClient(api_host=os.environ["DEAD"], shutdown_timeout=0.2)
            dead.send_odp_event("a", identifiers={"email": email})
            try:
                odp_logging.OdpClient(api_host="http://odp.example.com")
            except odp_logging.ConfigError as error:
                print(error)
            """,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
            EMAIL=PRIVATE_EMAIL,
            CARD=PRIVATE_DATA,
            DEAD=dead_url(),
        )
        assert 0 == result.returncode, result.stderr
        output = result.stdout + result.stderr
        assert "ODP refused the api key" in output  # the failures did happen
        assert "invalid_identifiers" in output
        assert API_KEY not in output
        assert PRIVATE_EMAIL not in output
        assert PRIVATE_DATA not in output

    def test_not_in_spool(self, tmp_path: Path) -> None:
        """The spool stores events only: the key is not in the file."""
        path = tmp_path / "spool.db"
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host=dead_url(), spool_path=str(path), retry_policy=FAST_RETRY
        )
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert wait_until(lambda: spooled_rows(path) == 1)
        client.close(timeout=0)
        for name in path.parent.iterdir():
            assert API_KEY.encode() not in name.read_bytes()

    def test_redirect_not_followed(self) -> None:
        """A redirect is not followed: the key never goes to the host it names."""
        for elsewhere in _serving(_Recorder()):
            for redirector in _serving(
                _Recorder(307, f"http://127.0.0.1:{elsewhere.server_port}/x")
            ):
                client = odp_logging.OdpClient(
                    api_key=API_KEY, api_host=f"http://127.0.0.1:{redirector.server_port}"
                )
                client.send_odp_event("a", identifiers={"fs_user_id": "u"})
                assert client.flush(5)
                assert 1 == client.stats().dropped["rejected"]
                assert 1 == len(redirector.requests)
                assert [] == elsewhere.requests


class TestValuesNotInWarnings:
    """Warnings name fields and problems, never identifier or data values."""

    def test_rejections(
        self, client: odp_logging.OdpClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Every kind of rejection warns without the offending or neighbouring values."""
        bad_payloads: list[object] = [
            {"identifiers": {"email": [PRIVATE_EMAIL]}},
            {"identifiers": {"email": PRIVATE_EMAIL}, "data": {"card": [PRIVATE_DATA]}},
            {"identifiers": {"email": PRIVATE_EMAIL}, "data": {"card": float("nan")}},
            {"identifiers": {"email": PRIVATE_EMAIL}, "action": 3},
            {"identifiers": {"email": PRIVATE_EMAIL}, "data": {"x": PRIVATE_DATA * 100_000}},
            PRIVATE_EMAIL,
        ]
        for payload in bad_payloads:
            client.send_payload(payload, "a")
        assert client.flush(5)
        assert len(bad_payloads) == client.stats().total_dropped
        assert caplog.records
        assert PRIVATE_EMAIL not in caplog.text
        assert PRIVATE_DATA not in caplog.text


class TestInsecureHttp:
    """http:// only to this machine, unless allowed."""

    @pytest.mark.parametrize("host", ["http://odp.example.com", "http://10.0.0.8:8080"])
    def test_refused(self, host: str) -> None:
        """http:// to another host is a configuration error that names the way out."""
        with pytest.raises(odp_logging.ConfigError, match="allow_insecure_http"):
            odp_logging.OdpClient(api_key=API_KEY, api_host=host)

    def test_refused_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same host from ODP_API_HOST is refused too."""
        monkeypatch.setenv("ODP_API_HOST", "http://odp.example.com")
        with pytest.raises(odp_logging.ConfigError):
            odp_logging.OdpClient(api_key=API_KEY)

    def test_allowed_when_asked(self) -> None:
        """allow_insecure_http=True accepts it (no event is sent here)."""
        client = odp_logging.OdpClient(
            api_key=API_KEY, api_host="http://odp.example.com", allow_insecure_http=True
        )
        assert "http://odp.example.com/v3/events" == client.options.events_url

    @pytest.mark.parametrize(
        "host", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"]
    )
    def test_loopback_allowed(self, host: str) -> None:
        """Loopback needs no permission: the key does not leave the machine."""
        assert host == odp_logging.OdpClient(api_key=API_KEY, api_host=host).options.api_host


class TestTls:
    """Certificates are verified."""

    def test_self_signed_refused(
        self, tls_server: tuple[_Recorder, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A server whose certificate does not verify gets no request and no key."""
        server, cert = tls_server
        for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.delenv(variable, raising=False)
        url = f"https://127.0.0.1:{server.server_port}"
        client = odp_logging.OdpClient(api_key=API_KEY, api_host=url, retry_policy=FAST_RETRY)
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert wait_until(lambda: client.stats().retried >= 2)
        assert (0, []) == (client.stats().sent, server.requests)
        client.close(timeout=0)
        # The server itself works for a client that trusts its certificate.
        assert (
            202
            == requests.post(
                f"{url}/v3/events", data=b"[]", verify=str(cert), timeout=5
            ).status_code
        )
        assert 1 == len(server.requests)
