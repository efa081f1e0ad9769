"""Shared fixtures: a real receiver on 127.0.0.1 and clean global state per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import odp_logging
from odp_logging import _client
from odp_logging.server import Receiver

API_KEY = "test-public-key-0001"
"""The key tests send; a test fails if it appears in any output (see test_secrets)."""


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[Receiver]:
    """A running local ODP receiver that expects ``API_KEY``."""
    with Receiver(api_key=API_KEY) as receiver:
        yield receiver


@pytest.fixture(name="client_options")
def _client_options(receiver: Receiver) -> dict[str, object]:
    """Options pointing a client at the receiver, with a short flush interval."""
    return {"api_key": API_KEY, "api_host": receiver.url, "flush_interval": 0.05}


@pytest.fixture(name="client")
def _client_fixture(client_options: dict[str, object]) -> Iterator[odp_logging.OdpClient]:
    """An OdpClient delivering to the receiver, closed after the test."""
    client = odp_logging.OdpClient(**client_options)  # type: ignore[arg-type]
    yield client
    client.close(timeout=2)


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep ODP_* variables out, and restore logging and the shared clients after each test."""
    import os

    for name in list(os.environ):
        if name.startswith("ODP_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    odp_logger = logging.getLogger("odp_logging")
    odp_handlers, odp_level, odp_propagate = (
        odp_logger.handlers[:],
        odp_logger.level,
        odp_logger.propagate,
    )
    yield
    _client.close_all(timeout=2)
    root.handlers[:] = handlers
    root.setLevel(level)
    odp_logger.handlers[:] = odp_handlers
    odp_logger.setLevel(odp_level)
    odp_logger.propagate = odp_propagate
