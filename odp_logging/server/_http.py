"""The HTTP/1.1 server: a thread per keep-alive connection, one send per response."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from typing import Any

from ._app import App, Reply, Request, reason_phrase


class Server(socketserver.TCPServer):
    """Listens on `address` and serves each connection on its own daemon thread.

    Unlike `ThreadingHTTPServer`, it keeps track of open connections so that `stop` can
    end them: a keep-alive client must not go on being served by a stopped receiver.
    """

    allow_reuse_address = True
    request_queue_size = 128  # benchmarks open connections in bursts; 5 would refuse some

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        # Connections are numbered so that the request log shows keep-alive reuse.
        self.connection_numbers = itertools.count(1)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the accepted connection `request` on a new daemon thread."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="odp-receiver-connection",
            daemon=True,
        )
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - socketserver's contract: report, keep serving
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                del self._connections[request]
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print unexpected handler errors.

        A client going away (or refusing a TLS handshake) or a stop is no error.
        """
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError)) or self.app.stopping.is_set():
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        """End every open connection and wait up to `timeout` seconds for their threads."""
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):  # already closed by its thread
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Reads requests off one connection and writes the `App`'s answers."""

    protocol_version = "HTTP/1.1"  # keep-alive unless the client asks to close
    server: Server

    def setup(self) -> None:
        """Number the connection and disable Nagle's algorithm on its socket."""
        super().setup()
        self.connection_number = next(self.server.connection_numbers)
        # Responses are written whole, so Nagle could only delay them behind the client's
        # delayed ACK (40 ms per request on Linux keep-alive connections).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        """Hand the request to the `App` and write its outcome.

        Every method comes here (see below), so that the `App` answers 405, not the base
        class 501.
        """
        body = self._read_body()
        if body is None:
            return
        request = Request(
            connection=self.connection_number,
            method=self.command,
            target=self.path,
            api_key=self.headers.get("x-api-key", ""),
            content_type=self.headers.get("content-type", ""),
            body=body,
        )
        outcome = self.server.app.handle(request)
        if isinstance(outcome, Reply):
            self._send(outcome)
        else:
            self._abort(reset=outcome == "reset")

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _read_body(self) -> bytes | None:
        """Read the body by Content-Length; answer 411 or 400 and close if that cannot work."""
        if "transfer-encoding" in self.headers:
            # Chunked bodies are not decoded: no ODP client sends one, and leaving the
            # chunks unread would desynchronise the connection, so it is closed.
            self.close_connection = True
            self._send(Reply(411, b'{"message": "Length Required"}'))
            return None
        try:
            length = int(self.headers.get("content-length", "0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self._send(Reply(400, b'{"message": "invalid Content-Length"}'))
            return None
        return self.rfile.read(length)

    def _send(self, reply: Reply) -> None:
        """Write status line, headers and body with one send, so nothing waits on an ACK."""
        lines = [
            f"HTTP/1.1 {reply.status} {reason_phrase(reply.status)}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + reply.body)

    def _abort(self, *, reset: bool) -> None:
        """Close the connection without answering, with a TCP reset if `reset`."""
        self.close_connection = True
        if reset:
            # With SO_LINGER 0, close() sends RST instead of FIN. Close now, because the
            # server would shut the socket down (sending FIN) before closing it.
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the file descriptor stays open while a makefile() does
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: requests are logged in the store, not on stderr."""
