"""HTTP to the ODP events API, and what each answer means for the batch sent.

Used only by the worker thread. One ``requests`` session per transport keeps the
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
import urllib3

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
            # The body of an answer is read raw: it must not come compressed.
            "accept-encoding": "identity",
        }
        self._route: _Route | None = None

    def __repr__(self) -> str:
        return f"Transport(url={self._url!r})"

    def post(self, body: bytes, timeout: float | None = None) -> Answer:
        """Send one batch and classify the answer; never raises for network trouble.

        Redirects are not followed: they would carry the ``x-api-key`` header to
        whatever host a redirect names.

        Args:
            body: The JSON array of encoded events.
            timeout: A shorter connect and read timeout for this request (at close, so
                that a request never outlives the shutdown time).
        """
        seconds = self._timeout if timeout is None else min(timeout, self._timeout)
        try:
            with _entered_hooks():
                route = self._get_route()
                response = route.pool.urlopen(
                    "POST",
                    route.target,
                    body=body,
                    headers=self._headers,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    retries=_NO_RETRIES,
                    timeout=urllib3.Timeout(connect=seconds, read=seconds),
                )
                content = _read_limited(response)
        except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
            self.reset()
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            if isinstance(cause, (TimeoutError, urllib3.exceptions.TimeoutError)):
                return Answer(Verdict.RETRY, detail="the request timed out")
            # Name only the exception type: its text can embed the URL and headers.
            return Answer(Verdict.RETRY, detail=f"network error ({type(cause).__name__})")
        return classify(response.status, response.headers.get("retry-after"), content)

    def configure(self, url: str, api_key: str) -> None:
        """Send to ``url`` with ``api_key`` from now on (a datafile named new ones)."""
        self._url = url
        self._headers = {**self._headers, "x-api-key": api_key}
        self.reset()

    def reset(self) -> None:
        """Close the session and its connections, e.g. after a network error."""
        opened, self._route = self._route, None
        if opened is not None:
            with contextlib.suppress(Exception):
                opened.session.close()

    def forget(self) -> None:
        """Abandon the session without closing it, in a forked child.

        The connection belongs to the parent: the child must not shut it down, only
        stop using it and open its own.
        """
        self._route = None

    def _get_route(self) -> _Route:
        """Return the connection pool and request target, made on first use."""
        if self._route is None:
            self._route = _Route.to(self._url)
        return self._route


_NO_RETRIES: Final = urllib3.Retry(0, read=False, redirect=False)
"""Retries are the worker's business: urllib3 must not retry on its own."""


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where batches go: a requests session's urllib3 pool for the events URL.

    requests resolves, once per session, what the environment says (``HTTPS_PROXY``
    and ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``; ``~/.netrc`` is not read) and builds the
    pool with its TLS settings and the certifi bundle. Batches are then posted through
    that pool directly: ``Session.send`` would spend more than half of each request's
    CPU (245 µs against 146 µs for a batch of 100) building a ``requests.Response``
    whose cookies, hooks and history the worker never reads.

    Attributes:
        session: Owns the pool; closed to drop the connection.
        pool: The keep-alive connection pool (one connection) for the host or proxy.
        target: What the request line names: the path, or the whole URL via an HTTP proxy.
        verify: Whether (or with which CA bundle) the server's certificate is checked.
    """

    session: requests.Session
    pool: urllib3.HTTPConnectionPool
    target: str
    verify: bool | str

    @classmethod
    def to(cls, url: str) -> _Route:
        session = requests.Session()
        session.trust_env = False  # read here, once, not on every request
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        proxies = requests.utils.get_environ_proxies(url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        request = requests.Request("POST", url).prepare()
        pool = adapter.get_connection_with_tls_context(request, verify, proxies=proxies)
        if not isinstance(pool, urllib3.HTTPConnectionPool):  # what the adapter makes
            msg = f"unsupported connection pool {type(pool).__name__}"
            raise requests.RequestException(msg)
        # What HTTPAdapter.send does before each request: TLS checks with certifi's bundle.
        cert_verify: Callable[..., None] = adapter.cert_verify
        cert_verify(pool, url, verify, None)
        return cls(session, pool, adapter.request_url(request, proxies), verify)


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


def _read_limited(response: urllib3.BaseHTTPResponse) -> bytes:
    """Read the answer's body, keeping at most :data:`MAX_RESPONSE_BYTES`.

    A body read to its end releases the connection for the next request; a longer one
    is cut off and its connection closed.
    """
    content = response.read(MAX_RESPONSE_BYTES)
    if len(content) < MAX_RESPONSE_BYTES or not response.read(1):
        response.release_conn()
    else:
        response.close()
    return content


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
