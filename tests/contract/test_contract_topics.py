"""Tests for MQTT topic names: builders, parse and its TopicError reasons, shared subscriptions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import topics
from gateway.contract import Lane
from gateway.topics import GATEWAY_ID_RE, Kind, TopicError


def test_builders_spell_the_documented_topics() -> None:
    """Each builder returns the topic the design names for that kind."""
    assert topics.telemetry("gw-1") == "gw/gw-1/telemetry"
    assert topics.alerts("gw-1") == "gw/gw-1/alerts"
    assert topics.status("gw-1") == "gw/gw-1/status"
    assert topics.config("gw-1") == "gw/gw-1/config"
    assert topics.config_ack("gw-1") == "gw/gw-1/config/ack"
    assert topics.OFFLINE == b"offline"


def test_every_lane_has_a_topic() -> None:
    """A lane value names the topic its envelopes are published on."""
    assert [topics.topic("g", lane) for lane in Lane] == ["gw/g/alerts", "gw/g/status", "gw/g/telemetry"]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(GATEWAY_ID_RE, fullmatch=True), st.sampled_from(Kind))
def test_parse_inverts_topic(gateway: str, kind: Kind) -> None:
    """parse() returns exactly the gateway and kind a topic was built from."""
    assert topics.parse(topics.topic(gateway, kind)) == (gateway, kind)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("telemetry", "malformed"),
        ("gw/gw-1", "malformed"),
        ("xx/gw-1/telemetry", "malformed"),
        ("/gw-1/telemetry", "malformed"),
        ("gw/+/telemetry", "gateway"),
        ("gw/#/telemetry", "gateway"),
        ("gw/GW-1/telemetry", "gateway"),
        ("gw//telemetry", "gateway"),
        ("gw/-gw/telemetry", "gateway"),
        ("gw/" + "a" * 65 + "/telemetry", "gateway"),
        ("gw/gw-1/telemetry/extra", "kind"),
        ("gw/gw-1/bulk", "kind"),
        ("gw/gw-1/", "kind"),
        ("gw/gw-1/config/ack/x", "kind"),
    ],
)
def test_parse_rejects_foreign_and_spoofed_topics(topic: str, reason: str) -> None:
    """Topics outside the scheme, with wildcard or bad gateway ids, or unknown kinds raise TopicError."""
    with pytest.raises(TopicError) as info:
        topics.parse(topic)
    assert info.value.reason == reason


@pytest.mark.parametrize("gateway", ["", "GW", "a/b", "a+b", "a#", "-a", "_a", "a" * 65, "é"])
def test_builders_refuse_invalid_gateway_ids(gateway: str) -> None:
    """No builder produces a topic for an id that could escape its gw/{gateway}/ prefix."""
    with pytest.raises(TopicError) as info:
        topics.telemetry(gateway)
    assert info.value.reason == "gateway"
    assert not topics.is_gateway_id(gateway)


def test_valid_gateway_id_edges() -> None:
    """One character and 64 characters are both valid ids."""
    assert topics.validate_gateway("a") == "a"
    assert topics.validate_gateway("0" + "_-" * 31 + "z") == "0" + "_-" * 31 + "z"


def test_filters_and_shared_subscriptions() -> None:
    """Wildcard and shared-subscription helpers build the filters ingest workers subscribe to."""
    assert topics.any_gateway(Kind.TELEMETRY) == "gw/+/telemetry"
    assert topics.any_gateway("config/ack") == "gw/+/config/ack"
    assert topics.own_prefix("gw-1") == "gw/gw-1/#"
    assert topics.shared("ingest", topics.any_gateway(Lane.ALERTS)) == "$share/ingest/gw/+/alerts"
    assert topics.shared(group="ingest", filter="gw/#") == "$share/ingest/gw/#"


@pytest.mark.parametrize(
    ("group", "topic_filter", "reason"),
    [
        ("", "gw/#", "group"),
        ("a/b", "gw/#", "group"),
        ("a+", "gw/#", "group"),
        ("g", "", "filter"),
        ("g", "$SYS/#", "filter"),
    ],
)
def test_shared_rejects_bad_groups_and_filters(group: str, topic_filter: str, reason: str) -> None:
    """A group with topic syntax in it, or an empty or $-filter, raises TopicError."""
    with pytest.raises(TopicError) as info:
        topics.shared(group, topic_filter)
    assert info.value.reason == reason


def test_unknown_kind() -> None:
    """Asking for a topic of an unknown kind raises TopicError(kind)."""
    with pytest.raises(TopicError) as info:
        topics.topic("gw-1", "bulk")
    assert info.value.reason == "kind"
    with pytest.raises(TopicError):
        topics.any_gateway("bulk")
