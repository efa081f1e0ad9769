"""Smoke test of the performance suite: ``python -m bench`` still runs and writes its report.

Tiny sizes and a subset of scenarios keep it fast; it checks that the suite works, never
how fast anything is (the figures of so small a run mean nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / "bench" / "__main__.py").exists(), reason="needs the bench/ directory of a checkout"
)


def _bench(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench`` with ``arguments`` from the checkout, as a user would."""
    from bench._harness import child_environment

    return subprocess.run(
        [sys.executable, "-m", "bench", *arguments],
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class TestBenchCommand:
    def test_a_tiny_run_writes_the_report(self, tmp_path: Path) -> None:
        """A scaled-down run of one subject per scenario exits 0 and fills every section."""
        out = tmp_path / "performance.md"
        only = ",".join(
            [
                "caller_cost/null-odp",
                "caller_cost/handler-odp",
                "cpu_per_event/handler-odp",
                "throughput/handler-odp",
                "slowdown/null-odp",
                "exit/handler-odp",
            ]
        )
        completed = _bench(
            "--quick", "--scale", "0.02", "--only", only, "--out", str(out), timeout=120
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        report = out.read_text(encoding="utf-8")
        assert "## Targets (issue 7)" in report
        assert "| caller thread CPU, ODP record | <= 1.3x NullHandler |" in report
        assert "cpus" in report
        assert "| odp-logging |" in report
        assert "n/a: error" not in report

    def test_an_unknown_scenario_is_refused(self, tmp_path: Path) -> None:
        """``--only`` with a name that is no scenario exits 2 without running anything."""
        completed = _bench("--only", "nonsense", "--out", str(tmp_path / "x.md"), timeout=60)
        assert completed.returncode == 2
        assert "unknown scenario" in completed.stderr
        assert not (tmp_path / "x.md").exists()


class TestSegmentSink:
    def test_it_counts_the_events_of_each_batch(self) -> None:
        """The Segment-compatible sink answers 200 and adds up the length of each batch."""
        from bench._harness import Endpoint, ServiceProcess

        with ServiceProcess("bench._sink") as sink:
            for size in (3, 4):
                body = json.dumps({"batch": [{"type": "track"}] * size}).encode()
                request = urllib.request.Request(
                    f"{sink.url}/v1/batch", body, {"content-type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            endpoint = Endpoint("segment", sink.url)
            assert endpoint.delivered() == 7
            endpoint.reset()
            assert endpoint.delivered() == 0
