"""Tests of the local ODP receiver, over real loopback sockets."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest
import requests

from odp_logging.server import Fault, Receiver, ReceiverProcess, main
from odp_logging.server._app import _origin_form

KEY = "test-key-0123456789"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def make_event(action: str = "purchased", user: str = "user-1", **data: Any) -> dict[str, Any]:
    """Return a valid ODP event as the client sends it."""
    return {
        "type": "fullstack",
        "action": action,
        "identifiers": {"fs_user_id": user},
        "data": {"idempotence_id": f"id-{action}-{user}", "data_source_type": "sdk", **data},
    }


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[Receiver]:
    """A running receiver that requires KEY."""
    with Receiver(api_key=KEY) as receiver:
        yield receiver


@pytest.fixture(name="session")
def fixture_session() -> Iterator[requests.Session]:
    """A keep-alive client session that sends KEY."""
    with requests.Session() as session:
        session.headers["x-api-key"] = KEY
        yield session


def post(session: Any, receiver: Receiver | ReceiverProcess, body: Any, **kwargs: Any) -> Any:
    """POST `body` as JSON to the receiver's events endpoint."""
    kwargs.setdefault("timeout", 5)
    return session.post(f"{receiver.url}/v3/events", json=body, **kwargs)


def post_raw(session: requests.Session, receiver: Receiver, body: str | bytes) -> Any:
    """POST `body` verbatim as application/json."""
    headers = {"content-type": "application/json"}
    return session.post(f"{receiver.url}/v3/events", data=body, headers=headers, timeout=5)


class TestEventsApi:
    def test_valid_batch_is_accepted_and_stored(self, receiver, session):
        """A valid batch gets ODP's 202 body and every event is stored as sent."""
        events = [make_event("a", price=50.0, n=None, ok=True), make_event("b", count=3)]

        response = post(session, receiver, events)

        assert response.status_code == 202
        body = response.json()
        assert {k: body[k] for k in ("title", "status")} == {"title": "Accepted", "status": 202}
        assert TIMESTAMP.match(body["timestamp"])
        stored = receiver.events()
        assert events == [
            {k: e[k] for k in ("type", "action", "identifiers", "data")} for e in stored
        ]
        assert [e["request_id"] for e in stored] == [1, 1]
        assert body["timestamp"] == stored[0]["received_at"]

    def test_values_orjson_refuses_are_stored_as_sent(self, receiver, session):
        """A lone surrogate and a 70-bit integer are stored (by the stdlib encoder) unchanged."""
        event = make_event("odd", text="\ud800", big=2**70)
        body = json.dumps([event])  # \ud800 stays an escape: valid JSON text
        assert post_raw(session, receiver, body).status_code == 202
        [stored] = receiver.events()
        assert ("\ud800", 2**70) == (stored["data"]["text"], stored["data"]["big"])

    def test_single_object_is_one_event(self, receiver, session):
        """A body that is one event object, not an array, is accepted as ODP does."""
        assert post(session, receiver, make_event()).status_code == 202
        assert [e["action"] for e in receiver.events()] == ["purchased"]

    @pytest.mark.parametrize("key", [None, "", "wrong-key"])
    def test_bad_key_is_forbidden_and_never_logged(self, receiver, key):
        """A missing, empty or wrong key gets 403 Forbidden, and no key is ever recorded."""
        headers = {} if key is None else {"x-api-key": key}

        response = requests.post(
            f"{receiver.url}/v3/events", json=[make_event()], headers=headers, timeout=5
        )
        requests.post(
            f"{receiver.url}/v3/events", json=[make_event()], headers={"x-api-key": KEY}, timeout=5
        )

        assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
        assert [r["key_ok"] for r in receiver.requests()] == [False, True]
        assert len(receiver.events()) == 1
        recorded = json.dumps([receiver.requests(), receiver.stats(), receiver.events()])
        assert KEY not in recorded
        assert not key or key not in recorded

    def test_any_key_without_a_configured_one(self, session):
        """A receiver without a key accepts any non-empty key and refuses an empty one."""
        with Receiver() as receiver:
            assert post(session, receiver, [make_event()]).status_code == 202
            assert (
                post(session, receiver, [make_event()], headers={"x-api-key": ""}).status_code
                == 403
            )

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"type": ""}, "type must be a non-empty string"),
            ({"type": 3}, "type must be a non-empty string"),
            ({"action": ""}, "action must be a non-empty string"),
            ({"action": None}, "action must be a non-empty string"),
            ({"identifiers": {}}, "identifiers must be a non-empty object"),
            ({"identifiers": ["u"]}, "identifiers must be a non-empty object"),
            ({"identifiers": {"email": ""}}, "identifiers.email must be a non-empty string"),
            ({"identifiers": {"vuid": 7}}, "identifiers.vuid must be a non-empty string"),
            ({"identifiers": {"": "u"}}, "identifiers must not have an empty name"),
            ({"data": "x"}, "data must be an object"),
            ({"data": {"tags": ["a"]}}, "data.tags must be a string, number, boolean or null"),
            ({"data": {"nested": {}}}, "data.nested must be a string, number, boolean or null"),
            ({"ts": 1}, "unknown field 'ts'"),
        ],
    )
    def test_invalid_event_is_named_and_nothing_stored(self, receiver, session, change, message):
        """Each event rule breach gets 400 naming the event's index; the batch is not stored."""
        events = [make_event("a"), {**make_event("b"), **change}, make_event("c")]

        response = post(session, receiver, events)

        assert response.status_code == 400
        body = response.json()
        assert (body["title"], body["status"]) == ("Bad Request", 400)
        assert TIMESTAMP.match(body["timestamp"])
        assert {"invalids": [{"event": 1, "message": message}]} == body["detail"]
        assert receiver.events() == []
        assert (receiver.stats()["events_rejected"], receiver.stats()["events_accepted"]) == (1, 0)

    def test_missing_fields_and_non_objects_are_named(self, receiver, session):
        """Events missing required fields, or not objects at all, are each named."""
        response = post(session, receiver, [{"type": "t"}, 5, make_event()])

        assert [i["event"] for i in response.json()["detail"]["invalids"]] == [0, 1]

    def test_event_without_data_is_valid(self, receiver, session):
        """`data` is optional."""
        event = {"type": "fullstack", "action": "a", "identifiers": {"vuid": "v"}}

        assert post(session, receiver, [event]).status_code == 202
        assert receiver.requests()[0]["idempotence_ids"] == [None]

    @pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
    def test_non_finite_numbers_are_refused(self, receiver, session, number):
        """NaN, Infinity and overflowing numbers are not JSON: the whole body gets 400."""
        body = json.dumps([make_event()]).replace('"sdk"', number)

        response = post_raw(session, receiver, body)

        assert response.status_code == 400
        assert "not valid JSON" in response.json()["detail"]["message"]
        assert receiver.events() == []

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("[{", "body is not valid JSON"),
            (b"\xff\xfe[", "body is not valid JSON"),
            ('"purchased"', "body must be a JSON array of events"),
            ("[]", "body must contain at least one event"),
        ],
    )
    def test_body_must_be_a_non_empty_array(self, receiver, session, body, message):
        """A body that is not an array (or object) of events gets a 400 naming no event."""
        response = post_raw(session, receiver, body)

        assert response.status_code == 400
        assert response.json()["detail"]["message"].startswith(message)

    def test_content_type_must_be_json(self, receiver, session):
        """A body not sent as application/json gets 400; a charset parameter is fine."""
        body = json.dumps([make_event()])
        url = f"{receiver.url}/v3/events"

        plain = session.post(url, data=body, headers={"content-type": "text/plain"}, timeout=5)
        with_charset = session.post(
            url, data=body, headers={"content-type": "Application/JSON; charset=utf-8"}, timeout=5
        )

        assert (plain.status_code, with_charset.status_code) == (400, 202)

    def test_other_paths_and_methods(self, receiver, session):
        """Other paths get 404 and other methods 405, both in JSON, and are logged."""
        not_found = session.post(f"{receiver.url}/v2/events", json=[make_event()], timeout=5)
        not_allowed = session.get(f"{receiver.url}/v3/events", timeout=5)

        assert (not_found.status_code, not_allowed.status_code) == (404, 405)
        assert not_allowed.headers["Allow"] == "POST"
        assert not_allowed.json() == {"message": "Method Not Allowed"}
        assert [r["status"] for r in receiver.requests()] == [404, 405]

    def test_chunked_body_is_refused(self, receiver, session):
        """A body without Content-Length gets 411 and the connection is closed."""
        chunks = iter([json.dumps([make_event()]).encode()])
        response = session.post(
            f"{receiver.url}/v3/events", data=chunks, headers={"content-type": "application/json"}
        )

        assert (response.status_code, response.headers["Connection"]) == (411, "close")
        assert post(session, receiver, [make_event()]).status_code == 202

    def test_keep_alive_serves_every_request_on_one_connection(self, receiver, session):
        """A keep-alive client is served on one connection, request after request."""
        for _ in range(50):
            assert post(session, receiver, [make_event()]).status_code == 202

        assert {1} == {r["connection"] for r in receiver.requests()}

    def test_request_log_describes_each_request(self, receiver, session):
        """The log has the path, status, event count, body size and idempotence ids."""
        response = post(session, receiver, [make_event("a"), make_event("b")])

        (record,) = receiver.requests()
        assert {
            "method": "POST",
            "path": "/v3/events",
            "status": 202,
            "fault": None,
            "key_ok": True,
            "body_bytes": len(response.request.body),
            "events": 2,
            "invalid": 0,
            "idempotence_ids": ["id-a-user-1", "id-b-user-1"],
        } == {k: v for k, v in record.items() if k not in ("id", "received_at", "connection")}


class TestRequestTarget:
    @pytest.mark.parametrize(
        ("target", "origin"),
        [
            ("/v3/events?a=1", "/v3/events?a=1"),
            ("http://odp.invalid/v3/events?a=1", "/v3/events?a=1"),
            ("https://odp.invalid:8443/v3/events", "/v3/events"),
            ("http://odp.invalid", "/"),
            ("/v3/events?next=http://x/y", "/v3/events?next=http://x/y"),
        ],
    )
    def test_absolute_form_is_read_as_its_path(self, target, origin):
        """A target in absolute form (as sent to a proxy) means its path and query."""
        assert origin == _origin_form(target)


class TestFaults:
    def test_status_with_retry_after_in_seconds(self, receiver, session):
        """A status fault answers its code and Retry-After once, storing nothing."""
        receiver.inject(Fault("status", status=429, retry_after="2"))

        faulted = post(session, receiver, [make_event()])
        normal = post(session, receiver, [make_event()])

        assert (faulted.status_code, faulted.headers["Retry-After"]) == (429, "2")
        assert faulted.json() == {"message": "Too Many Requests"}
        assert normal.status_code == 202
        assert [e["request_id"] for e in receiver.events()] == [2]
        assert [(r["status"], r["fault"]) for r in receiver.requests()] == [
            (429, "status"),
            (202, None),
        ]

    def test_status_with_http_date_and_body(self, receiver, session):
        """A status fault can carry an HTTP-date Retry-After and a verbatim body."""
        date = formatdate(time.time() + 3, usegmt=True)
        receiver.inject(Fault("status", status=503, body='{"oops": 1}', retry_after=date))

        response = post(session, receiver, [make_event()])

        assert (503, date, b'{"oops": 1}') == (
            response.status_code,
            response.headers["Retry-After"],
            response.content,
        )

    def test_delay_answers_normally_but_late(self, receiver, session):
        """A delay fault waits, then accepts and stores the events."""
        receiver.inject(Fault("delay", delay=0.2))

        started = time.monotonic()
        response = post(session, receiver, [make_event()])

        assert time.monotonic() - started >= 0.2
        assert response.status_code == 202
        assert len(receiver.events()) == 1
        assert receiver.requests()[0]["fault"] == "delay"

    def test_delay_can_time_the_client_out(self, receiver, session):
        """A delay longer than the client's timeout makes the client time out."""
        receiver.inject(Fault("status", status=504, delay=1.0))

        with pytest.raises(requests.Timeout):
            post(session, receiver, [make_event()], timeout=0.1)

    def test_drop_closes_without_answer(self, receiver, session):
        """A drop fault closes the connection unanswered; nothing is stored."""
        receiver.inject(Fault("drop"))

        with pytest.raises(requests.ConnectionError, match="without response"):
            post(session, receiver, [make_event()])

        assert receiver.events() == []
        assert [(r["status"], r["fault"]) for r in receiver.requests()] == [(None, "drop")]
        assert post(session, receiver, [make_event()]).status_code == 202

    def test_reset_aborts_the_connection(self, receiver, session):
        """A reset fault aborts the connection with a TCP RST."""
        receiver.inject(Fault("reset"))

        with pytest.raises(requests.ConnectionError, match="ConnectionResetError"):
            post(session, receiver, [make_event()])

        assert receiver.events() == []
        assert receiver.stats()["by_status"] == {"reset": 1}

    def test_faults_play_in_order_and_for_their_times(self, receiver, session):
        """Queued faults play one after another, each for its number of requests."""
        receiver.inject(Fault("status", status=500, times=2), Fault("status", status=502))

        statuses = [post(session, receiver, [make_event()]).status_code for _ in range(4)]

        assert statuses == [500, 500, 502, 202]

    def test_outage_lasts_until_cleared(self, receiver, session):
        """An endless fault answers every request until the faults are cleared."""
        receiver.inject(Fault("status", status=503, times=None))
        outage = [post(session, receiver, [make_event()]).status_code for _ in range(5)]

        receiver.clear_faults()

        assert outage == [503] * 5
        assert post(session, receiver, [make_event()]).status_code == 202
        assert receiver.stats()["events_accepted"] == 1

    def test_reset_outage_until_cleared(self, receiver, session):
        """An endless reset fault refuses every request until cleared."""
        receiver.inject(Fault("reset", times=None))
        for _ in range(3):
            with pytest.raises(requests.ConnectionError):
                post(session, receiver, [make_event()])

        receiver.clear_faults()

        assert post(session, receiver, [make_event()]).status_code == 202

    def test_only_event_requests_consume_faults(self, receiver, session):
        """Requests to other paths neither play nor use up a fault."""
        receiver.inject(Fault("status", status=500))

        assert session.post(f"{receiver.url}/other", timeout=5).status_code == 404
        assert post(session, receiver, [make_event()]).status_code == 500


class TestFault:
    def test_json_round_trip(self):
        """A fault survives to_json and from_json, through real JSON."""
        fault = Fault("status", status=429, body="{}", retry_after="1", delay=0.5, times=None)

        assert fault == Fault.from_json(json.loads(json.dumps(fault.to_json())))

    def test_only_kind_is_required(self):
        """Missing keys take their defaults."""
        assert Fault("drop") == Fault.from_json({"kind": "drop"})

    @pytest.mark.parametrize(
        "obj",
        [
            [],
            {"kind": "explode"},
            {"kind": "status", "status": 99},
            {"kind": "status", "status": "503"},
            {"kind": "status", "status": True},
            {"kind": "delay", "delay": -1},
            {"kind": "drop", "times": 0},
            {"kind": "drop", "times": 1.5},
            {"kind": "status", "retry_after": 2},
            {"kind": "drop", "when": "now"},
        ],
    )
    def test_invalid_descriptions_are_refused(self, obj):
        """Unknown kinds and keys, wrong types and out-of-range values raise ValueError."""
        with pytest.raises(ValueError):
            Fault.from_json(obj)


class TestReceiver:
    def test_events_filter_by_action_and_identifier(self, receiver, session):
        """Events filter by action, by identifier value, and by identifier name=value."""
        post(session, receiver, [make_event("a", "u1"), make_event("b", "u2")])
        email = {**make_event("a", "u3"), "identifiers": {"email": "u1", "x": "k=v"}}
        post(session, receiver, [email])

        def ids(**filters: str) -> list[int]:
            return [e["id"] for e in receiver.events(**filters)]

        assert ids(action="a") == [1, 3]
        assert ids(identifier="u1") == [1, 3]
        assert ids(identifier="fs_user_id=u1") == [1]
        assert ids(identifier="x=k=v") == [3]
        assert ids(action="a", identifier="fs_user_id=u1") == [1]
        assert ids(action="none") == []

    def test_wait_for_events(self, receiver, session):
        """wait_for_events returns True once enough events arrive, False on timeout."""
        sender = threading.Timer(0.05, post, (session, receiver, [make_event(), make_event()]))
        sender.start()

        assert receiver.wait_for_events(2, timeout=5)
        assert not receiver.wait_for_events(3, timeout=0.05)
        sender.join()

    def test_stats_count_requests_events_and_statuses(self, receiver, session):
        """Stats count requests, accepted and invalid events, and answers by status."""
        post(session, receiver, [make_event(), make_event()])
        post(session, receiver, [make_event(), {"type": "t"}, 3])
        requests.post(f"{receiver.url}/v3/events", json=[make_event()], timeout=5)

        assert receiver.stats() == {
            "requests": 3,
            "events_accepted": 2,
            "events_rejected": 2,
            "by_status": {"202": 1, "400": 1, "403": 1},
        }

    def test_reset_forgets_everything(self, receiver, session):
        """A reset clears events, the log and faults; ids start again from 1."""
        post(session, receiver, [make_event()])
        receiver.inject(Fault("status", status=500))

        receiver.reset()

        assert (receiver.events(), receiver.requests()) == ([], [])
        assert post(session, receiver, [make_event()]).status_code == 202
        assert [e["id"] for e in receiver.events()] == [1]

    def test_stop_ends_keep_alive_connections_and_delays(self, session):
        """stop() cuts an injected delay short and ends open keep-alive connections."""
        receiver = Receiver().start()
        post(session, receiver, [make_event()])
        receiver.inject(Fault("delay", delay=30))
        errors: list[Exception] = []

        def send() -> None:
            try:
                post(session, receiver, [make_event()])
            except requests.ConnectionError as exc:
                errors.append(exc)

        waiting = threading.Thread(target=send)
        waiting.start()
        time.sleep(0.1)  # let the request reach the delay
        started = time.monotonic()
        receiver.stop()
        waiting.join(5)

        assert time.monotonic() - started < 3
        assert len(errors) == 1
        with pytest.raises(requests.ConnectionError):
            post(session, receiver, [make_event()])

    def test_db_path_keeps_events_across_receivers(self, tmp_path, session):
        """With db_path, events and the log outlive the receiver."""
        db = str(tmp_path / "events.db")
        with Receiver(db_path=db) as receiver:
            post(session, receiver, [make_event()])

        with Receiver(db_path=db) as receiver:
            assert [e["action"] for e in receiver.events()] == ["purchased"]
            assert receiver.stats()["requests"] == 1
            assert receiver.wait_for_events(1, timeout=0)

    def test_url_needs_start(self):
        """The url and port exist only once started."""
        receiver = Receiver()
        with pytest.raises(RuntimeError):
            receiver.url  # noqa: B018 - the property raises
        receiver.stop()


class TestReceiverProcess:
    def test_round_trip(self, session):
        """A subprocess receiver accepts, stores, reports, plays faults and stops."""
        with ReceiverProcess(api_key=KEY) as receiver:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", receiver.url)
            receiver.inject(Fault("status", status=503, retry_after="1"))
            faulted = post(session, receiver, [make_event("a")])
            accepted = post(session, receiver, [make_event("a"), make_event("b", "u2")])

            assert (faulted.status_code, accepted.status_code) == (503, 202)
            assert receiver.wait_for_events(2, timeout=5)
            assert [e["action"] for e in receiver.events(identifier="fs_user_id=u2")] == ["b"]
            assert [r["status"] for r in receiver.requests()] == [503, 202]
            assert receiver.stats()["by_status"] == {"503": 1, "202": 1}

            receiver.inject(Fault("status", status=500, times=None))
            receiver.clear_faults()
            receiver.reset()
            assert receiver.events() == []
            assert not receiver.wait_for_events(1, timeout=0.05)
            receiver.stop()

            with pytest.raises(requests.ConnectionError):
                post(session, receiver, [make_event()])

    def test_control_api_checks_fault_descriptions(self):
        """The control API refuses a malformed fault and queues a single fault object."""
        with ReceiverProcess() as receiver:
            faults_url = f"{receiver.url}/_receiver/faults"
            refused = requests.post(faults_url, json=[{"kind": "explode"}], timeout=5)
            queued = requests.post(faults_url, json={"kind": "status", "status": 500}, timeout=5)
            unknown = requests.get(f"{receiver.url}/_receiver/nothing", timeout=5)
            answered = post(requests, receiver, [make_event()], headers={"x-api-key": "k"})

            assert (refused.status_code, queued.json(), unknown.status_code) == (
                400,
                {"queued": 1},
                404,
            )
            assert answered.status_code == 500


class TestMain:
    def test_module_prints_url_and_exits_cleanly_on_sigterm(self, tmp_path):
        """`python -m odp_logging.server` prints its URL, serves, and exits 0 on SIGTERM."""
        command = [sys.executable, "-m", "odp_logging.server", "--port", "0", "--api-key", KEY]
        command += ["--db", str(tmp_path / "events.db")]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            line = process.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+", line).group()
            response = requests.post(
                f"{url}/v3/events", json=[make_event()], headers={"x-api-key": KEY}, timeout=5
            )
            process.send_signal(signal.SIGTERM)

            assert response.status_code == 202
            assert process.wait(timeout=5) == 0
            assert KEY not in line + process.stdout.read()

    def test_main_reports_an_address_in_use(self, capsys):
        """main() returns 1 with a message when it cannot bind."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            assert main(["--port", str(port)]) == 1

        assert "cannot serve on 127.0.0.1" in capsys.readouterr().err
