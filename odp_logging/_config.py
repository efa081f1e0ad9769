"""Client options: keyword, then ``ODP_*`` environment variable, then default.

The names, environment variables and defaults are the configuration table of the
product contract (``docs/configuration.md``). Keyword values are checked strictly
(a wrong value is a programming error, reported at construction); environment
values are checked leniently (a wrong value gets a warning and the default), so
that a typo in a deployment never stops an application from starting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from odp_logging._datafile import CDN_URL as CDN_DATAFILE_URL
from odp_logging._datafile import DatafileError, load_datafile, odp_integration

logger = logging.getLogger("odp_logging")

DEFAULT_API_HOST: Final = "https://api.zaius.com"
_REGIONAL_HOSTS: Final = {
    "eu1": "https://api.eu1.odp.optimizely.com",
    "au1": "https://api.au1.odp.optimizely.com",
}
MAX_BATCH_SIZE: Final = 500
MAX_BATCH_BYTES: Final = 500_000
"""Upper bound of one request body; ODP documents no limit, Segment's 500 KB is the anchor."""

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """An option was given a value it cannot take."""


@dataclasses.dataclass(frozen=True)
class Options:
    """The resolved, immutable configuration of one client.

    Build it with :meth:`resolve`; two integrations that resolve equal options share
    one default client. ``api_key`` never appears in ``repr()``.
    """

    api_key: str | None = dataclasses.field(default=None, repr=False)
    api_host: str = DEFAULT_API_HOST
    batch_size: int = 100
    flush_interval: float = 1.0
    max_queue_size: int = 25_000
    request_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    spool_path: str | None = None
    spool_max_bytes: int = 100_000_000
    data_source: str = "odp-logging"
    enabled: bool = True
    allow_insecure_http: bool = False
    static_data: tuple[tuple[str, Any], ...] = ()
    """Data added to every event (under the event's own keys), as sorted pairs so the
    options stay hashable."""
    sdk_key: str | None = dataclasses.field(default=None, repr=False)
    """An Optimizely SDK key: the ODP key and host come from its datafile on the CDN."""
    datafile: str | None = dataclasses.field(default=None, repr=False)
    """A datafile as JSON text or a path (a mapping given is kept as JSON text)."""
    datafile_url: str | None = None
    """Where to fetch the datafile from, instead of the CDN URL of ``sdk_key``."""

    @property
    def uses_datafile_url(self) -> bool:
        """Whether the ODP key and host are to be fetched (and re-fetched) from a URL."""
        return not self.api_key and bool(self.datafile_url or self.sdk_key)

    @property
    def effective_datafile_url(self) -> str | None:
        """The URL of the datafile to fetch, if any."""
        if self.datafile_url:
            return self.datafile_url
        return CDN_DATAFILE_URL.format(sdk_key=self.sdk_key) if self.sdk_key else None

    @property
    def events_url(self) -> str:
        """The ODP events endpoint, ``{api_host}/v3/events``."""
        return f"{self.api_host}/v3/events"

    @property
    def api_key_hint(self) -> str:
        """A masked form of the key that is safe to print: its last four characters."""
        if not self.api_key:
            return "(none)"
        return f"****{self.api_key[-4:]}" if len(self.api_key) > 8 else "****"

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Options:
        """Resolve options from keywords, then ``ODP_*`` variables, then defaults.

        Args:
            environ: The environment to read; ``os.environ`` when None.
            **options: Keyword options; None means "not given".

        Returns:
            The resolved options.

        Raises:
            ConfigError: A keyword option is unknown or has an invalid value.
        """
        env = os.environ if environ is None else environ
        unknown = set(options) - _FIELD_NAMES
        if unknown:
            raise ConfigError(
                f"unknown odp-logging option(s): {', '.join(sorted(unknown))}; "
                f"valid options are {', '.join(sorted(_FIELD_NAMES))}"
            )
        values: dict[str, Any] = {}
        for name, (env_name, parse) in _PARSERS.items():
            given = options.get(name)
            if given is not None:
                values[name] = _checked(name, given, parse)
            elif env_name in env:
                try:
                    values[name] = parse(env[env_name])
                except (ConfigError, ValueError, TypeError) as exc:
                    logger.warning("ignoring %s: %s; using the default", env_name, exc)
        static = options.get("static_data")
        if static is not None:
            values["static_data"] = _static_data(static)
        datafile = options.get("datafile")
        if datafile is not None:
            values["datafile"] = _datafile(datafile)
        elif "ODP_DATAFILE" in env:
            values["datafile"] = env["ODP_DATAFILE"].strip() or None
        if values.get("datafile") and not values.get("api_key"):
            values.update(_credentials_from_datafile(values["datafile"], "api_host" in values))
        if "api_host" not in values and values.get("api_key"):
            values["api_host"] = _host_for_key(values["api_key"])
        if "api_host" in values:
            _check_transport_security(values["api_host"], values.get("allow_insecure_http", False))
        return cls(**values)


def _checked(name: str, value: Any, parse: Callable[[str], Any]) -> Any:
    """Check a keyword value, accepting either the option's own type or its text form."""
    kind = _KIND[parse]
    if isinstance(value, os.PathLike) and name == "spool_path":
        value = os.fspath(value)
    if isinstance(value, str):
        text = value
    elif kind == "bool" and isinstance(value, bool):
        return value
    elif kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(value)
    else:
        raise ConfigError(
            f"invalid value for odp-logging option {name!r}: expected a {kind}, "
            f"got {type(value).__name__}"
        )
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"invalid value for odp-logging option {name!r}: {exc}") from None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text.strip())
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text.strip())
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"must be zero or a positive number of seconds, got {text!r}")
    return value


def _text(text: str) -> str:
    return text.strip()


def _optional_text(text: str) -> str | None:
    return text.strip() or None


def _optional_url(text: str) -> str | None:
    url = text.strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("must be an http(s) URL")
    return url


def _api_host(text: str) -> str:
    host = text.strip().rstrip("/")
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://api.zaius.com")
    if parts.path.endswith("/v3") or parts.path.endswith("/v3/events"):
        raise ValueError("is a base URL without /v3, as in the datafile's ODP integration")
    return host


def _check_transport_security(host: str, allow_insecure_http: bool) -> None:
    """Refuse to send the key in clear text to anything but this machine."""
    parts = urlsplit(host)
    if parts.scheme == "https" or allow_insecure_http or _is_loopback(parts.hostname or ""):
        return
    raise ConfigError(
        "api_host uses http:// to a host that is not loopback; the API key would travel "
        "in clear text. Use https://, or pass allow_insecure_http=True to accept the risk."
    )


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _host_for_key(api_key: str) -> str:
    """Pick the regional host from the key's suffix, as ODP's own Node SDK does."""
    public_part = api_key.rsplit(".", 1)[0] if "." in api_key else api_key
    region = public_part.rsplit("-", 1)[-1] if "-" in public_part else ""
    return _REGIONAL_HOSTS.get(region, DEFAULT_API_HOST)


def _datafile(value: Any) -> str:
    """Keep a datafile option as text: JSON for a mapping, else the JSON text or path."""
    if isinstance(value, Mapping):
        return json.dumps({key: value[key] for key in value}, sort_keys=True)
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigError("odp-logging option 'datafile' must be a mapping, JSON text or a path")


def _credentials_from_datafile(datafile: str, host_given: bool) -> dict[str, str]:
    """Read the ODP key (and host, unless given) from a datafile; {} when it has none."""
    try:
        integration = odp_integration(load_datafile(datafile))
    except DatafileError as exc:
        raise ConfigError(f"invalid value for odp-logging option 'datafile': {exc}") from None
    if integration is None:
        return {}
    found = {"api_key": integration.api_key}
    if not host_given:
        found["api_host"] = _api_host(integration.api_host)
    return found


def _static_data(value: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError("odp-logging option 'static_data' must be a mapping")
    # Index each key rather than iterating items(): dictConfig hands nested dicts over
    # as ConvertingDict, which resolves ext:// and cfg:// references only in __getitem__.
    keys = list(value)
    if not all(isinstance(key, str) for key in keys):
        raise ConfigError("odp-logging option 'static_data' must have string keys")
    return tuple(sorted((key, value[key]) for key in keys))


_TEXT_PARSERS: Final = (_text, _optional_text, _api_host, _optional_url)
_PARSERS: Final[dict[str, tuple[str, Callable[[str], Any]]]] = {
    "api_key": ("ODP_API_KEY", _optional_text),
    "api_host": ("ODP_API_HOST", _api_host),
    "batch_size": ("ODP_BATCH_SIZE", _bounded_int(1, MAX_BATCH_SIZE)),
    "flush_interval": ("ODP_FLUSH_INTERVAL", _positive_float),
    "max_queue_size": ("ODP_MAX_QUEUE_SIZE", _bounded_int(1)),
    "request_timeout": ("ODP_REQUEST_TIMEOUT", _positive_float),
    "shutdown_timeout": ("ODP_SHUTDOWN_TIMEOUT", _non_negative_float),
    "spool_path": ("ODP_SPOOL_PATH", _optional_text),
    "spool_max_bytes": ("ODP_SPOOL_MAX_BYTES", _bounded_int(10_000)),
    "data_source": ("ODP_DATA_SOURCE", _text),
    "enabled": ("ODP_ENABLED", _parse_bool),
    "allow_insecure_http": ("ODP_ALLOW_INSECURE_HTTP", _parse_bool),
    "sdk_key": ("ODP_SDK_KEY", _optional_text),
    "datafile_url": ("ODP_DATAFILE_URL", _optional_url),
}
_KIND: Final[dict[Callable[[str], Any], str]] = {
    parse: "bool" if parse is _parse_bool else "string" if parse in _TEXT_PARSERS else "number"
    for _, parse in _PARSERS.values()
}
_FIELD_NAMES: Final = frozenset(field.name for field in dataclasses.fields(Options))
ENVIRONMENT_VARIABLES: Final = {name: env for name, (env, _) in _PARSERS.items()}
"""Option name to environment variable, for documentation and ``odp-logging config``."""
