"""Config bundles: per-gateway versions, the retained config payload, and acks recorded or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.bundles import BundleError
from gateway import topics
from gateway.enrolment import AckStatus, ConfigAck, decode_bundle, encode
from tests.cloud.registry_rig import T0, make_registry


def test_versions_increase_per_gateway_and_stamp_config_version(tmp_path: Path) -> None:
    """Each gateway counts its own versions from 1, and the document carries the version as config_version."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "site", T0)
    registry.register_gateway("gw-b", "site", T0)
    bundles = registry.bundles
    a1 = bundles.create("gw-a", {"devices": [], "config_version": "ignored"}, T0)
    a2 = bundles.create("gw-a", {"devices": []}, T0 + 1)
    b1 = bundles.create("gw-b", {"devices": []}, T0 + 2)
    assert [a1.version, a2.version, b1.version] == [1, 2, 1]
    assert a1.document["config_version"] == "1"
    assert a2.document["config_version"] == "2"
    assert [r.bundle for r in bundles.history("gw-a")] == [a1, a2]
    latest = bundles.latest("gw-a")
    assert latest is not None
    assert latest.bundle == a2
    with pytest.raises(BundleError) as unknown:
        bundles.create("gw-zz", {}, T0)
    assert unknown.value.reason == "unknown_gateway"


def test_publication_is_the_retained_bundle_on_the_config_topic(tmp_path: Path) -> None:
    """publish_bundle stores the next version and returns its retained QoS 1 message for gw/{id}/config."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "site", T0)
    message = registry.bundles.publish_bundle("gw-a", {"devices": [{"id": "d1", "profile": "gnss-nmea"}]}, T0)
    assert (message.topic, message.retain, message.qos) == (topics.config("gw-a"), True, 1)
    assert decode_bundle(message.payload) == message.bundle
    assert message.bundle.document["devices"][0]["id"] == "d1"
    assert b"password" not in message.payload


def test_acks_are_recorded_on_their_version(tmp_path: Path) -> None:
    """An applied ack marks its version applied; a rolled_back ack keeps its error text."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "site", T0)
    bundles = registry.bundles
    bundles.create("gw-a", {}, T0)
    bundles.create("gw-a", {}, T0)
    applied = ConfigAck(gateway="gw-a", version=1, status=AckStatus.APPLIED, ts_ms=T0 + 5)
    failed = ConfigAck(
        gateway="gw-a", version=2, status=AckStatus.ROLLED_BACK, error="port gnss: no such file", ts_ms=T0
    )
    assert bundles.record_ack("gw-a", encode(applied), T0 + 10) == applied
    bundles.record_ack("gw-a", encode(failed), T0 + 20)
    v1, v2 = bundles.history("gw-a")
    assert (v1.ack_status, v1.ack_ms) == (AckStatus.APPLIED, T0 + 10)
    assert (v2.ack_status, v2.ack_error) == (AckStatus.ROLLED_BACK, "port gnss: no such file")
    record = bundles.applied("gw-a")
    assert record is not None
    assert record.bundle.version == 1


def test_spoofed_unknown_and_malformed_acks_are_refused(tmp_path: Path) -> None:
    """An ack naming another gateway, an unknown version or broken JSON raises BundleError with its reason."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "site", T0)
    registry.register_gateway("gw-b", "site", T0)
    registry.bundles.create("gw-a", {}, T0)
    other = ConfigAck(gateway="gw-b", version=1, status=AckStatus.APPLIED, ts_ms=T0)
    missing = ConfigAck(gateway="gw-a", version=9, status=AckStatus.APPLIED, ts_ms=T0)
    cases = [(encode(other), "spoofed"), (encode(missing), "unknown_version"), (b"{not json", "invalid")]
    for payload, reason in cases:
        with pytest.raises(BundleError) as refused:
            registry.bundles.record_ack("gw-a", payload, T0)
        assert refused.value.reason == reason
    record = registry.bundles.latest("gw-a")
    assert record is not None
    assert record.ack_status is None
