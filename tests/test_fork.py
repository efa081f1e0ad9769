"""Fork: the child starts afresh; the parent alone sends what it had queued, once.

Every scenario runs in a real subprocess (forking pytest itself would copy its threads).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from odp_logging.server import Fault, Receiver
from tests.conftest import API_KEY
from tests.delivery_support import python_env, run_python, wait_until

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

# Blocks the importing script until the client's worker is inside a request.
_WAIT_FOR_REQUEST = """
import contextlib, threading
from odp_logging._transport import add_send_hook
in_flight = threading.Event()

@contextlib.contextmanager
def _mark_in_flight():
    in_flight.set()
    yield

add_send_hook(_mark_in_flight)
"""


def _actions(receiver: Receiver) -> list[str]:
    return sorted(event["action"] for event in receiver.events())


def _assert_each_sent_once(receiver: Receiver) -> None:
    events = receiver.events()
    ids = [event["data"]["idempotence_id"] for event in events]
    repeated = [event for event in events if ids.count(event["data"]["idempotence_id"]) > 1]
    assert [] == repeated


class TestOsFork:
    """os.fork(), with the at-fork hook."""

    def test_parent_events_sent_by_parent_once(self, receiver: Receiver) -> None:
        """Events queued before the fork are sent by the parent alone; the child sends its own."""
        result = run_python(
            """
            import os, odp_logging
            client = odp_logging.OdpClient(flush_interval=30)
            client.send_odp_event("before", identifiers={"fs_user_id": "p"})
            pid = os.fork()
            if pid == 0:
                print("child queued", client.stats().queued, flush=True)
                client.send_odp_event("child", identifiers={"fs_user_id": "c"})
                client.close()
                print("child sent", client.stats().sent, flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            client.send_odp_event("after", identifiers={"fs_user_id": "p"})
            """,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
        )
        assert 0 == result.returncode, result.stderr
        assert "child queued 0\nchild sent 1\n" == result.stdout
        assert ["after", "before", "child"] == _actions(receiver)
        _assert_each_sent_once(receiver)

    def test_children_draw_their_own_ids(self, receiver: Receiver) -> None:
        """Two children of one parent never give their events the same idempotence_id."""
        result = run_python(
            """
            import os, odp_logging
            client = odp_logging.OdpClient(flush_interval=0.05)
            client.send_odp_event("parent", identifiers={"fs_user_id": "p"})
            assert client.flush(5)  # the parent has drawn ids from its random pool
            for child in range(2):
                if os.fork() == 0:
                    for i in range(5):
                        client.send_odp_event("child", identifiers={"fs_user_id": str(i)})
                    client.close()
                    os._exit(0)
                os.wait()
            """,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
        )
        assert 0 == result.returncode, result.stderr
        assert 11 == len(receiver.events())
        _assert_each_sent_once(receiver)

    def test_fork_while_sending(self, receiver: Receiver) -> None:
        """A fork while the worker waits on a slow request: that batch is sent once."""
        receiver.inject(Fault("delay", delay=1.0))
        result = run_python(
            _WAIT_FOR_REQUEST
            + """
import os, odp_logging
client = odp_logging.OdpClient(flush_interval=0.05)
client.send_odp_event("in_flight", identifiers={"fs_user_id": "p"})
assert in_flight.wait(10)
pid = os.fork()
if pid == 0:
    client.send_odp_event("child", identifiers={"fs_user_id": "c"})
    client.close()
    os._exit(0)
os.waitpid(pid, 0)
client.close()
print("parent sent", client.stats().sent)
""",
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
        )
        assert 0 == result.returncode, result.stderr
        assert "parent sent 1" in result.stdout
        assert ["child", "in_flight"] == _actions(receiver)
        assert 2 == len(receiver.requests())
        _assert_each_sent_once(receiver)

    def test_fork_from_c(self, receiver: Receiver) -> None:
        """A fork that skips Python's at-fork hooks (as uWSGI's) is caught by the pid check."""
        result = run_python(
            """
            import ctypes, os, odp_logging
            client = odp_logging.OdpClient(flush_interval=30)
            client.send_odp_event("before", identifiers={"fs_user_id": "p"})
            pid = ctypes.PyDLL(None).fork()  # libc's fork: no os.register_at_fork hooks
            if pid == 0:
                client.send_odp_event("child", identifiers={"fs_user_id": "c"})
                client.close()
                print("child sent", client.stats().sent, flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            """,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
        )
        assert 0 == result.returncode, result.stderr
        assert "child sent 1" in result.stdout
        assert ["before", "child"] == _actions(receiver)
        _assert_each_sent_once(receiver)


class TestProcessMark:
    """process_mark(): what every call checks to notice that it runs in a forked child."""

    @pytest.mark.parametrize("kind", ["process_mark()", "_PidMark()"])
    def test_zero_in_forked_child(self, kind: str) -> None:
        """The mark reads 1 where it was made and 0 in a child, with or without at-fork hooks."""
        result = run_python(
            f"""
            import ctypes, mmap, os, sys
            from odp_logging._fork import _PidMark, process_mark
            mark = {kind}
            print("kind", type(mark).__name__, flush=True)
            for fork in (os.fork, ctypes.PyDLL(None).fork):
                pid = fork()
                if pid == 0:
                    print("child", mark[0], flush=True)
                    os._exit(0)
                os.waitpid(pid, 0)
                print("parent", mark[0], flush=True)
            """
        )
        assert 0 == result.returncode, result.stderr
        lines = result.stdout.split("\n")
        assert ["child 0", "parent 1", "child 0", "parent 1"] == lines[1:5]
        if kind == "process_mark()" and sys.platform == "linux":
            assert "kind mmap" == lines[0]  # the page the kernel wipes, not the pid fallback


class TestMultiprocessing:
    """multiprocessing with the fork start method."""

    def test_process_and_pool(self, receiver: Receiver) -> None:
        """Children's events arrive without close() (they exit through os._exit); none twice."""
        result = run_python(
            """
            import multiprocessing, odp_logging

            def work(n):
                odp_logging.get_client().send_odp_event("child", identifiers={"fs_user_id": str(n)})
                return n

            if __name__ == "__main__":
                client = odp_logging.get_client(flush_interval=30)
                client.send_odp_event("parent", identifiers={"fs_user_id": "p"})
                context = multiprocessing.get_context("fork")
                process = context.Process(target=work, args=(0,))
                process.start()
                process.join()
                with context.Pool(2) as pool:
                    print(sorted(pool.map(work, range(1, 5))), flush=True)
                    pool.close()
                    pool.join()
                print("exit code", process.exitcode)
            """,
            ODP_API_KEY=API_KEY,
            ODP_API_HOST=receiver.url,
        )
        assert 0 == result.returncode, result.stderr
        assert "[1, 2, 3, 4]\nexit code 0\n" == result.stdout
        assert ["child"] * 5 + ["parent"] == _actions(receiver)
        _assert_each_sent_once(receiver)


_GUNICORN_APP = """
import os
import odp_logging

client = odp_logging.get_client(flush_interval=0.05)
client.send_odp_event("master", identifiers={"fs_user_id": "master"})
# --preload imports this in the master: fork the workers while that event is in flight.
assert in_flight.wait(10)


def app(environ, start_response):
    client.send_odp_event(
        "request", identifiers={"fs_user_id": environ["PATH_INFO"]}, data={"pid": os.getpid()}
    )
    start_response("200 OK", [("content-type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@pytest.mark.skipif(
    shutil.which("gunicorn", path=os.path.dirname(sys.executable)) is None,
    reason="gunicorn is not installed",
)
class TestGunicorn:
    """gunicorn --preload with several workers."""

    def test_preload_workers(self, receiver: Receiver, tmp_path: Path) -> None:
        """The master's in-flight event is sent once; each worker sends its requests' events."""
        (tmp_path / "odp_app.py").write_text(_WAIT_FOR_REQUEST + textwrap.dedent(_GUNICORN_APP))
        receiver.inject(Fault("delay", delay=1.0))
        port = _free_port()
        gunicorn = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "gunicorn"),
                "--preload",
                "--workers=3",
                f"--bind=127.0.0.1:{port}",
                "--graceful-timeout=5",
                "--chdir",
                str(tmp_path),
                "odp_app:app",
            ],
            env=python_env(ODP_API_KEY=API_KEY, ODP_API_HOST=receiver.url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: _get(port, "/ready") is not None, timeout=20)
            pids = {_get(port, f"/{i}") for i in range(12)}
        finally:
            gunicorn.send_signal(signal.SIGTERM)
            _, errors = gunicorn.communicate(timeout=20)
        assert 0 == gunicorn.returncode, errors
        assert None not in pids
        assert 1 == len(receiver.events(action="master"))
        paths = sorted(event["identifiers"]["fs_user_id"] for event in receiver.events("request"))
        assert sorted(["/ready", *(f"/{i}" for i in range(12))]) == sorted(set(paths))
        _assert_each_sent_once(receiver)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> str | None:
    """GET ``path`` from the local server; its body, or None when it does not answer yet."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    except OSError:
        time.sleep(0.05)
        return None
    finally:
        connection.close()
