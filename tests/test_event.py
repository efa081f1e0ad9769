"""The ODP event rules of design.md section 2, as pure functions."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any

import pytest

from odp_logging._event import EventBuilder, Rejection, clean_context, normalise_identifiers
from odp_logging._version import __version__


def build(
    action: object = "purchased",
    event_type: object = None,
    identifiers: object = None,
    data: object = None,
    context: Any = None,
    **builder_options: Any,
) -> dict[str, Any]:
    """Build one event and decode it, failing the test on a rejection."""
    builder = EventBuilder(builder_options.pop("data_source", "odp-logging"), **builder_options)
    encoded = builder.build(
        action,
        event_type,
        {"fs_user_id": "u1"} if identifiers is None else identifiers,
        data,
        context,
    )
    assert isinstance(encoded, bytes), encoded
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def reject(
    action: object = "purchased",
    event_type: object = None,
    identifiers: object = None,
    data: object = None,
) -> Rejection:
    """Build one event that must be rejected and return the rejection."""
    encoded = EventBuilder("odp-logging").build(
        action, event_type, {"fs_user_id": "u1"} if identifiers is None else identifiers, data
    )
    assert isinstance(encoded, Rejection), encoded
    return encoded


class Colour(enum.Enum):
    """An enum whose values are sent as data."""

    RED = "red"


class TestWireShape:
    """The keys, their order and the default data of one event."""

    def test_keys_in_sdk_order(self) -> None:
        """An event has type, action, identifiers and data, in the SDKs' order."""
        assert ["type", "action", "identifiers", "data"] == list(build())

    def test_default_data_first_in_sdk_order(self) -> None:
        """The four default data keys come first, with the SDKs' values."""
        data = build(data={"item": "shirt"})["data"]
        assert [
            "idempotence_id",
            "data_source_type",
            "data_source",
            "data_source_version",
            "item",
        ] == list(data)
        assert "sdk" == data["data_source_type"]
        assert "odp-logging" == data["data_source"]
        assert __version__ == data["data_source_version"]

    def test_idempotence_id_is_a_fresh_uuid4(self) -> None:
        """Each event gets a new version-4 UUID."""
        builder = EventBuilder("odp-logging")
        ids = set()
        for _ in range(600):  # more than one pool of random bytes
            encoded = builder.build("a", None, {"fs_user_id": "u"}, None)
            assert isinstance(encoded, bytes)
            ids.add(json.loads(encoded)["data"]["idempotence_id"])
        assert 600 == len(ids)
        assert all(4 == uuid.UUID(value).version for value in ids)

    def test_caller_data_overrides_defaults(self) -> None:
        """The caller's keys replace the default data, as in the SDKs."""
        data = build(data={"idempotence_id": "mine", "data_source": "override"})["data"]
        assert "mine" == data["idempotence_id"]
        assert "override" == data["data_source"]

    def test_data_source_option(self) -> None:
        """The data_source option sets the default data_source value."""
        assert "shop" == build(data_source="shop")["data"]["data_source"]

    def test_static_data_under_event_data(self) -> None:
        """static_data is added to every event, under the event's own keys."""
        data = build(data={"b": 2}, static_data={"a": 1, "b": 1})["data"]
        assert (1, 2) == (data["a"], data["b"])

    def test_compact_valid_utf8_json(self) -> None:
        """Events are compact JSON in UTF-8, non-ASCII text included."""
        encoded = EventBuilder("x").build("a", None, {"email": "ü@example.com"}, None)
        assert isinstance(encoded, bytes)
        assert "ü@example.com".encode() in encoded
        assert b", " not in encoded


class TestType:
    """The event type."""

    @pytest.mark.parametrize("given", [None, ""])
    def test_defaults_to_fullstack(self, given: object) -> None:
        """A missing or empty type becomes fullstack."""
        assert "fullstack" == build(event_type=given)["type"]

    def test_custom_type_kept(self) -> None:
        """A given type is sent as is."""
        assert "custom" == build(event_type="custom")["type"]

    def test_non_string_rejected(self) -> None:
        """A type that is not a string is invalid_type."""
        assert "invalid_type" == reject(event_type=3).reason


class TestAction:
    """The event action."""

    @pytest.mark.parametrize("given", [None, "", 5, b"bytes"])
    def test_must_be_non_empty_string(self, given: object) -> None:
        """Empty and non-string actions are invalid_action."""
        assert "invalid_action" == reject(action=given).reason


class TestIdentifiers:
    """Identifier cleaning and the SDKs' fs_user_id aliasing."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ({"fs-user-id": "u"}, {"fs_user_id": "u"}),
            ({"FS-USER-ID": "u"}, {"fs_user_id": "u"}),
            ({"Fs_User_Id": "u"}, {"fs_user_id": "u"}),
            ({"fs_user_id": "a", "FS-USER-ID": "b"}, {"fs_user_id": "a", "FS-USER-ID": "b"}),
            ({"FS-USER-ID": "b", "fs_user_id": "a"}, {"fs_user_id": "b"}),
            ({"fsuserid": "u"}, {"fsuserid": "u"}),
            ({"email": "e", "FS_USER_ID": "u"}, {"email": "e", "fs_user_id": "u"}),
        ],
    )
    def test_alias_like_optimizely_sdk(
        self, given: dict[str, str], expected: dict[str, str]
    ) -> None:
        """fs-user-id variants become fs_user_id exactly as optimizely-sdk 5.7.0 does it."""
        assert expected == normalise_identifiers(given)

    def test_alias_moves_key_last(self) -> None:
        """The aliased key is re-inserted at the end, as the SDK's pop and set does."""
        assert ["email", "fs_user_id"] == list(
            normalise_identifiers({"FS-USER-ID": "u", "email": "e"})
        )

    def test_caller_dict_not_mutated(self) -> None:
        """Aliasing works on a copy: the caller's dict is left as it was."""
        given = {"fs-user-id": "u"}
        normalise_identifiers(given)
        assert {"fs-user-id": "u"} == given

    def test_ints_become_strings(self) -> None:
        """Int identifier values are sent as strings."""
        assert {"fs_user_id": "42"} == build(identifiers={"fs_user_id": 42})["identifiers"]

    def test_none_and_empty_removed(self) -> None:
        """None and empty values are left out."""
        assert {"email": "e"} == build(identifiers={"email": "e", "vuid": None, "x": ""})[
            "identifiers"
        ]

    @pytest.mark.parametrize("given", [{}, {"email": None}, {"email": ""}])
    def test_none_left_is_no_identifiers(self, given: dict[str, Any]) -> None:
        """No usable identifier is no_identifiers."""
        assert "no_identifiers" == reject(identifiers=given).reason

    @pytest.mark.parametrize(
        "given",
        [["fs_user_id"], "u1", {"fs_user_id": 1.5}, {"fs_user_id": True}, {1: "u"}, {"a": ["x"]}],
    )
    def test_wrong_types_are_invalid_identifiers(self, given: object) -> None:
        """Non-mappings, non-string keys and non-string/int values are invalid_identifiers."""
        assert "invalid_identifiers" == reject(identifiers=given).reason

    def test_warning_names_field_not_value(self) -> None:
        """The rejection text names the identifier and the problem, never its value."""
        rejection = reject(identifiers={"email": ["secret@example.com"]})
        assert "email" in rejection.describe()
        assert "secret" not in rejection.describe()


class TestData:
    """Data value coercion and validation."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("text", "text"),
            (3, 3),
            (2.5, 2.5),
            (True, True),
            (None, ""),
            (datetime.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
            (datetime.date(2026, 1, 2), "2026-01-02"),
            (decimal.Decimal("50.25"), 50.25),
            (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
            (Colour.RED, "red"),
        ],
    )
    def test_coercions(self, given: object, expected: object) -> None:
        """Values are sent as ODP stores them."""
        assert expected == build(data={"v": given})["data"]["v"]

    @pytest.mark.parametrize(
        "given",
        [math.nan, math.inf, -math.inf, decimal.Decimal("NaN"), [1], {"a": 1}, object(), b"x"],
    )
    def test_invalid_values_are_invalid_data(self, given: object) -> None:
        """NaN, infinity, containers and other objects are invalid_data."""
        assert "invalid_data" == reject(data={"v": given}).reason

    @pytest.mark.parametrize("given", [["a"], "text", {1: "a"}])
    def test_data_must_be_string_keyed_mapping(self, given: object) -> None:
        """Data that is not a mapping with string keys is invalid_data."""
        assert "invalid_data" == reject(data=given).reason

    def test_lone_surrogates_replaced(self) -> None:
        """Text that is not valid UTF-8 is sent with the bad characters replaced."""
        assert "a?b" == build(data={"v": "a\ud800b"})["data"]["v"]

    def test_hostile_mapping_is_invalid_data(self) -> None:
        """A mapping that raises when read is dropped, not raised."""

        class Hostile(dict[str, str]):
            def __getitem__(self, key: str) -> str:
                raise RuntimeError("boom")

        assert "invalid_data" == reject(data=Hostile(a="b")).reason


class TestContext:
    """Context identifiers and data merged under the event's own."""

    def test_event_keys_win(self) -> None:
        """The event's identifiers and data override the context's."""
        context = clean_context({"fs_user_id": "ctx", "email": "c"}, {"page": "home", "a": 1})
        event = build(identifiers={"FS-USER-ID": "evt"}, data={"a": 2}, context=context)
        assert {"fs_user_id": "evt", "email": "c"} == event["identifiers"]
        assert (2, "home") == (event["data"]["a"], event["data"]["page"])

    def test_context_alone_identifies(self) -> None:
        """An event without identifiers takes the context's."""
        context = clean_context({"fs_user_id": "ctx"}, None)
        assert {"fs_user_id": "ctx"} == build(identifiers={}, context=context)["identifiers"]

    def test_invalid_context_ignored_with_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        """An invalid context is left out with a warning, not raised."""
        assert ({}, {}) == clean_context({"email": ["secret"]}, None)
        assert "secret" not in caplog.text
        assert "odp_logging.context() ignored" in caplog.text
