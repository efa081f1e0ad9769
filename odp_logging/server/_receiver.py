"""`Receiver`: the local ODP-compatible receiver, served from a thread of this process."""

from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import Any

from ._app import App
from ._faults import Fault
from ._http import Server
from ._store import EventStore, RequestRecord, Stats


class Receiver:
    """A local ODP events API (`POST /v3/events`) that stores what it accepts in SQLite.

    The database is opened at construction; `start()` binds and serves on a daemon thread.
    Use it as a context manager, or call `start()` and `stop()`.

    Args:
        host: Address to listen on; loopback unless you mean to expose it.
        port: Port to listen on; 0 picks a free one (read it from `port` or `url`).
        db_path: SQLite file for events and the request log (kept after `stop()`); `None`
            keeps them in memory until `stop()`.
        api_key: The only `x-api-key` accepted; `None` accepts any non-empty key.
        ssl_context: A server-side context to serve HTTPS with (`url` then says
            `https://`), e.g. to test a client's certificate checks; `None` for HTTP.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        db_path: str | None = None,
        api_key: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._address = (host, port)
        self._ssl_context = ssl_context
        self._store = EventStore(db_path)
        self._app = App(self._store, api_key)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        """Bind and start serving on a daemon thread; returns `self`.

        Raises:
            RuntimeError: If it was started before.
            OSError: If the address cannot be bound.
        """
        if self._server is not None:
            msg = "a Receiver can be started once"
            raise RuntimeError(msg)
        self._server = Server(self._address, self._app)
        if self._ssl_context is not None:
            # The handshake happens on the connection's own thread, at its first read: a
            # client that never completes one cannot hold up accept().
            self._server.socket = self._ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        # shutdown() waits for the next poll, so a short interval keeps stop() (and every
        # test fixture using a Receiver) fast; 100 idle wake-ups a second cost nothing.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="odp-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and close the database; idempotent.

        Requests in flight get no answer; injected delays are cut short. An in-memory
        database is gone afterwards.
        """
        if self._app.stopping.is_set():
            return
        self._app.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        # Closing the store first wakes handlers blocked in wait_for_events, so that the
        # connections below end promptly; handlers' errors after this point are silenced.
        self._store.close()
        if self._server is not None:
            self._server.close_connections(timeout=2.0)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on.

        Raises:
            RuntimeError: Before `start()`.
        """
        if self._server is None:
            msg = "the Receiver is not started"
            raise RuntimeError(msg)
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL such as `http://127.0.0.1:PORT`, to use as the client's `api_host`."""
        host = self._address[0]
        scheme = "http" if self._ssl_context is None else "https"
        netloc = f"[{host}]" if ":" in host else host
        return f"{scheme}://{netloc}:{self.port}"

    def events(
        self, action: str | None = None, identifier: str | None = None
    ) -> list[dict[str, Any]]:
        """Return stored events, oldest first.

        Each is the event as received (`type`, `action`, `identifiers`, `data` if sent) plus
        `id`, `request_id` (the logged request it came in) and `received_at`.

        Args:
            action: Keep only events with this action.
            identifier: Keep only events with an identifier of this value, or with the
                identifier `name=value`.
        """
        return self._store.events(action, identifier)

    def requests(self) -> list[RequestRecord]:
        """Return the log of requests to the ODP API (not the control API), oldest first."""
        return self._store.requests()

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at least `n` events are stored; `False` if `timeout` seconds pass first."""
        return self._store.wait_for_events(n, timeout)

    def inject(self, *faults: Fault) -> None:
        """Queue `faults` for the next requests to `/v3/events`, behind any waiting ones."""
        self._app.faults.push(faults)

    def clear_faults(self) -> None:
        """Drop waiting faults, ending an outage."""
        self._app.faults.clear()

    def reset(self) -> None:
        """Forget stored events, the request log and waiting faults."""
        self._app.reset()

    def stats(self) -> Stats:
        """Return counters: requests, events accepted and named invalid, answers by status."""
        return self._store.stats()
