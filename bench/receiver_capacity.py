"""Capacity of the local ODP receiver, as seen by one keep-alive client.

Starts a `ReceiverProcess` storing into a temporary SQLite file, then posts pre-encoded
batches of realistic ODP events from one `requests.Session` for a few seconds, first 100
events per request, then 1, and prints requests/s and events/s. The bodies are encoded
up front, so the client spends its time on HTTP, not JSON.

    python bench/receiver_capacity.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

# Run from a checkout without installing: import the package next to this directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odp_logging.server import ReceiverProcess

API_KEY = "bench-key"


def make_event(i: int) -> dict[str, object]:
    """Return an event shaped like the ones odp-logging sends (about 330 bytes)."""
    return {
        "type": "fullstack",
        "action": "purchased",
        "identifiers": {"fs_user_id": f"user-{i % 1000}", "email": f"user{i % 1000}@example.com"},
        "data": {
            "idempotence_id": str(uuid.uuid4()),
            "data_source_type": "sdk",
            "data_source": "odp-logging",
            "data_source_version": "0.1.0",
            "item": "shirt",
            "price": 50.0,
            "quantity": 2,
            "gift": False,
        },
    }


def encode_bodies(batch_size: int, count: int = 64) -> list[bytes]:
    """Return `count` distinct request bodies of `batch_size` events each."""
    return [
        json.dumps([make_event(b * batch_size + i) for i in range(batch_size)]).encode()
        for b in range(count)
    ]


def hammer(url: str, bodies: list[bytes], seconds: float) -> tuple[int, float]:
    """POST `bodies` round-robin for `seconds`; return the requests sent and the time taken."""
    headers = {"content-type": "application/json", "x-api-key": API_KEY}
    with requests.Session() as session:
        for body in bodies[:10]:  # warm up: connect, and let both sides settle
            session.post(url, data=body, headers=headers, timeout=10).raise_for_status()
        sent = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            response = session.post(
                url, data=bodies[sent % len(bodies)], headers=headers, timeout=10
            )
            if response.status_code != 202:
                raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
            sent += 1
        return sent, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "receiver.db")
        with ReceiverProcess(db_path=db_path, api_key=API_KEY) as receiver:
            for batch_size in (100, 1):
                bodies = encode_bodies(batch_size)
                receiver.reset()
                sent, elapsed = hammer(f"{receiver.url}/v3/events", bodies, args.seconds)
                stored = receiver.stats()["events_accepted"]
                expected = (sent + 10) * batch_size  # the warm-up requests are stored too
                if stored != expected:
                    raise RuntimeError(f"receiver stored {stored} events, expected {expected}")
                print(
                    f"{batch_size:>3} events/request: {sent / elapsed:8,.0f} requests/s "
                    f"{sent * batch_size / elapsed:9,.0f} events/s "
                    f"({sent} requests in {elapsed:.1f} s, "
                    f"{sum(map(len, bodies)) // len(bodies):,} bytes/request)"
                )


if __name__ == "__main__":
    main()
