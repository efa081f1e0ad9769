"""Option resolution: keyword, then ODP_* environment variable, then default."""

from __future__ import annotations

import pathlib

import pytest

from odp_logging._config import ENVIRONMENT_VARIABLES, ConfigError, Options


class TestDefaults:
    """The defaults of the configuration table."""

    def test_table_defaults(self) -> None:
        """With nothing given, every option has design.md's default."""
        options = Options.resolve({})
        assert (
            None,
            "https://api.zaius.com",
            100,
            1.0,
            25_000,
            10.0,
            5.0,
            None,
            "odp-logging",
            True,
        ) == (
            options.api_key,
            options.api_host,
            options.batch_size,
            options.flush_interval,
            options.max_queue_size,
            options.request_timeout,
            options.shutdown_timeout,
            options.spool_path,
            options.data_source,
            options.enabled,
        )

    def test_events_url(self) -> None:
        """The endpoint is the host plus /v3/events."""
        assert "https://api.zaius.com/v3/events" == Options.resolve({}).events_url


class TestPrecedence:
    """Keyword over environment over default."""

    def test_environment_over_default(self) -> None:
        """An ODP_* variable replaces the default."""
        assert 50 == Options.resolve({"ODP_BATCH_SIZE": "50"}).batch_size

    def test_keyword_over_environment(self) -> None:
        """A keyword replaces the ODP_* variable."""
        assert 20 == Options.resolve({"ODP_BATCH_SIZE": "50"}, batch_size=20).batch_size

    def test_every_option_has_a_variable(self) -> None:
        """Each option but static_data is settable from the environment."""
        environ = {
            "ODP_API_KEY": "k",
            "ODP_API_HOST": "https://odp.example",
            "ODP_BATCH_SIZE": "10",
            "ODP_FLUSH_INTERVAL": "0.5",
            "ODP_MAX_QUEUE_SIZE": "7",
            "ODP_REQUEST_TIMEOUT": "3",
            "ODP_SHUTDOWN_TIMEOUT": "0",
            "ODP_SPOOL_PATH": "/tmp/spool.db",
            "ODP_DATA_SOURCE": "shop",
            "ODP_ENABLED": "false",
            "ODP_ALLOW_INSECURE_HTTP": "yes",
        }
        options = Options.resolve(environ)
        assert set(environ) <= set(ENVIRONMENT_VARIABLES.values())
        assert (
            "k",
            "https://odp.example",
            10,
            0.5,
            7,
            3.0,
            0.0,
            "/tmp/spool.db",
            "shop",
            False,
        ) == (
            options.api_key,
            options.api_host,
            options.batch_size,
            options.flush_interval,
            options.max_queue_size,
            options.request_timeout,
            options.shutdown_timeout,
            options.spool_path,
            options.data_source,
            options.enabled,
        )

    def test_text_keywords_accepted(self) -> None:
        """Keyword values may be given as text, as config files do."""
        assert (25, 0.2, False) == (
            Options.resolve({}, batch_size="25").batch_size,
            Options.resolve({}, flush_interval="0.2").flush_interval,
            Options.resolve({}, enabled="off").enabled,
        )

    def test_path_spool(self, tmp_path: pathlib.Path) -> None:
        """spool_path accepts a path object."""
        assert (
            str(tmp_path / "s.db") == Options.resolve({}, spool_path=tmp_path / "s.db").spool_path
        )


class TestHost:
    """The API host and its regional default."""

    @pytest.mark.parametrize(
        ("key", "host"),
        [
            ("abc-eu1", "https://api.eu1.odp.optimizely.com"),
            ("abc-au1", "https://api.au1.odp.optimizely.com"),
            ("abc-eu1.private", "https://api.eu1.odp.optimizely.com"),
            ("abc", "https://api.zaius.com"),
            ("abc-us1", "https://api.zaius.com"),
        ],
    )
    def test_region_from_key(self, key: str, host: str) -> None:
        """A key ending -eu1/-au1 selects the regional host, as ODP's Node SDK does."""
        assert host == Options.resolve({}, api_key=key).api_host

    def test_explicit_host_wins_over_region(self) -> None:
        """A given host is kept whatever the key's region."""
        assert (
            "https://x.example"
            == Options.resolve({}, api_key="a-eu1", api_host="https://x.example/").api_host
        )

    @pytest.mark.parametrize(
        "host", ["api.zaius.com", "ftp://x", "https://x/v3", "https://x/v3/events"]
    )
    def test_bad_host_rejected(self, host: str) -> None:
        """A host that is not a base http(s) URL is a ConfigError."""
        with pytest.raises(ConfigError, match="api_host"):
            Options.resolve({}, api_host=host)

    def test_insecure_http_refused(self) -> None:
        """http:// to a non-loopback host is refused: the key would travel in clear."""
        with pytest.raises(ConfigError, match="clear text"):
            Options.resolve({}, api_host="http://odp.example")

    @pytest.mark.parametrize(
        "host", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"]
    )
    def test_loopback_http_allowed(self, host: str) -> None:
        """http:// to this machine is fine."""
        assert host == Options.resolve({}, api_host=host).api_host

    def test_insecure_http_opt_in(self) -> None:
        """allow_insecure_http=True accepts http:// anywhere."""
        options = Options.resolve({}, api_host="http://odp.example", allow_insecure_http=True)
        assert "http://odp.example" == options.api_host


class TestValidation:
    """Bad values: strict for keywords, lenient for the environment."""

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("batch_size", 0),
            ("batch_size", 501),
            ("batch_size", "many"),
            ("batch_size", True),
            ("flush_interval", 0),
            ("flush_interval", -1.0),
            ("max_queue_size", 0),
            ("request_timeout", float("inf")),
            ("enabled", "maybe"),
            ("api_key", 123),
            ("static_data", ["a"]),
        ],
    )
    def test_keyword_errors_raise(self, option: str, value: object) -> None:
        """An invalid keyword is a ConfigError naming the option."""
        with pytest.raises(ConfigError, match=option):
            Options.resolve({}, **{option: value})

    def test_unknown_keyword_raises(self) -> None:
        """A misspelt option is a ConfigError listing the valid ones."""
        with pytest.raises(ConfigError, match="batchsize"):
            Options.resolve({}, batchsize=5)

    def test_environment_errors_warn_and_default(self, caplog: pytest.LogCaptureFixture) -> None:
        """An invalid ODP_* value is ignored with a warning naming the variable."""
        assert 100 == Options.resolve({"ODP_BATCH_SIZE": "lots"}).batch_size
        assert "ODP_BATCH_SIZE" in caplog.text


class TestSecrets:
    """The api key stays out of printed options."""

    def test_repr_hides_key(self) -> None:
        """repr() of options never shows the key."""
        assert "sekrit-key-123" not in repr(Options.resolve({}, api_key="sekrit-key-123"))

    def test_hint_masks_key(self) -> None:
        """The printable hint shows at most the last four characters."""
        assert "****-123" == Options.resolve({}, api_key="sekrit-key-123").api_key_hint
