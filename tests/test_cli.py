"""The odp-logging command line, run in this process and as a real subprocess."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from odp_logging.cli import main
from odp_logging.server import Fault
from tests.conftest import API_KEY

PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])
COMMAND = [sys.executable, "-c", "import sys; from odp_logging.cli import main; sys.exit(main())"]
INTEGRATIONS = {
    "logging": "odp_logging.handler",
    "structlog": "odp_logging.structlog",
    "OpenTelemetry": "odp_logging.otel",
}


def installed(module: str) -> bool:
    """Whether ``module`` and what it needs import here."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def command_env(**extra: str) -> dict[str, str]:
    """The environment for an odp-logging subprocess: ours, minus ODP_*, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ODP_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return {**env, **extra}


@pytest.fixture(name="send_env")
def _send_env(monkeypatch: pytest.MonkeyPatch, receiver) -> str:
    """ODP_API_KEY and ODP_API_HOST pointing at the test receiver; returns its URL."""
    monkeypatch.setenv("ODP_API_KEY", API_KEY)
    monkeypatch.setenv("ODP_API_HOST", receiver.url)
    return receiver.url


class TestHelp:
    @pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["send"], ["config"]])
    def test_every_command_has_help(self, command, capsys):
        """``--help`` of the command and of each subcommand prints usage and exits 0."""
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])

        assert 0 == exited.value.code
        assert "usage: odp-logging" in capsys.readouterr().out

    def test_no_command_is_a_usage_error(self, capsys):
        """Without a subcommand the command says which ones exist and exits 2."""
        with pytest.raises(SystemExit) as exited:
            main([])

        assert 2 == exited.value.code
        assert "COMMAND" in capsys.readouterr().err

    def test_spool_commands_appear_when_installed(self, capsys):
        """``spool`` is a subcommand exactly when the spool's commands are importable."""
        with pytest.raises(SystemExit):
            main(["--help"])

        listed = re.search(r"^ +spool ", capsys.readouterr().out, re.MULTILINE) is not None
        assert installed("odp_logging._spool_cli") == listed


class TestDemo:
    def test_demo_shows_an_event_from_each_installed_integration(self, capsys):
        """The demo prints one row per installed integration and exits 0."""
        status = main(["demo"])

        out = capsys.readouterr().out
        assert 0 == status
        assert re.search(r"OdpClient\s+signed_up\s+fs_user_id=user123 email=user@example.com", out)
        expected_rows = {
            "logging": r"logging\s+added_to_cart\s+fs_user_id=user123\s+item=shirt",
            "structlog": r"structlog\s+purchased\s+fs_user_id=user123\s+item=shirt price=50.0",
            "OpenTelemetry": r"OpenTelemetry\s+order_shipped\s+fs_user_id=user123\s+carrier=ups",
        }
        for name, module in INTEGRATIONS.items():
            if installed(module):
                assert re.search(expected_rows[name], out), name
            else:
                assert f"skipped {name}" in out

    def test_demo_ignores_the_odp_environment(self, monkeypatch, capsys):
        """ODP_* variables meant for real use (disabled, another host) do not change the demo."""
        monkeypatch.setenv("ODP_ENABLED", "false")
        monkeypatch.setenv("ODP_API_HOST", "https://api.zaius.com")

        assert 0 == main(["demo"])
        assert "signed_up" in capsys.readouterr().out

    def test_demo_as_a_command(self):
        """``odp-logging demo`` in a fresh process exits 0, with the table on stdout."""
        done = subprocess.run(
            [*COMMAND, "demo"], env=command_env(), capture_output=True, text=True, timeout=60
        )

        assert 0 == done.returncode, done.stderr
        assert "stored by the receiver" in done.stdout
        assert "" == done.stderr


class TestSend:
    def test_one_event_is_delivered_with_typed_data(self, send_env, receiver, capsys):
        """Identifiers are text; data values read as JSON scalars unless quoted."""
        data = ["price=50.5", "count=2", "gift=true", "item=shirt", 'zip="01234"', "note="]
        status = main(
            ["send", "purchased", "-i", "fs_user_id=u1", "--identifier", "email=a@example.com"]
            + [arg for value in data for arg in ("-d", value)]
            + ["--type", "custom"]
        )

        assert 0 == status
        assert f"sent 'purchased' to {send_env}: accepted" in capsys.readouterr().out
        (event,) = receiver.events()
        assert {"fs_user_id": "u1", "email": "a@example.com"} == event["identifiers"]
        assert "custom" == event["type"]
        sent = {
            key: event["data"][key] for key in ("price", "count", "gift", "item", "zip", "note")
        }
        assert {"price": 50.5, "count": 2, "gift": True, "item": "shirt", "zip": "01234"} | {
            "note": ""
        } == sent

    def test_flags_override_the_environment(self, receiver, monkeypatch, capsys):
        """--api-key and --api-host win over ODP_API_KEY and ODP_API_HOST."""
        monkeypatch.setenv("ODP_API_KEY", "wrong-key")
        monkeypatch.setenv("ODP_API_HOST", "http://127.0.0.1:9")

        status = main(
            ["send", "a", "-i", "fs_user_id=u1", "--api-key", API_KEY, "--api-host", receiver.url]
        )

        assert 0 == status
        assert 1 == len(receiver.events())
        assert API_KEY not in "".join(capsys.readouterr())

    def test_a_refused_key_exits_1(self, receiver, monkeypatch, capsys):
        """A key ODP refuses means no delivery: exit status 1 and a message, never the key."""
        monkeypatch.setenv("ODP_API_KEY", "not-the-receivers-key")

        status = main(
            ["send", "a", "-i", "fs_user_id=u1", "--api-host", receiver.url, "--timeout", "0.5"]
        )

        out, err = capsys.readouterr()
        assert 1 == status
        assert "did not accept the event" in err or "unauthorized" in err
        assert "not-the-receivers-key" not in out + err
        assert [] == receiver.events()

    def test_an_invalid_event_exits_1_with_the_reason(self, send_env, receiver, capsys):
        """An event the client's rules refuse is named by its drop reason."""
        status = main(["send", "a", "-i", "fs_user_id="])

        assert 1 == status
        assert "no_identifiers" in capsys.readouterr().err
        assert [] == receiver.events()

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["send"], "either an ACTION or --file"),
            (["send", "a", "--file", "x.jsonl"], "either an ACTION or --file"),
            (["send", "-f", "x.jsonl", "-i", "fs_user_id=u1"], "go with ACTION"),
            (["send", "a", "-i", "fs_user_id"], "take NAME=VALUE"),
            (["send", "a", "-d", "=1"], "take NAME=VALUE"),
        ],
    )
    def test_usage_errors_exit_2(self, send_env, argv, message, capsys):
        """Wrong combinations and malformed pairs exit 2 with a message, no traceback."""
        assert 2 == main(argv)
        assert message in capsys.readouterr().err

    def test_no_key_exits_2(self, capsys):
        """Without a key anywhere, send says how to give one and exits 2."""
        assert 2 == main(["send", "a", "-i", "fs_user_id=u1"])
        assert "set ODP_API_KEY (or ODP_SDK_KEY) or pass --api-key" in capsys.readouterr().err

    def test_a_configuration_error_exits_2(self, capsys):
        """An option the client refuses (plain http to a remote host) exits 2 with its reason."""
        argv = ["send", "a", "-i", "fs_user_id=u1", "--api-key", API_KEY]
        assert 2 == main([*argv, "--api-host", "http://example.com"])
        assert "clear text" in capsys.readouterr().err


class TestSendFile:
    def write(self, tmp_path: Path, lines: list[str]) -> str:
        path = tmp_path / "events.jsonl"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    def event_line(self, n: int) -> str:
        return json.dumps(
            {"action": "backfilled", "identifiers": {"fs_user_id": f"u{n}"}, "data": {"n": n}}
        )

    def test_bad_lines_are_listed_by_number_and_the_rest_sent(
        self, send_env, receiver, tmp_path, capsys
    ):
        """Valid lines are delivered; each bad one is reported with its number and problem."""
        path = self.write(
            tmp_path,
            [
                self.event_line(1),
                "{not json",
                "",
                '["a list"]',
                json.dumps({"action": "a", "identifiers": {"fs_user_id": "u"}, "when": 1}),
                json.dumps({"action": "a", "identifiers": {}}),
                json.dumps({"action": "a", "identifiers": {"id": "u"}, "data": {"x": [1]}}),
                json.dumps({"identifiers": {"fs_user_id": "u"}}),
                self.event_line(2),
            ],
        )
        with open(path, "ab") as file:  # a last line that is not UTF-8, without a newline
            file.write(b'{"action": "\xff"}')

        status = main(["send", "--file", path, "--progress"])

        out, err = capsys.readouterr()
        assert 1 == status
        assert "read 10 lines: 2 events sent, 7 lines rejected" in out
        for line, problem in [
            (2, "not JSON"),
            (4, "not a JSON object"),
            (5, "unknown field 'when'"),
            (6, "identifiers has no non-empty value"),
            (7, "data['x'] must be"),
            (8, "action must be a non-empty string"),
            (10, "not JSON ('utf-8' codec can't decode byte 0xff"),
        ]:
            assert re.search(rf"line {line}: .*{re.escape(problem)}", out), (line, out)
        assert "[" + "#" * 30 + "] 100%  10/10 lines  2 sent  7 rejected" in err
        assert [{"n": 1}, {"n": 2}] == [{"n": e["data"]["n"]} for e in receiver.events()]

    def test_a_large_file_never_overflows_the_queue(
        self, send_env, receiver, monkeypatch, tmp_path, capsys
    ):
        """Lines are sent in chunks that fit the queue: nothing is dropped as queue_full."""
        monkeypatch.setenv("ODP_MAX_QUEUE_SIZE", "10")
        monkeypatch.setenv("ODP_BATCH_SIZE", "3")
        path = self.write(tmp_path, [self.event_line(n) for n in range(57)])

        status = main(["send", "--file", path])

        out, err = capsys.readouterr()
        assert 0 == status, out
        assert "read 57 lines: 57 events sent, 0 lines rejected" in out
        assert "" == err  # no progress bar when stderr is not a terminal
        assert list(range(57)) == [event["data"]["n"] for event in receiver.events()]

    def test_own_idempotence_ids_are_kept(self, send_env, receiver, tmp_path):
        """A line's idempotence_id is sent as given, so a backfill can be re-run safely."""
        line = {"action": "a", "identifiers": {"fs_user_id": "u"}, "data": {"idempotence_id": "k1"}}
        path = self.write(tmp_path, [json.dumps(line)])

        assert 0 == main(["send", "--file", path])
        assert "k1" == receiver.events()[0]["data"]["idempotence_id"]

    def test_standard_input(self, send_env, receiver, monkeypatch, capsys):
        """``--file -`` reads the events from standard input."""
        stdin = io.TextIOWrapper(io.BytesIO(self.event_line(1).encode() + b"\n"))
        monkeypatch.setattr(sys, "stdin", stdin)

        assert 0 == main(["send", "--file", "-", "--progress"])
        assert "1 lines  1 sent  0 rejected" in capsys.readouterr().err
        assert 1 == len(receiver.events())

    def test_an_outage_stops_the_backfill_with_exit_1(self, send_env, receiver, tmp_path, capsys):
        """When ODP accepts nothing within --timeout, the summary says what was left unsent."""
        receiver.inject(Fault("status", status=503, times=None))
        path = self.write(tmp_path, [self.event_line(n) for n in range(3)])

        status = main(["send", "--file", path, "--timeout", "0.3"])

        assert 1 == status
        assert "did not accept events within 0.3 s" in capsys.readouterr().out

    def test_a_missing_file_exits_2(self, send_env, tmp_path, capsys):
        """A file that cannot be opened is a usage error with the reason."""
        assert 2 == main(["send", "--file", str(tmp_path / "absent.jsonl")])
        assert "absent.jsonl" in capsys.readouterr().err


class TestConfig:
    def rows(self, out: str) -> dict[str, tuple[str, str]]:
        """The option table as ``{option: (value, source)}``."""
        table = {}
        for line in out.splitlines():
            parts = re.split(r"\s{2,}", line.strip())
            if len(parts) == 3:
                table[parts[0]] = (parts[1], parts[2])
        return table

    def test_each_value_names_its_source(self, monkeypatch, capsys):
        """Flags, ODP_* variables and defaults are told apart."""
        monkeypatch.setenv("ODP_API_KEY", API_KEY)
        monkeypatch.setenv("ODP_FLUSH_INTERVAL", "0.5")

        assert 0 == main(["config", "--api-host", "http://127.0.0.1:8765"])

        out = capsys.readouterr().out
        rows = self.rows(out)
        assert ("****0001", "$ODP_API_KEY") == rows["api_key"]
        assert ("http://127.0.0.1:8765", "--api-host") == rows["api_host"]
        assert ("0.5", "$ODP_FLUSH_INTERVAL") == rows["flush_interval"]
        assert ("100", "default") == rows["batch_size"]
        assert "events go to http://127.0.0.1:8765/v3/events" in out
        assert API_KEY not in out

    def test_a_short_key_is_fully_masked(self, capsys):
        """A key too short to show four characters of is printed as **** alone."""
        assert 0 == main(["config", "--api-key", "abc123"])
        out = capsys.readouterr().out
        assert "****" == self.rows(out)["api_key"][0]
        assert "abc123" not in out

    def test_an_ignored_variable_is_a_default_with_a_warning(self, monkeypatch, capsys):
        """An invalid ODP_* value falls back to the default, and the output says why."""
        monkeypatch.setenv("ODP_BATCH_SIZE", "9000")

        assert 0 == main(["config"])

        out = capsys.readouterr().out
        assert ("100", "default") == self.rows(out)["batch_size"]
        assert "warning: ignoring ODP_BATCH_SIZE" in out

    def test_the_region_of_the_key_picks_the_host(self, monkeypatch, capsys):
        """An EU key without a host shows the EU host, derived from the key."""
        monkeypatch.setenv("ODP_API_KEY", "W4WzcEs-ABgXorzY7h1LCQ-eu1")

        assert 0 == main(["config"])

        expected = ("https://api.eu1.odp.optimizely.com", "default for the key's region")
        assert expected == self.rows(capsys.readouterr().out)["api_host"]


class TestServe:
    def test_serve_runs_the_receiver_and_its_page_until_sigterm(self):
        """``odp-logging serve --port 0`` announces its URL, serves the page, stops on SIGTERM."""
        with subprocess.Popen(
            [*COMMAND, "serve", "--port", "0"], env=command_env(), stdout=subprocess.PIPE, text=True
        ) as process:
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                url = re.search(r"http://\S+", line)
                assert url is not None, line
                page = requests.get(url.group(0) + "/", timeout=5)
                assert "text/html; charset=utf-8" == page.headers["content-type"]
                assert "<title>ODP receiver</title>" in page.text
                process.send_signal(signal.SIGTERM)
                assert 0 == process.wait(timeout=10)
            finally:
                process.kill()  # only if an assertion failed before it exited
