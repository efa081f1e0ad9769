"""HTTP to the ODP events API, and what each answer means for the batch sent.

Used only by the worker thread. One ``requests.Session`` per transport keeps the
connection alive between batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
from collections.abc import Callable, Iterator
from typing import Final

import requests
import requests.adapters
import requests.utils

from odp_logging._retry import parse_retry_after
from odp_logging._version import __version__

USER_AGENT: Final = f"odp-logging/{__version__} python-requests/{requests.__version__}"
_RETRYABLE_STATUS: Final = frozenset({408, 429})
_SPLIT_STATUS: Final = frozenset({400, 413})
MAX_RESPONSE_BYTES: Final = 1_000_000
"""Most bytes of an answer read: enough for a 400 naming all 500 events of a batch, and
a misbehaving server cannot make the worker hold more."""


class Verdict(enum.Enum):
    """What to do with a batch after one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    """A transient failure: 408, 429, 5xx, a connection error or a timeout."""
    INVALID = "invalid"
    """A 400 (or a 413); ``Answer.invalid`` lists the events ODP named, if it named any."""
    UNAUTHORIZED = "unauthorized"
    """401/403: the key is wrong or revoked."""
    REJECTED = "rejected"
    """Any other 4xx: sending the same batch again cannot succeed."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """The classified outcome of one POST.

    Attributes:
        verdict: What to do with the batch.
        status: The HTTP status, or None when no response arrived.
        retry_after: The server's ``Retry-After`` in seconds, if given.
        invalid: Indices of events a 400 named as invalid (``detail.invalids[].event``).
        detail: A short description for diagnostics; never contains the api key.
    """

    verdict: Verdict
    status: int | None = None
    retry_after: float | None = None
    invalid: tuple[int, ...] = ()
    detail: str = ""


SendHook = Callable[[], contextlib.AbstractContextManager[object]]
"""A context manager factory entered around each request (e.g. to suppress tracing)."""
_send_hooks: list[SendHook] = []


def add_send_hook(hook: SendHook) -> None:
    """Enter ``hook()`` around every request, so integrations can tag the worker's I/O.

    The OpenTelemetry integration uses this to suppress instrumentation of our own
    HTTP calls, without this module importing OpenTelemetry.
    """
    if hook not in _send_hooks:
        _send_hooks.append(hook)


class Transport:
    """Posts encoded batches to ``{api_host}/v3/events``.

    Args:
        url: The events endpoint.
        api_key: The ODP public key, sent as ``x-api-key``.
        timeout: Connect and read timeout of one request, in seconds.
    """

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._headers = {
            "content-type": "application/json",
            "x-api-key": api_key,
            "user-agent": USER_AGENT,
        }
        self._session: tuple[requests.Session, requests.PreparedRequest] | None = None
        """The session, and the request prepared once that each batch copies."""

    def __repr__(self) -> str:
        return f"Transport(url={self._url!r})"

    def post(self, body: bytes, timeout: float | None = None) -> Answer:
        """Send one batch and classify the answer; never raises for network trouble.

        Redirects are not followed: requests would carry the ``x-api-key`` header to
        whatever host a redirect names.

        Args:
            body: The JSON array of encoded events.
            timeout: A shorter connect and read timeout for this request (at close, so
                that a request never outlives the shutdown time).
        """
        try:
            with _entered_hooks():
                session, template = self._get_session()
                request = template.copy()
                request.prepare_body(body, None)
                response = session.send(
                    request,
                    timeout=self._timeout if timeout is None else min(timeout, self._timeout),
                    allow_redirects=False,
                    stream=True,
                    proxies=session.proxies,
                    verify=session.verify,
                )
                with response:
                    content = _read_limited(response)
        except requests.Timeout:
            return Answer(Verdict.RETRY, detail="the request timed out")
        except requests.RequestException as exc:
            # Name only the exception type: its text can embed the URL and headers.
            self.reset()
            return Answer(Verdict.RETRY, detail=f"network error ({type(exc).__name__})")
        return classify(response.status_code, response.headers.get("retry-after"), content)

    def configure(self, url: str, api_key: str) -> None:
        """Send to ``url`` with ``api_key`` from now on (a datafile named new ones)."""
        self._url = url
        self._headers = {**self._headers, "x-api-key": api_key}
        self.reset()

    def reset(self) -> None:
        """Close the session and its connections, e.g. after a network error."""
        opened, self._session = self._session, None
        if opened is not None:
            with contextlib.suppress(Exception):
                opened[0].close()

    def forget(self) -> None:
        """Abandon the session without closing it, in a forked child.

        The connection belongs to the parent: the child must not shut it down, only
        stop using it and open its own.
        """
        self._session = None

    def _get_session(self) -> tuple[requests.Session, requests.PreparedRequest]:
        """Return the session and the request each batch copies, made on first use.

        The URL, headers, environment settings (and the session's cookies of that
        moment) are prepared once: ``Session.post`` would redo it all for each batch.
        """
        if self._session is None:
            session = requests.Session()
            # Retries are the worker's business: the adapter must not retry on its own.
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=1, pool_maxsize=1, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # Read the environment's proxy (NO_PROXY included) and CA bundle settings once
            # per session: requests would read them, and ~/.netrc, on every request.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(self._url)
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
            template = session.prepare_request(
                requests.Request("POST", self._url, headers=self._headers)
            )
            self._session = (session, template)
        return self._session


def classify(status: int, retry_after: str | None, body: bytes) -> Answer:
    """Map an HTTP answer to a :class:`Verdict`, as design.md section 3 states."""
    if 200 <= status < 300:
        return Answer(Verdict.DELIVERED, status)
    if status in _RETRYABLE_STATUS or status >= 500:
        return Answer(
            Verdict.RETRY, status, parse_retry_after(retry_after), detail=f"HTTP {status}"
        )
    if status in _SPLIT_STATUS:
        # A 413 names no event; splitting the batch, as for a 400 naming none, gets it through.
        indices = _invalid_indices(body) if status == 400 else ()
        return Answer(Verdict.INVALID, status, invalid=indices, detail=f"HTTP {status}")
    if status in (401, 403):
        return Answer(Verdict.UNAUTHORIZED, status, detail=f"HTTP {status}")
    return Answer(Verdict.REJECTED, status, detail=f"HTTP {status}")


def _read_limited(response: requests.Response) -> bytes:
    """Read the answer's body, keeping at most :data:`MAX_RESPONSE_BYTES`.

    A body read to its end releases the connection for the next request; a longer one
    is cut off and its connection closed.
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


def _invalid_indices(body: bytes) -> tuple[int, ...]:
    """Read ``detail.invalids[].event`` from a 400 body; empty when absent or unreadable."""
    try:
        invalids = json.loads(body)["detail"]["invalids"]
        return tuple(sorted({int(item["event"]) for item in invalids}))
    except (ValueError, TypeError, KeyError, RecursionError):
        return ()


@contextlib.contextmanager
def _entered_hooks() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for hook in _send_hooks:
            stack.enter_context(hook())
        yield
