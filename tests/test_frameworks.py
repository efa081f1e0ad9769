"""The framework examples under examples/frameworks/, each run as a real program.

Each example runs in its own interpreter, as ``python examples/frameworks/<name>.py``,
with ODP_API_KEY and ODP_API_HOST naming the test receiver, which then checks what
arrived. A framework that is not installed skips its test.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "frameworks"


def needs(module: str) -> pytest.MarkDecorator:
    """Skip unless ``module`` is installed."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"{module} is not installed")


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``examples/frameworks/<name>`` with ``env`` added; fail on a non-zero exit."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("ODP_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == done.returncode, done.stderr
    return done


@pytest.fixture(name="odp_env")
def _odp_env(receiver) -> dict[str, str]:
    """The ODP_* variables that send an example's events to the test receiver."""
    return {"ODP_API_KEY": API_KEY, "ODP_API_HOST": receiver.url}


def sent(receiver) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    """(action, identifiers, own data) of each received event, oldest first."""
    sdk = {"idempotence_id", "data_source_type", "data_source", "data_source_version"}
    return [
        (
            event["action"],
            event["identifiers"],
            {key: value for key, value in event["data"].items() if key not in sdk},
        )
        for event in receiver.events()
    ]


@needs("django")
class TestDjango:
    def test_the_middleware_identifies_the_signed_in_user(self, receiver, odp_env):
        """LOGGING builds the handler; the middleware adds the user; anonymous sends nothing."""
        run_example("django_app.py", odp_env)

        expected = [
            (
                "purchased",
                {"fs_user_id": "1", "email": "ada@example.com"},
                {"item": "shirt", "price": 50.0},
            )
        ]
        assert expected == sent(receiver)


@needs("flask")
class TestFlask:
    def test_views_send_with_the_requests_user(self, receiver, odp_env):
        """Both views' events carry the user that before_request put in the context."""
        run_example("flask_app.py", odp_env)

        user = {"fs_user_id": "user123"}
        assert [
            ("added_to_cart", user, {"item": "shirt"}),
            ("purchased", user, {"price": 50.0, "currency": "USD"}),
        ] == sent(receiver)

    def test_without_an_account_it_uses_a_local_receiver(self):
        """With no ODP_* set, the example starts its own receiver and prints what arrived."""
        done = run_example("flask_app.py", {})

        assert "received 2 event(s) at http://127.0.0.1:" in done.stdout
        assert "purchased        {'fs_user_id': 'user123'}" in done.stdout
        assert "" == done.stderr


@needs("fastapi")
class TestFastAPI:
    def test_async_endpoints_keep_each_requests_user(self, receiver, odp_env):
        """The middleware's context reaches the async endpoint, one user per request."""
        run_example("fastapi_app.py", odp_env)

        assert [
            ("purchased", {"fs_user_id": "u1"}, {"item": "shirt", "price": 50.0}),
            ("purchased", {"fs_user_id": "u2"}, {"item": "hat", "price": 20.0}),
        ] == sent(receiver)


@needs("celery")
class TestCelery:
    def test_worker_shutdown_delivers_the_tasks_events(self, receiver, odp_env):
        """A real prefork worker's events arrive at its warm shutdown, not on a timer."""
        # A flush interval longer than the run: only the shutdown can send the events.
        run_example("celery_app.py", {**odp_env, "ODP_FLUSH_INTERVAL": "300"})

        received = sorted(sent(receiver), key=lambda event: event[1]["fs_user_id"])
        assert [
            ("payment_captured", {"fs_user_id": f"user{n}"}, {"amount": 10.0 * n})
            for n in range(1, 5)
        ] == received


@needs("gunicorn")
class TestGunicorn:
    def test_preloaded_workers_each_deliver_their_events(self, receiver, odp_env):
        """Every request's event arrives, from two workers or more, at their graceful exit."""
        done = run_example("gunicorn_app.py", {**odp_env, "ODP_FLUSH_INTERVAL": "300"})

        events = sent(receiver)
        answered = int(done.stdout.split("workers that answered: ")[1].split()[0])
        assert answered >= 2
        assert len({event[2]["worker"] for event in events}) == answered
        users = sorted(int(event[1]["fs_user_id"].removeprefix("user")) for event in events)
        assert list(range(len(users))) == users
        assert len(users) >= 6
