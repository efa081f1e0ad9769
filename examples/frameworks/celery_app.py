"""Celery: tasks that log ODP events, delivered when the worker shuts down at the latest.

Run: ``python examples/frameworks/celery_app.py``

It starts a real worker (``celery -A celery_app worker``, prefork pool of two processes) on
a filesystem broker in a temporary folder, so no broker server is needed; queues four
tasks, waits for them, stops the worker with SIGTERM (a warm shutdown) and shows the
events that arrived.

Two things to know with Celery:

* The worker takes over the root logger, so attach the handler to your own logger, here
  in ``after_setup_logger`` (or configure everything yourself in ``setup_logging``).
* Prefork pool processes end with ``os._exit``, which skips ``atexit``: flush the client
  in ``worker_process_shutdown``, or events queued just before a shutdown are lost.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _local import odp_destination, report
from celery import Celery
from celery.signals import after_setup_logger, worker_process_shutdown

import odp_logging

HERE = Path(__file__).resolve().parent
app = Celery("celery_app")


def use_folder(folder: str) -> None:
    """Use a broker and a result store in ``folder``: no server, shared through the disk."""
    for sub in ("queue", "results", "control"):
        Path(folder, sub).mkdir(exist_ok=True)
    app.conf.update(
        broker_url="filesystem://",  # in production: your broker's URL
        result_backend=f"file://{folder}/results",
        broker_transport_options={
            "data_folder_in": f"{folder}/queue",
            "data_folder_out": f"{folder}/queue",
            "control_folder": f"{folder}/control",
            "polling_interval": 0.1,
        },
    )


if "CELERY_EXAMPLE_DIR" in os.environ:  # in the worker that main() starts
    use_folder(os.environ["CELERY_EXAMPLE_DIR"])
log = logging.getLogger("shop")


@after_setup_logger.connect
def send_odp_events(**_: Any) -> None:
    """In the worker: events logged on "shop" go to ODP (key from ODP_API_KEY)."""
    log.addHandler(odp_logging.OdpHandler())
    log.setLevel(logging.INFO)


@worker_process_shutdown.connect
def deliver_odp_events(**_: Any) -> None:
    """In each pool process, before it exits: send what is still queued."""
    odp_logging.get_client().flush()  # the shared client behind OdpHandler()


@app.task
def capture_payment(user_id: str, amount: float) -> int:
    """Capture a payment and record it as an ODP event; returns the process id."""
    with odp_logging.context(identifiers={"fs_user_id": user_id}):
        log.info("payment_captured", extra={"odp": {"data": {"amount": amount}}})
    return os.getpid()


def main() -> None:
    """Run a worker, queue tasks, stop the worker, and show what arrived."""
    with odp_destination() as receiver, tempfile.TemporaryDirectory() as folder:
        os.environ["CELERY_EXAMPLE_DIR"] = folder
        use_folder(folder)
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "celery_app", "--quiet", "worker"),
                *("--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle"),
            ],
            cwd=HERE,
        )
        try:
            results = [capture_payment.delay(f"user{n}", 10.0 * n) for n in range(1, 5)]
            pids = {result.get(timeout=60, interval=0.1) for result in results}
            print(f"4 tasks ran in {len(pids)} pool process(es)")
        finally:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish first
            worker.wait(timeout=60)
        report(receiver)


if __name__ == "__main__":
    main()
