"""A minimal Segment-compatible endpoint that counts events: ``python -m bench._sink``.

The project's receiver speaks ODP only, so segment-analytics-python delivers here
instead: ``POST /v1/batch`` answers 200 ``{}`` and adds ``len(body["batch"])`` to the
count. ``GET /stats`` returns ``{"events": n, "requests": n}`` and ``POST /reset``
zeroes both. It serves HTTP/1.1 keep-alive with ``TCP_NODELAY`` and writes each response
in one ``send``, like the ODP receiver, so neither side of the comparison waits on
Nagle's algorithm. It binds 127.0.0.1 on a free port, prints its URL on the first line
of stdout, and runs in its own process so it never competes for the benchmark's GIL.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0
        self.requests = 0
        self.last_event_at: float | None = None
        """``time.time()`` when the last batch arrived."""


COUNTS = _Counts()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/v1/batch":
            arrived = time.time()
            events = len(json.loads(body)["batch"])
            with COUNTS.lock:
                COUNTS.events += events
                COUNTS.requests += 1
                COUNTS.last_event_at = arrived
            self._reply(b"{}")
        elif self.path == "/reset":
            with COUNTS.lock:
                COUNTS.events = COUNTS.requests = 0
                COUNTS.last_event_at = None
            self._reply(b"{}")
        else:
            self._reply(b'{"message": "not found"}', 404)

    def do_GET(self) -> None:
        if self.path == "/stats":
            with COUNTS.lock:
                counts = {
                    "events": COUNTS.events,
                    "requests": COUNTS.requests,
                    "last_event_at": COUNTS.last_event_at,
                }
            self._reply(json.dumps(counts).encode())
        else:
            self._reply(b'{"message": "not found"}', 404)

    def _reply(self, body: bytes, status: int = 200) -> None:
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)  # one send: headers and body together

    def log_message(self, format: str, *args: object) -> None:
        """Stay silent: a line per request would cost more than serving it."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the benchmarks open connections in bursts


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.close()


if __name__ == "__main__":
    main()
