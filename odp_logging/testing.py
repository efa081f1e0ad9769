"""Test your own code's ODP events: an in-process capture and a pytest plugin.

``capture_odp_events()`` starts a local receiver inside the test process (events stay
in memory) and points the process-wide default client at it: the client that
``OdpHandler()``, ``OdpProcessor()``, ``OdpSpanProcessor()`` and ``get_client()`` use
when they are given no options, including integrations created before the capture
began (say by Django's ``LOGGING`` setting). Events travel the real path, through the
client's rules and over HTTP, so a test sees exactly what ODP would receive.

pytest loads this module as a plugin (the ``pytest11`` entry point ``odp_logging``) and
gets two fixtures, which cost nothing to tests that do not ask for them:

* ``odp_events``: an :class:`OdpEvents` capture for the test, with ``assert_sent``;
* ``odp_receiver``: the :class:`odp_logging.server.Receiver` behind it, for fault
  injection (``odp_receiver.inject(Fault("status", status=503))``).

See ``docs/testing.md``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from odp_logging._client import OdpClient
    from odp_logging._config import Options
    from odp_logging.server import Receiver

__all__ = ["OdpEvents", "capture_odp_events"]

TEST_API_KEY: Final = "odp-testing-public-key"
"""The key the redirected clients send; the capture's receiver accepts any key."""
_FLUSH_INTERVAL: Final = 0.05
_SETTLE_TIMEOUT: Final = 5.0
"""Most seconds to wait for a client to deliver to the local receiver."""
_SDK_DATA: Final = frozenset(
    {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
)


class OdpEvents:
    """The ODP events sent during a capture, and assertions about them.

    Every read first flushes the clients that send to the capture's receiver, so an
    event logged on the line before is there. Events are plain dicts as ODP received
    them: ``type``, ``action``, ``identifiers`` (strings) and ``data`` (JSON values,
    including the ``idempotence_id`` and ``data_source*`` keys the client adds).

    Args:
        receiver: The started receiver the clients send to.
    """

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def __repr__(self) -> str:
        return f"OdpEvents(url={self.url!r})"

    @property
    def receiver(self) -> Receiver:
        """The receiver behind the capture (fault injection, request log)."""
        return self._receiver

    @property
    def url(self) -> str:
        """The receiver's base URL, the ``api_host`` of the redirected clients."""
        return self._receiver.url

    def flush(self) -> bool:
        """Wait until every client sending here has delivered what it queued.

        Returns:
            True when all of them settled within a few seconds.
        """
        return all([client.flush(_SETTLE_TIMEOUT) for client in self._clients()])

    def events(
        self, action: str | None = None, identifier: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the events sent so far, oldest first.

        Args:
            action: Keep only events with this action.
            identifier: Keep only events with an identifier of this value, or
                ``name=value``.
        """
        self.flush()
        return [
            {key: event[key] for key in ("type", "action", "identifiers", "data") if key in event}
            for event in self._receiver.events(action, identifier)
        ]

    def dropped(self) -> dict[str, int]:
        """Return the events the clients dropped instead of sending, by reason.

        Useful to assert that bad input was refused, e.g. ``{"invalid_data": 1}``.
        """
        self.flush()
        totals: dict[str, int] = {}
        for client in self._clients():
            for reason, count in client.stats().dropped.items():
                if count:
                    totals[reason] = totals.get(reason, 0) + count
        return totals

    def assert_sent(
        self,
        action: str,
        *,
        identifiers: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        type: str | None = None,
    ) -> dict[str, Any]:
        """Assert that an event with ``action`` and these fields was sent; return it.

        ``identifiers`` and ``data`` match when the event has at least these keys
        with these values (other keys may be there too); identifier values compare as
        strings, as the client sends them.

        Returns:
            The newest matching event.

        Raises:
            AssertionError: No sent event matches; the message lists what was sent.
        """
        events = self.events()
        matching = [e for e in events if _matches(e, action, identifiers, data, type)]
        if not matching:
            wanted = _describe_wanted(action, identifiers, data, type)
            raise AssertionError(f"no ODP event {wanted} was sent\n{self._report(events)}")
        return matching[-1]

    def assert_not_sent(
        self,
        action: str,
        *,
        identifiers: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        """Assert that no event with ``action`` (and these fields, if given) was sent.

        Raises:
            AssertionError: Some sent event matches; the message lists what was sent.
        """
        events = self.events()
        if any(_matches(e, action, identifiers, data, None) for e in events):
            wanted = _describe_wanted(action, identifiers, data, None)
            raise AssertionError(f"an ODP event {wanted} was sent\n{self._report(events)}")

    def clear(self) -> None:
        """Deliver what is queued, then forget every event received so far."""
        self.flush()
        self._receiver.reset()

    def _clients(self) -> list[OdpClient]:
        """The live clients of this process that send to the receiver."""
        from odp_logging import _client

        return [c for c in list(_client._live_clients) if c.options.api_host == self.url]

    def _report(self, events: list[dict[str, Any]]) -> str:
        lines = [f"sent ({len(events)}):" if events else "sent: nothing"]
        lines += [f"  {_describe(event)}" for event in events]
        dropped = self.dropped()
        if dropped:
            reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(dropped.items()))
            lines.append(f"dropped by the client: {reasons} (the odp_logging warnings say why)")
        return "\n".join(lines)


def _matches(
    event: Mapping[str, Any],
    action: str,
    identifiers: Mapping[str, object] | None,
    data: Mapping[str, object] | None,
    event_type: str | None,
) -> bool:
    if event["action"] != action or (event_type is not None and event["type"] != event_type):
        return False
    sent_ids, sent_data = event["identifiers"], event.get("data", {})
    return all(sent_ids.get(k) == str(v) for k, v in (identifiers or {}).items()) and all(
        k in sent_data and sent_data[k] == v for k, v in (data or {}).items()
    )


def _describe_wanted(
    action: str,
    identifiers: Mapping[str, object] | None,
    data: Mapping[str, object] | None,
    event_type: str | None,
) -> str:
    parts = [repr(action)]
    if event_type is not None:
        parts.append(f"of type {event_type!r}")
    if identifiers:
        parts.append(f"with identifiers {dict(identifiers)!r}")
    if data:
        parts.append(f"with data {dict(data)!r}")
    return " ".join(parts)


def _describe(event: Mapping[str, Any]) -> str:
    own_data = {k: v for k, v in event.get("data", {}).items() if k not in _SDK_DATA}
    return f"{event['action']!r} identifiers={event['identifiers']!r} data={own_data!r}"


@contextlib.contextmanager
def capture_odp_events() -> Iterator[OdpEvents]:
    """Capture the ODP events sent inside the block, for assertions.

    Starts a receiver on a free loopback port, sets the ``ODP_*`` environment to it
    (and clears the other ``ODP_*`` variables), and points the open shared clients at
    it. On exit, delivers what is queued, closes the shared clients made inside the
    block, puts the earlier ones back as they were and restores the environment.

    Clients you built yourself with explicit options keep sending where you told them.

    Example:
        >>> with capture_odp_events() as odp_events:
        ...     checkout(user_id="user123")
        ...     odp_events.assert_sent("purchased", identifiers={"fs_user_id": "user123"})
    """
    from odp_logging.server import Receiver

    with Receiver() as receiver, _environment(receiver.url), _shared_clients_sending_to(receiver):
        yield OdpEvents(receiver)


@contextlib.contextmanager
def _environment(url: str) -> Iterator[None]:
    """Replace the ``ODP_*`` variables by the ones pointing at ``url``, then restore them."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("ODP_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(
        ODP_API_KEY=TEST_API_KEY, ODP_API_HOST=url, ODP_FLUSH_INTERVAL=str(_FLUSH_INTERVAL)
    )
    try:
        yield
    finally:
        for name in [name for name in os.environ if name.startswith("ODP_")]:
            del os.environ[name]
        os.environ.update(saved)


@contextlib.contextmanager
def _shared_clients_sending_to(receiver: Receiver) -> Iterator[None]:
    """Point the open shared clients at ``receiver``; on exit, restore or close them."""
    from odp_logging import _client

    with _client._shared_lock:
        earlier = {client: client.options for client in _client._shared.values()}
    earlier = {client: options for client, options in earlier.items() if not client.closed}
    for client, options in earlier.items():
        _restart(client, _redirected(options, receiver.url))
    try:
        yield
    finally:
        with _client._shared_lock:
            made_inside = [c for c in _client._shared.values() if c not in earlier]
        for client in made_inside:
            client.close(_SETTLE_TIMEOUT)
        for client, options in earlier.items():
            _restart(client, options)


def _redirected(options: Options, url: str) -> Options:
    """The options of a shared client, sending to ``url`` instead.

    Only what shapes the events is kept; where and whether to send (key, host,
    datafile, spool, ``enabled``) comes from the test.
    """
    from odp_logging._config import Options

    return Options.resolve(
        environ={},
        api_key=TEST_API_KEY,
        api_host=url,
        flush_interval=_FLUSH_INTERVAL,
        batch_size=options.batch_size,
        max_queue_size=options.max_queue_size,
        data_source=options.data_source,
        static_data=dict(options.static_data),
    )


def _restart(client: OdpClient, options: Options) -> None:
    """Close ``client``, then start it again with ``options``, as the same object.

    Integrations keep a reference to their client, so redirecting them means changing
    the client in place. The shared clients always use the default retry policy.
    """
    from odp_logging._retry import RetryPolicy

    client.close(_SETTLE_TIMEOUT)
    client._init(options, RetryPolicy())


# -- the pytest plugin ----------------------------------------------------------------


@pytest.fixture(name="odp_events")
def _odp_events() -> Iterator[OdpEvents]:
    """The ODP events the test's code sends, via the default client (see ``OdpEvents``)."""
    with capture_odp_events() as events:
        yield events


@pytest.fixture(name="odp_receiver")
def _odp_receiver(odp_events: OdpEvents) -> Receiver:
    """The local receiver the default client sends to during the test."""
    return odp_events.receiver
