"""odp_logging.structlog against the real receiver: OdpProcessor in every structlog setup."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    clear_contextvars,
    merge_contextvars,
    unbind_contextvars,
)

import odp_logging
from odp_logging.server import Receiver
from odp_logging.structlog import OdpProcessor
from tests.conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = frozenset(
    {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
)
PURCHASE = {"identifiers": {"fs_user_id": "u1"}, "data": {"price": 50.0}}


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Restore structlog's default configuration and an empty contextvars context."""
    yield
    structlog.reset_defaults()
    clear_contextvars()


def _events(receiver: Receiver, client: odp_logging.OdpClient) -> list[dict[str, Any]]:
    """Flush ``client``; return the received events without their default data."""
    assert client.flush(timeout=5)
    return [
        {
            "action": event["action"],
            "type": event["type"],
            "identifiers": event["identifiers"],
            "data": {k: v for k, v in event.get("data", {}).items() if k not in DEFAULT_DATA},
        }
        for event in receiver.events()
    ]


def _event(action: str, identifiers: Mapping[str, str], data: Mapping[str, Any] | None = None):
    """An expected received event of type fullstack."""
    return {"action": action, "type": "fullstack", "identifiers": identifiers, "data": data or {}}


def _native(processor: OdpProcessor, *, contextvars: bool = True) -> io.StringIO:
    """Configure structlog to render JSON lines with ``processor`` to a buffer; return it."""
    out = io.StringIO()
    structlog.configure(
        processors=[
            *([merge_contextvars] if contextvars else []),
            processor,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
    )
    return out


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written to ``out``."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


class _Records(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _stdlib_root(*handlers: logging.Handler) -> None:
    """Attach ``handlers`` to the root logger at INFO (conftest restores it)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in handlers:
        root.addHandler(handler)


class TestOdpProcessor:
    """Construction, the client it uses and what it shows of itself."""

    def test_client_options_use_shared_client(self, client_options: dict[str, Any]) -> None:
        """Without ``client=``, the options select the process-wide shared client."""
        processor = OdpProcessor(**client_options)
        assert processor.client is odp_logging.get_client(**client_options)

    def test_client_and_options_conflict(self, client: odp_logging.OdpClient) -> None:
        """``client=`` together with client options is a TypeError."""
        with pytest.raises(TypeError, match="either client= or client options"):
            OdpProcessor(client=client, api_key=API_KEY)

    def test_invalid_option(self) -> None:
        """A bad client option is a ConfigError at construction, not at the first event."""
        with pytest.raises(odp_logging.ConfigError):
            OdpProcessor(batch_size=0)

    def test_repr_hides_key(self, client: odp_logging.OdpClient) -> None:
        """The repr shows the options but never the api key."""
        text = repr(OdpProcessor(client=client, drop=True))
        assert API_KEY not in text
        assert "keep=False, drop=True" in text

    def test_slots(self, client: odp_logging.OdpClient) -> None:
        """Instances carry no per-instance ``__dict__``."""
        assert not hasattr(OdpProcessor(client=client), "__dict__")


class TestEventMapping:
    """How an event dict becomes an ODP event."""

    def test_action_from_event(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """Without ``odp["action"]`` the event dict's ``event`` is the action."""
        _native(OdpProcessor(client=client))
        structlog.get_logger().info("purchased", odp=PURCHASE, other="not sent")
        assert [_event("purchased", {"fs_user_id": "u1"}, {"price": 50.0})] == _events(
            receiver, client
        )

    def test_action_and_type_from_payload(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """``odp["action"]`` and ``odp["type"]`` override the defaults."""
        _native(OdpProcessor(client=client))
        payload = {"action": "bought", "type": "commerce", "identifiers": {"email": "e@x"}}
        structlog.get_logger().info("checkout finished", odp=payload)
        expected = {"action": "bought", "type": "commerce", "identifiers": {"email": "e@x"}}
        assert [{**expected, "data": {}}] == _events(receiver, client)

    def test_merged_over_odp_context(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """``odp_logging.context()`` identifiers and data are merged under the call's."""
        _native(OdpProcessor(client=client))
        with odp_logging.context(identifiers={"email": "e@x"}, data={"shop": "eu", "price": 1}):
            structlog.get_logger().info("purchased", odp=PURCHASE)
        expected = _event(
            "purchased", {"email": "e@x", "fs_user_id": "u1"}, {"shop": "eu", "price": 50.0}
        )
        assert [expected] == _events(receiver, client)

    def test_dict_without_odp_untouched(self, client: odp_logging.OdpClient) -> None:
        """An event dict without ``odp`` is returned as is and sends nothing."""
        event_dict = {"event": "cache miss", "key": "k"}
        assert event_dict is OdpProcessor(client=client)(None, "info", event_dict)
        assert {"event": "cache miss", "key": "k"} == event_dict
        assert 0 == client.stats().total

    def test_odp_none_is_no_event(self, client: odp_logging.OdpClient) -> None:
        """``odp=None`` is removed and sends nothing."""
        event_dict = {"event": "page", "odp": None}
        assert {"event": "page"} == OdpProcessor(client=client)(None, "info", event_dict)
        assert 0 == client.stats().total

    def test_non_text_event_without_action(self, client: odp_logging.OdpClient) -> None:
        """An event that is not a str cannot name the action: dropped as invalid_action."""
        OdpProcessor(client=client)(None, "info", {"event": len, "odp": PURCHASE})
        assert client.flush(timeout=5)
        assert 1 == client.stats().dropped["invalid_action"]


class TestEventDict:
    """What the processor leaves in the event dict: ``keep`` and ``drop``."""

    def test_removes_odp(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """By default ``odp`` is sent and kept out of the log output."""
        out = _native(OdpProcessor(client=client))
        structlog.get_logger().info("purchased", odp=PURCHASE, order=7)
        assert [{"event": "purchased", "order": 7}] == _lines(out)
        assert 1 == len(_events(receiver, client))

    def test_keep(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """``keep=True`` sends the event and leaves ``odp`` in the log output."""
        out = _native(OdpProcessor(client=client, keep=True))
        structlog.get_logger().info("purchased", odp=PURCHASE)
        assert [{"event": "purchased", "odp": PURCHASE}] == _lines(out)
        assert 1 == len(_events(receiver, client))

    def test_drop(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """``drop=True`` sends ODP events without logging them; other lines are logged."""
        out = _native(OdpProcessor(client=client, drop=True))
        log = structlog.get_logger()
        log.info("purchased", odp=PURCHASE)
        log.info("cache miss")
        assert [{"event": "cache miss"}] == _lines(out)
        assert ["purchased"] == [event["action"] for event in _events(receiver, client)]

    def test_drop_invalid_event(self, client: odp_logging.OdpClient) -> None:
        """``drop=True`` also drops a line whose payload the client rejects."""
        out = _native(OdpProcessor(client=client, drop=True))
        structlog.get_logger().info("purchased", odp="not a mapping")
        assert "" == out.getvalue()
        assert client.flush(timeout=5)
        assert 1 == client.stats().dropped["invalid_payload"]


class TestContextvars:
    """``odp`` bound with ``structlog.contextvars`` is context for the calls' own payloads."""

    def test_merged_key_by_key(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """Bound identifiers and data merge with the call's, whose keys win."""
        _native(OdpProcessor(client=client))
        bind_contextvars(
            odp={
                "identifiers": {"fs_user_id": "bound", "email": "e@x"},
                "data": {"shop": "eu", "price": 1},
            }
        )
        structlog.get_logger().info("purchased", odp=PURCHASE)
        expected = _event(
            "purchased", {"fs_user_id": "u1", "email": "e@x"}, {"shop": "eu", "price": 50.0}
        )
        assert [expected] == _events(receiver, client)

    def test_bound_action_and_type(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """A bound action or type applies unless the call names its own."""
        _native(OdpProcessor(client=client))
        bind_contextvars(odp={"type": "commerce", "action": "bound", "identifiers": {"a": "1"}})
        log = structlog.get_logger()
        log.info("first", odp={"data": {"n": 1}})
        log.info("second", odp={"action": "own", "type": "own_type"})
        assert [("bound", "commerce"), ("own", "own_type")] == [
            (event["action"], event["type"]) for event in _events(receiver, client)
        ]

    def test_bound_alone_is_no_event(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """A line without its own ``odp`` sends nothing and loses the bound ``odp`` in output."""
        out = _native(OdpProcessor(client=client))
        bind_contextvars(odp={"identifiers": {"email": "e@x"}}, request_id="r1")
        structlog.get_logger().info("request started")
        assert [{"event": "request started", "request_id": "r1"}] == _lines(out)
        assert [] == _events(receiver, client)
        assert 0 == client.stats().total

    def test_without_merge_contextvars(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """The bound ``odp`` applies even when the chain does not merge contextvars."""
        _native(OdpProcessor(client=client), contextvars=False)
        bind_contextvars(odp={"identifiers": {"email": "e@x"}})
        log = structlog.get_logger()
        log.info("request started")
        log.info("purchased", odp={"data": {"price": 1}})
        assert [_event("purchased", {"email": "e@x"}, {"price": 1})] == _events(receiver, client)

    def test_unbinding(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """Unbound, cleared or restored values are no longer merged."""
        _native(OdpProcessor(client=client))
        log = structlog.get_logger()
        bind_contextvars(odp={"identifiers": {"email": "outer@x"}})
        with bound_contextvars(odp={"identifiers": {"email": "inner@x"}}):
            log.info("a", odp=PURCHASE)
        log.info("b", odp=PURCHASE)
        unbind_contextvars("odp")
        log.info("c", odp=PURCHASE)
        bind_contextvars(odp={"identifiers": {"email": "again@x"}})
        clear_contextvars()
        log.info("d", odp=PURCHASE)
        bind_contextvars(odp=None)
        log.info("e", odp=PURCHASE)
        emails = [event["identifiers"].get("email") for event in _events(receiver, client)]
        assert ["inner@x", "outer@x", None, None, None] == emails

    def test_isolated_per_task(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """Each asyncio task merges its own bound ``odp``."""
        _native(OdpProcessor(client=client))

        async def request(user: str) -> None:
            bind_contextvars(odp={"identifiers": {"fs_user_id": user}})
            await asyncio.sleep(0)
            await structlog.get_logger().ainfo("viewed", odp={"data": {"page": user}})

        async def main() -> None:
            await asyncio.gather(request("u1"), request("u2"))

        asyncio.run(main())
        pairs = {
            (e["identifiers"]["fs_user_id"], e["data"]["page"]) for e in _events(receiver, client)
        }
        assert {("u1", "u1"), ("u2", "u2")} == pairs

    def test_invalid_bound_payload(self, client: odp_logging.OdpClient) -> None:
        """A bound ``odp`` that is not a mapping drops the events as invalid_payload."""
        _native(OdpProcessor(client=client))
        bind_contextvars(odp="not a mapping")
        structlog.get_logger().info("purchased", odp=PURCHASE)
        assert client.flush(timeout=5)
        assert 1 == client.stats().dropped["invalid_payload"]

    def test_logger_bind_is_no_context(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """``log.bind(odp=...)`` makes each call an event; a call's own ``odp`` replaces it."""
        _native(OdpProcessor(client=client))
        log = structlog.get_logger().bind(odp={"identifiers": {"email": "e@x"}})
        log.info("viewed")
        log.info("purchased", odp=PURCHASE)
        assert [
            _event("viewed", {"email": "e@x"}),
            _event("purchased", {"fs_user_id": "u1"}, {"price": 50.0}),
        ] == _events(receiver, client)


class _Unreadable(Mapping[str, Any]):
    """A mapping whose every read raises."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        raise RuntimeError("unreadable")


class TestNeverRaises:
    """Bad payloads are counted drops; the log line is still written."""

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            ("a string", "invalid_payload"),
            ({"identifiers": ["u1"]}, "invalid_identifiers"),
            ({"identifiers": {"fs_user_id": "u1"}, "data": {"cart": ["a"]}}, "invalid_data"),
            ({"identifiers": {}}, "no_identifiers"),
            ({"identifiers": {"fs_user_id": "u1"}, "action": 5}, "invalid_action"),
            ({"identifiers": {"fs_user_id": "u1"}, "type": 3}, "invalid_type"),
            (_Unreadable(), "invalid_payload"),
        ],
        ids=["string", "identifiers", "data", "no-identifiers", "action", "type", "unreadable"],
    )
    def test_bad_payload(self, payload: object, reason: str, client: odp_logging.OdpClient) -> None:
        """Each malformed payload is dropped under its reason; the line is logged."""
        out = _native(OdpProcessor(client=client))
        structlog.get_logger().info("purchased", odp=payload)
        assert [{"event": "purchased"}] == _lines(out)
        assert client.flush(timeout=5)
        assert 1 == client.stats().dropped[reason]
        assert 1 == client.stats().total_dropped

    def test_unreadable_with_bound(self, client: odp_logging.OdpClient) -> None:
        """A payload that raises while merged with the bound one is counted, not raised."""
        out = _native(OdpProcessor(client=client))
        bind_contextvars(odp={"identifiers": {"email": "e@x"}})
        structlog.get_logger().info("purchased", odp=_Unreadable())
        assert [{"event": "purchased"}] == _lines(out)
        assert client.flush(timeout=5)
        assert 1 == client.stats().dropped["invalid_payload"]

    def test_unconfigured_client(self) -> None:
        """Without an api key, events are counted as not_configured and lines still logged."""
        client = odp_logging.OdpClient(api_key="")
        out = _native(OdpProcessor(client=client))
        structlog.get_logger().info("purchased", odp=PURCHASE)
        assert [{"event": "purchased"}] == _lines(out)
        assert 1 == client.stats().dropped["not_configured"]
        client.close(timeout=1)


class TestWaysOfRunning:
    """Native and standard-library loggers, async methods and bound loggers."""

    def test_write_logger(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """``WriteLogger`` writes the line without ``odp``; the event arrives."""
        out = io.StringIO()
        structlog.configure(
            processors=[
                merge_contextvars,
                OdpProcessor(client=client),
                structlog.processors.KeyValueRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(out),
        )
        structlog.get_logger().info("purchased", odp=PURCHASE)
        assert "event='purchased'\n" == out.getvalue()
        assert 1 == len(_events(receiver, client))

    def test_filtering_bound_logger(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """Lines filtered out by level never reach the processor: no event."""
        out = io.StringIO()
        structlog.configure(
            processors=[OdpProcessor(client=client), structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(out),
        )
        log = structlog.get_logger()
        log.debug("ignored", odp=PURCHASE)
        log.info("purchased", odp=PURCHASE)
        assert ["purchased"] == [event["action"] for event in _events(receiver, client)]

    def test_render_to_log_kwargs(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """To stdlib logging as ``extra``: the record has no ``odp``; the event arrives."""
        records = _Records()
        _stdlib_root(records)
        structlog.configure(
            processors=[
                merge_contextvars,
                OdpProcessor(client=client),
                structlog.stdlib.render_to_log_kwargs,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").info("purchased", odp=PURCHASE, order=7)
        [record] = records.records
        assert ("purchased", 7) == (record.getMessage(), record.__dict__["order"])
        assert not hasattr(record, "odp")
        assert 1 == len(_events(receiver, client))

    def test_processor_formatter_once(
        self, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """Through ``wrap_for_formatter`` to two formatting handlers: one event."""
        streams = [io.StringIO(), io.StringIO()]
        handlers = [logging.StreamHandler(stream) for stream in streams]
        for handler in handlers:
            handler.setFormatter(
                structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
            )
        _stdlib_root(*handlers)
        structlog.configure(
            processors=[
                merge_contextvars,
                OdpProcessor(client=client),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").info("purchased", odp=PURCHASE)
        for stream in streams:
            assert {"event": "purchased"} == json.loads(stream.getvalue())
        assert 1 == len(_events(receiver, client))

    @pytest.mark.parametrize(
        "wrapper_class",
        [structlog.make_filtering_bound_logger(logging.INFO), structlog.stdlib.BoundLogger],
        ids=["native", "stdlib"],
    )
    def test_async(
        self, wrapper_class: Any, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """``await log.ainfo(...)`` runs the chain in a thread that sees both contexts."""
        records = _Records()
        _stdlib_root(records)
        factory = (
            structlog.stdlib.LoggerFactory()
            if wrapper_class is structlog.stdlib.BoundLogger
            else structlog.PrintLoggerFactory(io.StringIO())
        )
        structlog.configure(
            processors=[
                merge_contextvars,
                OdpProcessor(client=client),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=wrapper_class,
            logger_factory=factory,
        )

        async def main() -> None:
            bind_contextvars(odp={"identifiers": {"email": "e@x"}})
            with odp_logging.context(data={"shop": "eu"}):
                await structlog.get_logger("shop").ainfo("purchased", odp=PURCHASE)

        asyncio.run(main())
        expected = _event(
            "purchased", {"email": "e@x", "fs_user_id": "u1"}, {"shop": "eu", "price": 50.0}
        )
        assert [expected] == _events(receiver, client)

    def test_bound_logger(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """``log.bind()`` keys reach the log line, not the ODP event."""
        out = _native(OdpProcessor(client=client))
        log = structlog.get_logger().bind(request_id="r1")
        log.info("purchased", odp=PURCHASE)
        log.new(user="u1").info("viewed", odp={"identifiers": {"fs_user_id": "u1"}})
        assert [
            {"event": "purchased", "request_id": "r1"},
            {"event": "viewed", "user": "u1"},
        ] == _lines(out)
        assert [
            _event("purchased", {"fs_user_id": "u1"}, {"price": 50.0}),
            _event("viewed", {"fs_user_id": "u1"}),
        ] == _events(receiver, client)


class TestWithOdpHandler:
    """OdpProcessor in structlog and OdpHandler on the stdlib side: each event sent once."""

    @pytest.mark.parametrize(
        "renderer",
        [
            structlog.stdlib.render_to_log_kwargs,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        ids=["render_to_log_kwargs", "wrap_for_formatter"],
    )
    def test_exactly_once(
        self, renderer: Any, receiver: Receiver, client: odp_logging.OdpClient
    ) -> None:
        """Events logged with structlog are sent by the processor, stdlib's by the handler."""
        formatted = logging.StreamHandler(io.StringIO())
        formatted.setFormatter(
            structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
        )
        _stdlib_root(odp_logging.OdpHandler(client=client), formatted)
        structlog.configure(
            processors=[merge_contextvars, OdpProcessor(client=client), renderer],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").info("purchased", odp=PURCHASE)
        logging.getLogger("legacy").info("signed_up", extra={"odp": PURCHASE})
        assert client.flush(timeout=5)
        assert ["purchased", "signed_up"] == sorted(e["action"] for e in _events(receiver, client))

    def test_keep_sends_again(self, receiver: Receiver, client: odp_logging.OdpClient) -> None:
        """With ``keep=True`` the handler sees ``odp`` and sends the event again, as documented."""
        _stdlib_root(odp_logging.OdpHandler(client=client))
        structlog.configure(
            processors=[
                OdpProcessor(client=client, keep=True),
                structlog.stdlib.render_to_log_kwargs,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").info("purchased", odp=PURCHASE)
        assert ["purchased", "purchased"] == [e["action"] for e in _events(receiver, client)]


class TestWithoutStructlog:
    """The core works without structlog; the integration says what to install."""

    def test_import_error_names_extra(self) -> None:
        """``import odp_logging`` works, ``import odp_logging.structlog`` names the extra."""
        script = textwrap.dedent(
            """
            import sys

            sys.modules["structlog"] = None  # what an uninstalled package looks like to import
            import odp_logging
            odp_logging.OdpClient(api_key="")
            try:
                import odp_logging.structlog
            except ImportError as exc:
                print(exc)
            """
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        result = _run([sys.executable, "-c", script], env)
        assert "pip install 'odp-logging[structlog]'" in result.stdout


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command``; it must succeed and print no api key."""
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result


DOC_EXAMPLES = re.findall(
    r"```python\n(.*?)```", (REPO_ROOT / "docs" / "structlog.md").read_text(), flags=re.DOTALL
)


class TestDocsAndExample:
    """docs/structlog.md and examples/structlog_app.py deliver as written."""

    def test_docs_have_examples(self) -> None:
        """The page has its Python examples."""
        assert 3 == len(DOC_EXAMPLES)

    @pytest.mark.parametrize(
        ("example", "actions"),
        list(
            zip(
                DOC_EXAMPLES,
                (["purchased", "added_to_cart"], ["purchased"], ["signed_up", "purchased"]),
                strict=True,
            )
        ),
        ids=["native", "contextvars", "stdlib"],
    )
    def test_doc_example(self, example: str, actions: list[str], receiver: Receiver) -> None:
        """Each example, run as a script configured by ODP_* variables, delivers its events."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ODP_")}
        env.update(PYTHONPATH=str(REPO_ROOT), ODP_API_KEY=API_KEY, ODP_API_HOST=receiver.url)
        _run([sys.executable, "-c", example], env)
        assert receiver.wait_for_events(len(actions), timeout=10)
        assert actions == [event["action"] for event in receiver.events()]

    def test_example_app(self) -> None:
        """``python examples/structlog_app.py`` runs with its own receiver and reports arrivals."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ODP_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        result = _run([sys.executable, str(REPO_ROOT / "examples" / "structlog_app.py")], env)
        assert "received 3 events" in result.stdout
        for action in ("signed_up", "added_to_cart", "purchased"):
            assert action in result.stdout
