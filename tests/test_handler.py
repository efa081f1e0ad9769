"""OdpHandler against the real receiver: records to events, dictConfig, structlog, no loops."""

from __future__ import annotations

import logging
import logging.config
import logging.handlers
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

import odp_logging
from odp_logging import OdpHandler
from odp_logging.server import Receiver
from tests.conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-test"
"""Read by the dictConfig tests through ``ext://tests.test_handler.REGION``."""

_DEFAULT_DATA = frozenset(
    {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
)
USER = {"fs_user_id": "user123"}


def _events(receiver: Receiver) -> list[dict[str, Any]]:
    """The received events, reduced to what the tests compare (no default data)."""
    return [
        {
            "action": event["action"],
            "type": event["type"],
            "identifiers": event["identifiers"],
            "data": {k: v for k, v in event.get("data", {}).items() if k not in _DEFAULT_DATA},
        }
        for event in receiver.events()
    ]


def _event(action: str, data: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An expected event, as ``_events`` reduces it."""
    return {
        "action": action,
        "type": fields.get("type", "fullstack"),
        "identifiers": fields.get("identifiers", USER),
        "data": dict(data or {}),
    }


@pytest.fixture(name="logger")
def _logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of the test's own, at DEBUG, not propagating (pytest's handlers stay out)."""
    logger = logging.getLogger(f"tests.handler.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)


@pytest.fixture(name="handler")
def _handler(logger: logging.Logger, client: odp_logging.OdpClient) -> OdpHandler:
    """An OdpHandler on ``logger``, sending with the ``client`` fixture."""
    handler = OdpHandler(client=client)
    logger.addHandler(handler)
    return handler


@pytest.fixture(name="saved_logging")
def _saved_logging() -> Iterator[None]:
    """Restore every logger's handlers, level, propagation and disabled flag after the test."""

    def loggers() -> list[logging.Logger]:
        manager = logging.root.manager
        return [logging.root] + [
            lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
        ]

    saved = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers()}
    yield
    for logger in loggers():
        handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


class _Recorder(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(name="debug_http")
def _debug_http(saved_logging: None) -> list[logging.LogRecord]:
    """Root, urllib3 and requests at DEBUG; returns every record the root logger handles."""
    recorder = _Recorder()
    logging.root.addHandler(recorder)
    logging.root.setLevel(logging.DEBUG)
    for name in ("urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return recorder.records


def _dict_config(handler: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """A dictConfig with ``handler`` as "odp" on the root logger at INFO."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"odp": dict(handler)},
        "root": {"handlers": ["odp"], "level": "INFO"},
        **extra,
    }


def _configured_handler() -> OdpHandler:
    """The OdpHandler dictConfig put on the root logger."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, OdpHandler)]
    assert len(handlers) == 1
    return handlers[0]


class TestRecordsToEvents:
    """How a record and its ``odp`` payload become an event."""

    def test_message_is_the_action(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """The record's message is the action; identifiers and data come from the payload."""
        logger.info(
            "purchased",
            extra={"odp": {"identifiers": USER, "data": {"item": "shirt", "price": 50.0}}},
        )
        handler.flush()
        assert [_event("purchased", {"item": "shirt", "price": 50.0})] == _events(receiver)

    def test_message_arguments_are_formatted(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """The default action is ``record.getMessage()``, arguments merged in."""
        logger.info("bought %s x%d", "shirt", 2, extra={"odp": {"identifiers": USER}})
        handler.flush()
        assert [_event("bought shirt x2")] == _events(receiver)

    def test_payload_overrides_action_and_type(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """``action`` and ``type`` in the payload win over the message and the default type."""
        odp = {"action": "purchase", "type": "commerce", "identifiers": USER}
        logger.info("checkout finished", extra={"odp": odp})
        handler.flush()
        assert [_event("purchase", type="commerce")] == _events(receiver)

    def test_message_not_formatted_when_payload_names_the_action(
        self, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """With an ``action`` in the payload, the record's message is never formatted."""
        formatted = []

        class Argument:
            def __str__(self) -> str:
                formatted.append(self)
                return "argument"

        odp = {"action": "a", "identifiers": USER}
        handler.handle(
            logging.makeLogRecord({"name": "shop", "msg": "%s", "args": (Argument(),), "odp": odp})
        )
        handler.flush()
        assert [_event("a")] == _events(receiver)
        assert [] == formatted

    def test_context_merged_under_payload(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """``odp_logging.context()`` adds identifiers and data; the payload's keys win."""
        with odp_logging.context(identifiers=USER, data={"plan": "free", "channel": "web"}):
            odp = {"identifiers": {"email": "u@example.com"}, "data": {"plan": "pro"}}
            logger.info("upgraded", extra={"odp": odp})
        handler.flush()
        identifiers = {**USER, "email": "u@example.com"}
        expected = [_event("upgraded", {"plan": "pro", "channel": "web"}, identifiers=identifiers)]
        assert expected == _events(receiver)

    def test_records_without_payload_are_ignored(
        self,
        logger: logging.Logger,
        handler: OdpHandler,
        client: odp_logging.OdpClient,
        receiver: Receiver,
    ) -> None:
        """Plain records, ``odp=None`` and message mappings without ``odp`` send nothing."""
        with odp_logging.context(identifiers=USER):
            logger.info("plain")
            logger.info("explicit none", extra={"odp": None})
            logger.info({"event": "a mapping", "odp": None})
            logger.info({"event": "another mapping"})
            logger.info("the only event", extra={"odp": {}})
        handler.flush()
        assert [_event("the only event")] == _events(receiver)
        assert 1 == client.stats().total

    def test_bad_payloads_are_counted_drops(
        self, logger: logging.Logger, handler: OdpHandler, client: odp_logging.OdpClient
    ) -> None:
        """A payload of the wrong shape is dropped by the client and counted, not raised."""
        logger.info("not a mapping", extra={"odp": "user123"})
        logger.info("no identifiers", extra={"odp": {"data": {"a": 1}}})
        logger.info("bad data", extra={"odp": {"identifiers": USER, "data": {"a": [1]}}})
        handler.flush()
        dropped = client.stats().dropped
        assert (1, 1, 1) == (
            dropped["invalid_payload"],
            dropped["no_identifiers"],
            dropped["invalid_data"],
        )

    def test_error_while_reading_goes_to_handle_error(
        self, logger: logging.Logger, handler: OdpHandler, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An exception inside emit reaches ``handleError``, never the caller."""

        class Hostile(dict[str, Any]):
            def get(self, key: str, default: object = None) -> object:
                raise RuntimeError("hostile mapping")

        logger.info(Hostile(event="x"))
        assert "hostile mapping" in capsys.readouterr().err


class TestStructlogThroughStdlib:
    """Payloads where structlog puts them when it renders through standard logging."""

    def test_render_to_log_kwargs(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """``render_to_log_kwargs`` puts ``odp`` on the record; the event is the action."""
        log = structlog.wrap_logger(
            logger,
            processors=[structlog.stdlib.render_to_log_kwargs],
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        log.info("purchased", odp={"identifiers": USER, "data": {"price": 50.0}})
        handler.flush()
        assert [_event("purchased", {"price": 50.0})] == _events(receiver)

    def test_wrap_for_formatter(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """``wrap_for_formatter`` puts the event dict in ``record.msg``; its event is the action."""
        log = structlog.wrap_logger(
            logger,
            processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        log.info("purchased", odp={"identifiers": USER, "data": {"price": 50.0}})
        log.info("renamed", odp={"action": "signed_up", "identifiers": USER})
        handler.flush()
        assert [_event("purchased", {"price": 50.0}), _event("signed_up")] == _events(receiver)

    def test_event_that_is_not_text_is_an_invalid_action(
        self, logger: logging.Logger, handler: OdpHandler, client: odp_logging.OdpClient
    ) -> None:
        """A message mapping whose ``event`` is not text cannot name the action."""
        logger.info({"event": 42, "odp": {"identifiers": USER}})
        handler.flush()
        assert 1 == client.stats().dropped["invalid_action"]


class TestFiltersAndLevels:
    """Levels and filters work as on any handler, though ``handle`` takes no lock."""

    def test_level(self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver) -> None:
        """Records below the handler's level are not sent."""
        handler.setLevel(logging.INFO)
        logger.debug("debugged", extra={"odp": {"identifiers": USER}})
        logger.info("informed", extra={"odp": {"identifiers": USER}})
        handler.flush()
        assert [_event("informed")] == _events(receiver)

    def test_rejecting_filter(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """A filter that rejects a record keeps it from being sent; ``handle`` says so."""
        handler.addFilter(lambda record: record.getMessage() != "secret")
        logger.info("secret", extra={"odp": {"identifiers": USER}})
        logger.info("public", extra={"odp": {"identifiers": USER}})
        handler.flush()
        assert [_event("public")] == _events(receiver)
        record = logging.makeLogRecord({"msg": "secret"})
        assert (False, True) == (handler.handle(record), handler.handle(logging.makeLogRecord({})))

    def test_filter_may_add_the_payload(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """A filter that changes the record in place changes what is sent."""

        def tag(record: logging.LogRecord) -> bool:
            record.odp = {"identifiers": USER, "data": {"tagged": True}}
            return True

        handler.addFilter(tag)
        logger.info("tagged")
        handler.flush()
        assert [_event("tagged", {"tagged": True})] == _events(receiver)

    def test_filter_returning_a_record(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """A filter's replacement record is the one sent; the original is untouched."""
        if sys.version_info < (3, 12):
            pytest.skip("filters return records from 3.12")
        originals: list[logging.LogRecord] = []

        def replace(record: logging.LogRecord) -> logging.LogRecord:
            originals.append(record)
            copy = logging.makeLogRecord(record.__dict__)
            copy.odp = {"identifiers": USER}
            return copy

        handler.addFilter(replace)
        logger.info("replaced")
        handler.flush()
        assert [_event("replaced")] == _events(receiver)
        assert not hasattr(originals[0], "odp")


class TestClients:
    """Which client a handler sends with."""

    def test_equal_options_share_one_client(
        self, saved_logging: None, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Handlers built with equal options share the process-wide client."""
        first, second = OdpHandler(**client_options), OdpHandler(**client_options)
        assert first.client is second.client is odp_logging.get_client(**client_options)
        logging.getLogger("tests.handler.first").addHandler(first)
        logging.getLogger("tests.handler.second").addHandler(second)
        logging.getLogger("tests.handler.first").warning(
            "one", extra={"odp": {"identifiers": USER}}
        )
        logging.getLogger("tests.handler.second").warning(
            "two", extra={"odp": {"identifiers": USER}}
        )
        first.flush()
        assert ["one", "two"] == [event["action"] for event in _events(receiver)]

    def test_given_client(self, client: odp_logging.OdpClient) -> None:
        """``client=`` is used as it is; it cannot be combined with client options."""
        assert client is OdpHandler(client=client).client
        with pytest.raises(TypeError):
            OdpHandler(client=client, api_key=API_KEY)

    def test_invalid_option(self) -> None:
        """An invalid option is a ConfigError at construction."""
        with pytest.raises(odp_logging.ConfigError):
            OdpHandler(batch_size="many")

    def test_close_keeps_the_client(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """``close()`` may be called repeatedly, never closes the client, and drops nothing."""
        logger.info("before", extra={"odp": {"identifiers": USER}})
        handler.close()
        handler.close()
        logger.info("after", extra={"odp": {"identifiers": USER}})
        assert not handler.client.closed
        assert handler.client.flush()
        assert ["before", "after"] == [event["action"] for event in _events(receiver)]


class TestDictConfig:
    """Configuring the handler with ``logging.config.dictConfig``."""

    def test_class_form(self, saved_logging: None, receiver: Receiver) -> None:
        """The "class" form takes the level and any client option."""
        logging.config.dictConfig(
            _dict_config(
                {
                    "class": "odp_logging.OdpHandler",
                    "level": "INFO",
                    "api_key": API_KEY,
                    "api_host": receiver.url,
                    "flush_interval": "0.05",
                    "data_source": "dictconfig",
                }
            )
        )
        handler = _configured_handler()
        assert "dictconfig" == handler.client.options.data_source
        logging.getLogger("tests.handler.shop").debug(
            "peeked", extra={"odp": {"identifiers": USER}}
        )
        logging.getLogger("tests.handler.shop").info("bought", extra={"odp": {"identifiers": USER}})
        handler.flush()
        assert [_event("bought")] == _events(receiver)

    def test_factory_form(self, saved_logging: None, client_options: dict[str, Any]) -> None:
        """The "()" form builds the handler with the options as keywords."""
        logging.config.dictConfig(_dict_config({"()": "odp_logging.OdpHandler", **client_options}))
        assert odp_logging.get_client(**client_options) is _configured_handler().client

    def test_references_inside_static_data(
        self, saved_logging: None, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """``ext://`` and ``cfg://`` references inside ``static_data`` are resolved."""
        static_data = {
            "region": "ext://tests.test_handler.REGION",
            "release": "cfg://odp_settings.release",
            "service": "shop",
        }
        config = _dict_config(
            {"class": "odp_logging.OdpHandler", **client_options, "static_data": static_data},
            odp_settings={"release": "2.0.1"},
        )
        logging.config.dictConfig(config)
        logging.getLogger("tests.handler.shop").info("bought", extra={"odp": {"identifiers": USER}})
        _configured_handler().flush()
        expected = {"region": REGION, "release": "2.0.1", "service": "shop"}
        assert [_event("bought", expected)] == _events(receiver)

    def test_second_dict_config_loses_no_event(
        self, saved_logging: None, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Re-running dictConfig closes the old handler; events it queued are still delivered."""
        options = {**client_options, "flush_interval": 30}  # nothing is sent before the flush
        logging.config.dictConfig(_dict_config({"class": "odp_logging.OdpHandler", **options}))
        first = _configured_handler()
        shop = logging.getLogger("tests.handler.shop")
        shop.info("before", extra={"odp": {"identifiers": USER}})
        logging.config.dictConfig(_dict_config({"class": "odp_logging.OdpHandler", **options}))
        second = _configured_handler()
        shop.info("after", extra={"odp": {"identifiers": USER}})
        assert [] == _events(receiver)
        assert second is not first
        assert second.client is first.client
        second.flush()
        assert ["before", "after"] == [event["action"] for event in _events(receiver)]

    def test_dict_config_without_the_handler_loses_no_event(
        self, saved_logging: None, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Replacing the configuration by one without OdpHandler still delivers what was queued."""
        options = {**client_options, "flush_interval": 30}
        logging.config.dictConfig(_dict_config({"class": "odp_logging.OdpHandler", **options}))
        logging.getLogger("tests.handler.shop").info("queued", extra={"odp": {"identifiers": USER}})
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        assert odp_logging.get_client(**options).flush()
        assert ["queued"] == [event["action"] for event in _events(receiver)]

    def test_flush_does_not_wait_under_the_logging_lock(
        self, logger: logging.Logger, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Under ``logging._lock`` (dictConfig closing handlers) flush returns at once."""
        handler = OdpHandler(**{**client_options, "flush_interval": 30, "shutdown_timeout": 30})
        logger.addHandler(handler)
        logger.info("queued", extra={"odp": {"identifiers": USER}})
        started = time.monotonic()
        with logging._lock:  # type: ignore[attr-defined]
            handler.flush()
        assert time.monotonic() - started < 10  # hang guard: a wait would last 30 s
        assert [] == _events(receiver)
        handler.flush()
        assert ["queued"] == [event["action"] for event in _events(receiver)]


class TestNoLoops:
    """Records odp-logging produces itself never become events."""

    def test_http_debug_records_on_the_root_logger(
        self,
        debug_http: list[logging.LogRecord],
        client_options: dict[str, Any],
        receiver: Receiver,
    ) -> None:
        """With the handler on root at DEBUG and urllib3 logging, each event is sent once."""
        handler = OdpHandler(**client_options)
        logging.getLogger().addHandler(handler)
        for i in range(3):
            logging.getLogger("tests.handler.shop").info(
                "bought", extra={"odp": {"identifiers": USER, "data": {"i": i}}}
            )
            handler.flush()
        handler.flush()
        worker_records = [r for r in debug_http if r.threadName == "odp-logging-worker"]
        assert any(r.name.startswith("urllib3") for r in worker_records)
        assert 3 == len(_events(receiver)) == handler.client.stats().total

    def test_filter_that_tags_every_record(
        self,
        debug_http: list[logging.LogRecord],
        client_options: dict[str, Any],
        receiver: Receiver,
    ) -> None:
        """A filter adding a payload to every record still only sends the application's."""

        def tag(record: logging.LogRecord) -> bool:
            record.odp = {"identifiers": USER}
            return True

        handler = OdpHandler(**client_options)
        handler.addFilter(tag)
        logging.getLogger().addHandler(handler)
        logging.getLogger("tests.handler.shop").info("visited")
        logging.getLogger("odp_logging.tests").warning("our own diagnostics")
        handler.flush()
        handler.flush()  # would deliver events made of the first request's urllib3 records
        assert any(r.name.startswith("urllib3") for r in debug_http)
        assert ["visited"] == [event["action"] for event in _events(receiver)]
        assert 1 == handler.client.stats().total

    def test_flush_under_the_handler_lock(
        self,
        debug_http: list[logging.LogRecord],
        client_options: dict[str, Any],
        receiver: Receiver,
    ) -> None:
        """As in ``logging.shutdown()``: flush under the handler's lock while the worker logs."""
        handler = OdpHandler(**{**client_options, "flush_interval": 30})
        logging.getLogger().addHandler(handler)
        logging.getLogger("tests.handler.shop").info("bought", extra={"odp": {"identifiers": USER}})
        handler.acquire()
        try:
            handler.flush()
        finally:
            handler.release()
        assert ["bought"] == [event["action"] for event in _events(receiver)]


class TestOtherWiring:
    """QueueHandler/QueueListener and LoggerAdapter in front of the handler."""

    def test_behind_queue_listener(
        self, logger: logging.Logger, client: odp_logging.OdpClient, receiver: Receiver
    ) -> None:
        """A record handed over by a QueueListener keeps its payload and formatted message."""
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        logger.addHandler(logging.handlers.QueueHandler(records))
        listener = logging.handlers.QueueListener(records, OdpHandler(client=client))
        listener.start()
        try:
            logger.info("bought %s", "shirt", extra={"odp": {"identifiers": USER}})
        finally:
            listener.stop()
        client.flush()
        assert [_event("bought shirt")] == _events(receiver)

    def test_queue_handler_in_dict_config(
        self, saved_logging: None, client_options: dict[str, Any], receiver: Receiver
    ) -> None:
        """Python 3.12's dictConfig form: a QueueHandler whose listener feeds OdpHandler."""
        if sys.version_info < (3, 12):
            pytest.skip("dictConfig builds listeners from 3.12")
        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "odp": {"class": "odp_logging.OdpHandler", **client_options},
                "queued": {"class": "logging.handlers.QueueHandler", "handlers": ["odp"]},
            },
            "root": {"handlers": ["queued"], "level": "INFO"},
        }
        logging.config.dictConfig(config)
        queued = logging.getHandlerByName("queued")
        assert isinstance(queued, logging.handlers.QueueHandler)
        assert queued.listener is not None
        queued.listener.start()
        try:
            logging.getLogger("tests.handler.shop").info(
                "bought", extra={"odp": {"identifiers": USER}}
            )
        finally:
            queued.listener.stop()
        odp_logging.get_client(**client_options).flush()
        assert [_event("bought")] == _events(receiver)

    def test_logger_adapter_extra(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """A LoggerAdapter's own ``extra`` carries the payload of every call through it."""
        adapter = logging.LoggerAdapter(logger, {"odp": {"identifiers": USER}})
        adapter.info("signed_up")
        handler.flush()
        assert [_event("signed_up")] == _events(receiver)

    def test_logger_adapter_merge_extra(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """With ``merge_extra=True`` a call's own ``odp`` replaces the adapter's."""
        if sys.version_info < (3, 13):
            pytest.skip("merge_extra is new in 3.13")
        adapter = logging.LoggerAdapter(logger, {"odp": {"identifiers": USER}}, merge_extra=True)
        adapter.info("paid", extra={"odp": {"identifiers": {"email": "u@example.com"}}})
        handler.flush()
        assert [_event("paid", identifiers={"email": "u@example.com"})] == _events(receiver)

    def test_concurrent_threads(
        self, logger: logging.Logger, handler: OdpHandler, receiver: Receiver
    ) -> None:
        """Threads logging at once through the lock-free handler lose no event."""

        def log_many(thread: int) -> None:
            for i in range(50):
                logger.info(
                    "bought", extra={"odp": {"identifiers": USER, "data": {"n": thread * 100 + i}}}
                )

        threads = [threading.Thread(target=log_many, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handler.flush()
        received = sorted(event["data"]["n"] for event in _events(receiver))
        assert sorted(t * 100 + i for t in range(4) for i in range(50)) == received


class TestExamples:
    """The logging examples run as documented, against a local receiver."""

    @pytest.mark.parametrize(
        ("script", "events"),
        [("logging_basic.py", 2), ("logging_dictconfig.py", 2), ("django_settings.py", 1)],
    )
    def test_example(self, script: str, events: int) -> None:
        """``python examples/<script>`` delivers its events with no ODP account."""
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "examples" / script)],
            env={**os.environ, "PYTHONPATH": pythonpath},
            capture_output=True,
            text=True,
            timeout=60,  # hang guard
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert f"received {events} events" in result.stdout
