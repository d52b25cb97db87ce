"""The cost profile is versioned and checked whole before anything is planned from it."""

from __future__ import annotations

import json

import pytest

from matchday.capacity import classes as k
from matchday.capacity.profile import OLDEST, VERSION, ProfileError, parse_profile
from tests.unit.capacity_cases import profile, profile_data


def test_a_profile_round_trips_through_its_json() -> None:
    p = profile()
    again = parse_profile(p.to_json())
    assert again == p
    assert json.loads(p.to_json())["schema"] == "matchday.capacity.profile"
    assert again.hot_shard.cpu_ceiling_per_s == pytest.approx(10_000)


@pytest.mark.parametrize(
    ("version", "complaint"),
    [(OLDEST - 1, "older than this matchday's"), (VERSION + 1, "newer than this matchday's")],
)
def test_a_profile_of_another_version_is_refused_before_its_fields_are_read(
    version: int, complaint: str
) -> None:
    data = profile_data(version=version)
    data["classes"] = "whatever an old version kept here"
    with pytest.raises(ProfileError, match=complaint):
        parse_profile(json.dumps(data))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not JSON"),
        ("[]", "not a matchday capacity profile"),
        (json.dumps({"schema": "matchday.capacity.profile"}), "no schema version"),
    ],
)
def test_what_is_not_a_profile_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(ProfileError, match=complaint):
        parse_profile(text)


def test_a_profile_missing_a_class_is_refused_by_name() -> None:
    data = profile_data()
    del data["classes"][k.POLL_VOTE]
    with pytest.raises(ProfileError, match="lacks classes poll_vote"):
        parse_profile(json.dumps(data))


def test_a_class_without_cpu_cost_is_refused() -> None:
    data = profile_data()
    data["classes"][k.BROWSE]["cpu_us"] = {"load generator": 50.0}
    with pytest.raises(ProfileError, match="no CPU cost for browse"):
        parse_profile(json.dumps(data))


def test_a_malformed_field_is_named() -> None:
    data = profile_data()
    data["classes"][k.ADD]["cpu_us"]["shards"] = -1.0
    with pytest.raises(ProfileError, match=r"classes\.add_to_cart\.cpu_us"):
        parse_profile(json.dumps(data))
