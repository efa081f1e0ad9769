"""Configuration from an Optimizely datafile: sdk_key, datafile and datafile_url."""

from __future__ import annotations

import http.server
import json
import logging
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import odp_logging
from odp_logging._config import ConfigError, Options
from odp_logging._datafile import DatafilePoller, load_datafile, odp_integration
from odp_logging.server import Receiver
from tests.conftest import API_KEY


def datafile_for(receiver: Receiver | None, key: str = API_KEY) -> dict[str, Any]:
    """A minimal datafile whose ODP integration points at ``receiver`` (or has none)."""
    integrations = [{"key": "odp", "publicKey": key, "host": receiver.url}] if receiver else []
    return {"version": "4", "projectId": "1", "integrations": integrations}


class _DatafileServer:
    """Serves one datafile on 127.0.0.1; ``status`` other than 200 makes it unavailable."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.status = 200
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = owner.body if owner.status == 200 else b"{}"
                self.send_response(owner.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/datafiles/sdk-key.json"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def serve(self, datafile: dict[str, Any]) -> None:
        self.body = json.dumps(datafile).encode()
        self.status = 200

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(name="datafile_server")
def _datafile_server() -> Iterator[_DatafileServer]:
    """A datafile server on 127.0.0.1."""
    server = _DatafileServer()
    yield server
    server.close()


class TestParsing:
    """Reading the ODP integration out of a datafile."""

    def test_odp_integration(self, receiver: Receiver) -> None:
        """The key and host of the ``odp`` integration are found."""
        integration = odp_integration(datafile_for(receiver))
        assert integration is not None
        assert (API_KEY, receiver.url) == (integration.api_key, integration.api_host)
        assert API_KEY not in repr(integration)

    def test_no_integration(self) -> None:
        """A datafile without an ODP integration has none."""
        assert odp_integration({"integrations": [{"key": "other"}]}) is None

    def test_sources(self, tmp_path: pathlib.Path) -> None:
        """A datafile may be a mapping, JSON text or a path."""
        path = tmp_path / "datafile.json"
        path.write_text('{"a": 1}')
        assert [{"a": 1}] * 3 == [dict(load_datafile(s)) for s in ({"a": 1}, '{"a": 1}', path)]

    def test_keyword_datafile_sets_key_and_host(self, receiver: Receiver) -> None:
        """datafile= fills api_key and api_host; an explicit api_key still wins."""
        options = Options.resolve({}, datafile=datafile_for(receiver))
        assert (API_KEY, receiver.url) == (options.api_key, options.api_host)
        explicit = Options.resolve({}, datafile=datafile_for(receiver), api_key="mine")
        assert "mine" == explicit.api_key

    def test_bad_datafile_raises(self) -> None:
        """A datafile that is not JSON is a ConfigError naming the option."""
        with pytest.raises(ConfigError, match="datafile"):
            Options.resolve({}, datafile="{not json")

    def test_sdk_key_url(self) -> None:
        """sdk_key alone points at Optimizely's CDN; datafile_url overrides it."""
        assert (
            "https://cdn.optimizely.com/datafiles/abc.json"
            == Options.resolve({}, sdk_key="abc").effective_datafile_url
        )
        assert (
            "http://127.0.0.1:1/d.json"
            == Options.resolve(
                {"ODP_SDK_KEY": "abc", "ODP_DATAFILE_URL": "http://127.0.0.1:1/d.json"}
            ).effective_datafile_url
        )

    def test_sdk_key_hidden(self) -> None:
        """repr() of the options shows neither the sdk key nor the datafile."""
        options = Options.resolve({}, sdk_key="secret-sdk-key", datafile={"integrations": []})
        assert "secret-sdk-key" not in repr(options)
        assert "integrations" not in repr(options)


class TestDelivery:
    """Clients configured from a datafile deliver to the host it names."""

    def test_datafile_dict(self, receiver: Receiver) -> None:
        """With datafile= the client sends to the datafile's host with its key."""
        client = odp_logging.OdpClient(datafile=datafile_for(receiver), flush_interval=0.05)
        client.send_odp_event("purchased", identifiers={"fs_user_id": "u"})
        assert client.flush(5)
        assert 1 == len(receiver.events(action="purchased"))

    def test_datafile_url(self, receiver: Receiver, datafile_server: _DatafileServer) -> None:
        """With datafile_url the worker fetches the datafile, then delivers."""
        datafile_server.serve(datafile_for(receiver))
        client = odp_logging.OdpClient(datafile_url=datafile_server.url, flush_interval=0.05)
        client.send_odp_event("purchased", identifiers={"fs_user_id": "u"})
        assert client.flush(5)
        assert 1 == len(receiver.events(action="purchased"))
        assert 1 == datafile_server.requests

    def test_fetched_on_worker_thread(self, datafile_server: _DatafileServer) -> None:
        """Creating the client and sending do not fetch: only the worker does."""
        datafile_server.status = 503
        client = odp_logging.OdpClient(datafile_url=datafile_server.url)
        assert 0 == datafile_server.requests
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        client.flush(0.5)
        assert datafile_server.requests >= 1

    def test_events_held_until_known(
        self, receiver: Receiver, datafile_server: _DatafileServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """While the datafile cannot be fetched, events wait; none is dropped."""
        datafile_server.status = 503
        client = odp_logging.OdpClient(datafile_url=datafile_server.url, flush_interval=0.05)
        for i in range(3):
            client.send_odp_event("held", identifiers={"fs_user_id": str(i)})
        assert not client.flush(0.5)
        assert (3, 0) == (client.stats().queued, client.stats().total_dropped)
        assert "cannot fetch the Optimizely datafile (HTTP 503)" in caplog.text
        datafile_server.serve(datafile_for(receiver))
        assert client.flush(10)  # the next fetch is due within RETRY_INTERVAL
        assert 3 == len(receiver.events(action="held"))

    def test_not_integrated(
        self, datafile_server: _DatafileServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A fetched datafile without ODP drops events as not_integrated, with one warning."""
        datafile_server.serve(datafile_for(None))
        client = odp_logging.OdpClient(datafile_url=datafile_server.url, flush_interval=0.05)
        with caplog.at_level(logging.WARNING, logger="odp_logging"):
            for _ in range(3):
                client.send_odp_event("a", identifiers={"fs_user_id": "u"})
            assert client.flush(5)
        assert 3 == client.stats().dropped["not_integrated"]
        assert 1 == caplog.text.count("no ODP integration")

    def test_keyword_datafile_not_integrated(self) -> None:
        """A given datafile without ODP drops events as not_integrated at once."""
        client = odp_logging.OdpClient(datafile=datafile_for(None))
        client.send_odp_event("a", identifiers={"fs_user_id": "u"})
        assert 1 == client.stats().dropped["not_integrated"]

    def test_refetch_follows_new_key(
        self, receiver: Receiver, datafile_server: _DatafileServer
    ) -> None:
        """A re-fetched datafile naming another key is used from then on."""
        datafile_server.serve(datafile_for(receiver, key="old-key"))
        poller = DatafilePoller(datafile_server.url, timeout=5, refresh_interval=0)
        assert poller.poll()
        assert poller.integration is not None
        assert "old-key" == poller.integration.api_key
        datafile_server.serve(datafile_for(receiver))
        assert poller.poll()
        assert API_KEY == poller.integration.api_key
        assert not poller.poll()  # unchanged
