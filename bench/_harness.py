"""What every benchmark shares: timing, medians, endpoints, child processes, the machine.

One harness for the whole suite and for the per-integration scripts, so that every
figure is taken the same way:

* :func:`per_call` times a call on the application's thread two ways: its own CPU time
  (``time.thread_time_ns``, which leaves out the library's worker thread) and wall time
  (``time.perf_counter_ns``, which includes waiting for the GIL while the worker ships).
* :func:`interleaved_medians` alternates rounds between variants, so that drift on a
  shared machine affects them alike, and returns medians per variant.
* :class:`Endpoint` counts what a library delivered: the project's ODP receiver or the
  Segment-compatible sink (``bench._sink``), each in its own process.
* :func:`run_child` runs one scenario in a fresh interpreter (``python -m bench.scenarios``)
  and returns the JSON it reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: children import ``bench`` and ``odp_logging`` from here."""
RESULT_PREFIX = "BENCH-RESULT "
"""Marks the line of a child's stdout that carries its JSON result."""
API_KEY = "bench-public-key-0001"


# -- timing ----------------------------------------------------------------------


def per_call(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """Call ``call`` ``calls`` times; return (thread CPU ns, wall ns) per call.

    The loop's own cost (about 0.03 us a call) is included, alike for every variant.
    """
    cpu_start, wall_start = time.thread_time_ns(), time.perf_counter_ns()
    for _ in range(calls):
        call()
    wall = time.perf_counter_ns() - wall_start
    cpu = time.thread_time_ns() - cpu_start
    return cpu / calls, wall / calls


def print_delivery(client: Any, receiver: Any, timeout: float = 120) -> None:
    """Flush ``client``, then print what it sent and dropped and what the receiver stored."""
    delivered = client.flush(timeout)
    stats = client.stats()
    print(
        f"delivered: {stats.sent} events sent, {stats.total_dropped} dropped, "
        f"flush {'complete' if delivered else 'timed out'}; receiver stored "
        f"{receiver.stats()['events_accepted']}"
    )


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    return statistics.median(values) if values else float("nan")


def interleaved_medians(
    variants: Mapping[str, Callable[[], object]],
    *,
    calls: int,
    rounds: int,
    warmup: int = 1,
    between: Callable[[], object] | None = None,
) -> dict[str, tuple[float, float]]:
    """Time each variant in alternating rounds; return (CPU ns, wall ns) medians per call.

    Args:
        variants: Name to the call to time.
        calls: Calls per round.
        rounds: Timed rounds per variant.
        warmup: Untimed rounds per variant first.
        between: Called untimed after each round (e.g. to let a worker drain).
    """
    for call in variants.values():
        for _ in range(warmup):
            per_call(call, calls)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            samples[name].append(per_call(call, calls))
            if between is not None:
                between()
    return {
        name: (median([cpu for cpu, _ in values]), median([wall for _, wall in values]))
        for name, values in samples.items()
    }


# -- where libraries deliver -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A local endpoint a library delivers to, and its counter of delivered events.

    Attributes:
        kind: ``"odp"`` (the project's receiver) or ``"segment"`` (``bench._sink``).
        url: The base URL to give the library.
    """

    kind: str
    url: str

    def delivered(self) -> int:
        """Events the endpoint has accepted since it started or was reset."""
        if self.kind == "odp":
            return int(self._call("GET", "/_receiver/stats")["events_accepted"])
        return int(self._call("GET", "/stats")["events"])

    def last_arrival(self) -> float | None:
        """``time.time()`` when the last delivered events arrived, as the endpoint saw it.

        Polling the count could only say when a look first saw it grow, up to a poll
        interval later: a bias of 10-20 % on a delivery that lasts a quarter of a second.
        """
        if self.kind == "segment":
            last: float | None = self._call("GET", "/stats")["last_event_at"]
            return last
        arrivals = [
            datetime.datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
            for record in self._call("GET", "/_receiver/requests")
            if record["events"] and record["status"] is not None and 200 <= record["status"] < 300
        ]
        return max(arrivals).timestamp() if arrivals else None

    def reset(self) -> None:
        """Forget what was delivered."""
        self._call("POST", "/_receiver/reset" if self.kind == "odp" else "/reset")

    def _call(self, method: str, path: str) -> Any:
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"{self.kind} endpoint {method} {path}: {response.status}")
        return json.loads(body)


@dataclasses.dataclass
class Delivery:
    """The outcome of :func:`wait_delivered`.

    Attributes:
        count: Events the endpoint counted.
        poll_cpu: Thread CPU seconds this thread spent polling, to subtract from CPU figures.
    """

    count: int
    poll_cpu: float


def wait_delivered(
    endpoint: Endpoint, expected: int, *, quiet: float, timeout: float, poll: float = 0.05
) -> Delivery:
    """Poll ``endpoint`` until it counts ``expected`` events, or the count stops growing.

    Args:
        expected: The count to wait for.
        quiet: Give up after this many seconds without growth (longer than the flush
            intervals of every library measured, so a partial batch is not missed).
        timeout: Give up after this many seconds in all.
        poll: Seconds between two looks.
    """
    started = time.monotonic()
    cpu = 0.0
    count, last_change = -1, started
    while True:
        cpu_before = time.thread_time()
        current = endpoint.delivered()
        cpu += time.thread_time() - cpu_before
        now = time.monotonic()
        if current != count:
            count, last_change = current, now
        if count >= expected or now - last_change >= quiet or now - started >= timeout:
            return Delivery(count, cpu)
        time.sleep(poll)


class ServiceProcess:
    """A local server in a subprocess that prints its URL first: the Segment sink.

    Args:
        module: The module to run with ``python -m``.
    """

    def __init__(self, module: str) -> None:
        self._module = module
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ServiceProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", self._module],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_environment(),
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("http://127.0.0.1:"):
            self._process.kill()
            raise RuntimeError(f"{self._module} did not start: {line!r}")
        self.url = line.strip()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            assert self._process.stdout is not None
            self._process.stdout.close()

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._process is not None
        return self._process.pid


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused): a receiver that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- child processes ---------------------------------------------------------------


def child_environment() -> dict[str, str]:
    """The environment for a child: ours, importing this checkout, without ``ODP_*``."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("ODP_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return environ


@contextlib.contextmanager
def _killed_on_exit(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_child(spec: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter and return its result.

    The child is ``python -m bench.scenarios SPEC``; it prints one line starting with
    :data:`RESULT_PREFIX` followed by JSON. The returned dict also holds ``exited_at``
    (``time.monotonic()`` when the child was seen to exit: the clock is shared by all
    processes on Linux) and, when the child failed, ``error`` with its last words.
    """
    command = [sys.executable, "-m", "bench.scenarios", json.dumps(spec)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=child_environment(),
    )
    with _killed_on_exit(process):
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            return {"error": f"timed out after {timeout:.0f} s", "stderr": _tail(stderr)}
    exited_at = time.monotonic()
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if not result:
        result = {"error": f"exit code {process.returncode}, no result"}
    result["exited_at"] = exited_at
    result["stderr"] = _tail(stderr)
    if process.returncode != 0 and "error" not in result and "skipped" not in result:
        result["error"] = f"exit code {process.returncode}"
    return result


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def report_result(result: Mapping[str, Any], stream: IO[str] | None = None) -> None:
    """Print a child's result line (called in the child)."""
    print(RESULT_PREFIX + json.dumps(result), file=stream or sys.stdout, flush=True)


# -- memory and CPU ----------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_bytes() -> int:
    """This process's resident set size now."""
    return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident set size (since start or :func:`reset_peak_rss`)."""
    return _status_kb("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Restart the peak RSS from the current RSS (Linux ``clear_refs``); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the machine -------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were taken on: CPUs, model, memory, OS, Python, load."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read(), re.MULTILINE)
        if match:
            model = match.group(1).strip()
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as meminfo:
        memory = f"{int(meminfo.readline().split()[1]) / 2**20:.0f} GiB"
    return {
        "cpus": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else ""),
        "cpu model": model,
        "memory": memory,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }
