"""odp_logging.testing: the in-process capture and the pytest plugin users get."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from pathlib import Path

import pytest

import odp_logging
from odp_logging.testing import TEST_API_KEY, capture_odp_events
from tests.conftest import API_KEY

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
USER = {"fs_user_id": "user123"}


def plugin_args() -> list[str]:
    """Load the plugin by its entry point when installed with one, else with ``-p``."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    if any(entry.value == "odp_logging.testing" for entry in entry_points):
        return []
    return ["-p", "odp_logging.testing"]


@pytest.fixture(name="user_pytest")
def _user_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses import this checkout of odp_logging."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    return pytester


def run_user_tests(pytester: pytest.Pytester) -> pytest.RunResult:
    """Run the user's tests in a pytest subprocess with the plugin loaded."""
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", timeout=60)


class TestOdpEvents:
    def test_assert_sent_returns_the_newest_match(self):
        """assert_sent matches a subset of identifiers and data and returns the newest match."""
        with capture_odp_events() as odp_events:
            client = odp_logging.get_client()
            client.send_odp_event("purchased", identifiers=USER, data={"item": "a", "n": 1})
            client.send_odp_event("purchased", identifiers=USER, data={"item": "a", "n": 2})

            event = odp_events.assert_sent("purchased", identifiers=USER, data={"item": "a"})

        assert 2 == event["data"]["n"]
        assert {"type", "action", "identifiers", "data"} == set(event)

    def test_a_miss_lists_what_was_sent_and_dropped(self):
        """A failed assert_sent names the wanted event, the sent ones and the drops by reason."""
        with capture_odp_events() as odp_events:
            client = odp_logging.get_client()
            client.send_odp_event("added_to_cart", identifiers=USER, data={"item": "shirt"})
            client.send_odp_event("purchased", identifiers=USER, data={"bad": [1]})

            with pytest.raises(AssertionError) as failure:
                odp_events.assert_sent("purchased", identifiers=USER)

        expected = (
            "no ODP event 'purchased' with identifiers {'fs_user_id': 'user123'} was sent\n"
            "sent (1):\n"
            "  'added_to_cart' identifiers={'fs_user_id': 'user123'} data={'item': 'shirt'}\n"
            "dropped by the client: invalid_data=1 (the odp_logging warnings say why)"
        )
        assert expected == str(failure.value)

    def test_identifiers_compare_as_sent_and_type_is_checked(self):
        """An int identifier matches its text, and type= must equal the event's type."""
        with capture_odp_events() as odp_events:
            odp_logging.get_client().send_odp_event("a", identifiers={"customer_id": 42})

            odp_events.assert_sent("a", identifiers={"customer_id": 42}, type="fullstack")
            with pytest.raises(AssertionError):
                odp_events.assert_sent("a", type="custom")

    def test_assert_not_sent(self):
        """assert_not_sent fails exactly when a matching event was sent."""
        with capture_odp_events() as odp_events:
            odp_logging.get_client().send_odp_event("a", identifiers=USER, data={"x": 1})

            odp_events.assert_not_sent("b")
            odp_events.assert_not_sent("a", data={"x": 2})
            with pytest.raises(AssertionError, match="an ODP event 'a' was sent"):
                odp_events.assert_not_sent("a")

    def test_events_filter_and_clear(self):
        """events() filters by action and identifier; clear() forgets what was received."""
        with capture_odp_events() as odp_events:
            client = odp_logging.get_client()
            client.send_odp_event("a", identifiers={"fs_user_id": "u1"})
            client.send_odp_event("b", identifiers={"fs_user_id": "u2"})

            assert ["b"] == [e["action"] for e in odp_events.events(identifier="fs_user_id=u2")]
            assert ["a"] == [e["action"] for e in odp_events.events(action="a")]
            odp_events.clear()
            assert [] == odp_events.events()


class TestCaptureOdpEvents:
    def test_integrations_made_before_the_capture_send_to_it(self, caplog):
        """A handler on the shared client built before the capture is redirected, then restored."""
        caplog.set_level(logging.ERROR, "odp_logging")  # the unconfigured client's warning
        handler = odp_logging.OdpHandler()
        log = logging.getLogger("test_testing.shop")
        log.addHandler(handler)
        try:
            with capture_odp_events() as odp_events:
                with odp_logging.context(identifiers=USER):
                    log.warning("purchased", extra={"odp": {"data": {"item": "shirt"}}})
                odp_events.assert_sent("purchased", identifiers=USER, data={"item": "shirt"})
        finally:
            log.removeHandler(handler)

        assert handler.client is odp_logging.get_client()
        assert not handler.client.closed
        assert handler.client.options.api_key is None

    def test_shared_clients_made_inside_are_closed_on_exit(self):
        """A shared client created during the capture is closed; later ones are new."""
        with capture_odp_events():
            inside = odp_logging.get_client()

        assert inside.closed
        assert inside is not odp_logging.get_client()

    def test_the_odp_environment_is_replaced_then_restored(self, monkeypatch):
        """Inside, only the capture's ODP_* variables are set; outside, the user's are back."""
        monkeypatch.setenv("ODP_API_KEY", API_KEY)
        monkeypatch.setenv("ODP_SPOOL_PATH", "/nonexistent/spool.db")

        with capture_odp_events() as odp_events:
            inside = {k: v for k, v in os.environ.items() if k.startswith("ODP_")}

        assert {"ODP_API_KEY", "ODP_API_HOST", "ODP_FLUSH_INTERVAL"} == set(inside)
        assert (TEST_API_KEY, odp_events.url) == (inside["ODP_API_KEY"], inside["ODP_API_HOST"])
        assert API_KEY == os.environ["ODP_API_KEY"]
        assert "/nonexistent/spool.db" == os.environ["ODP_SPOOL_PATH"]

    def test_clients_with_explicit_options_are_left_alone(self, client, receiver):
        """A client built with its own key and host keeps sending there."""
        with capture_odp_events() as odp_events:
            client.send_odp_event("mine", identifiers=USER)
            assert client.flush(5)

            assert [] == odp_events.events()
        assert ["mine"] == [event["action"] for event in receiver.events()]


class TestPlugin:
    def test_fixtures_in_a_users_test_session(self, user_pytest):
        """odp_events and odp_receiver work in a user's tests, one capture per test."""
        user_pytest.makepyfile(
            test_user="""
            import logging

            import odp_logging
            from odp_logging.server import Fault

            HANDLER = odp_logging.OdpHandler()  # built at import, before any fixture
            logging.getLogger().addHandler(HANDLER)
            log = logging.getLogger("shop")

            def test_logged_event(odp_events):
                log.warning("purchased", extra={"odp": {"identifiers": {"fs_user_id": "u1"}}})
                odp_events.assert_sent("purchased", identifiers={"fs_user_id": "u1"})

            def test_each_test_starts_empty(odp_events):
                assert odp_events.events() == []

            def test_receiver_faults(odp_receiver, odp_events):
                odp_receiver.inject(Fault("status", status=500))
                odp_logging.get_client().send_odp_event("a", identifiers={"vuid": "v1"})
                odp_events.assert_sent("a")
                assert [500, 202] == [r["status"] for r in odp_receiver.requests()]
            """
        )

        run_user_tests(user_pytest).assert_outcomes(passed=3)

    def test_a_failed_assertion_reads_well(self, user_pytest):
        """A failing assert_sent shows the wanted event and what was sent instead."""
        user_pytest.makepyfile(
            test_user="""
            import odp_logging

            def test_view(odp_events):
                odp_logging.get_client().send_odp_event("viewed", identifiers={"vuid": "v1"})
                odp_events.assert_sent("purchased")
            """
        )

        result = run_user_tests(user_pytest)

        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*AssertionError: no ODP event 'purchased' was sent", "*sent (1):", "*'viewed'*"]
        )

    def test_a_session_without_the_fixtures_is_untouched(self, user_pytest):
        """Without its fixtures the plugin imports no integration and starts no thread."""
        user_pytest.makepyfile(
            test_user="""
            import sys
            import threading

            def test_nothing_loaded():
                loaded = [m for m in ("structlog", "opentelemetry", "odp_logging.server")
                          if m in sys.modules]
                assert loaded == []
                assert [t.name for t in threading.enumerate()] == ["MainThread"]
            """
        )

        run_user_tests(user_pytest).assert_outcomes(passed=1)

    def test_the_docs_example_passes_as_written(self, user_pytest):
        """The shop.py and test_shop.py blocks of docs/testing.md pass as they stand."""
        pytest.importorskip("flask")
        blocks: dict[str, str] = {}
        docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
        for name, code in re.findall(r'```python title="(\S+)"\n(.*?)```', docs, re.DOTALL):
            blocks[name] = blocks.get(name, "") + code
        assert {"shop.py", "test_shop.py"} == set(blocks)
        for name, code in blocks.items():
            (user_pytest.path / name).write_text(code, encoding="utf-8")

        run_user_tests(user_pytest).assert_outcomes(passed=3)
