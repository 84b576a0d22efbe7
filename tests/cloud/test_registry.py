"""The fleet registry: registration, one-time enrolment, revoke, rotate and devices, on SQLite and a password file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloud import registry as registry_module
from cloud.broker_sync import BrokerSync
from cloud.registry import (
    TOKEN_TTL_MS,
    Device,
    DeviceExists,
    GatewayExists,
    GatewayRevoked,
    GatewayUnknown,
    InvalidValue,
    NotEnrolled,
    TokenExpired,
    TokenUnknown,
    TokenUsed,
    gateway_id,
)
from gateway import broker_auth
from tests.cloud.registry_rig import T0, gnss_device, make_registry


def _sync(tmp_path: Path) -> BrokerSync:
    password_file = tmp_path / "passwd"
    # A cloud user the registry does not manage must survive every sync.
    broker_auth.write_password_file(password_file, {"ingest": broker_auth.hash_password("pw-ingest")})
    return BrokerSync(password_file)


def test_register_issues_an_expiring_token_stored_only_as_a_hash(tmp_path: Path) -> None:
    """The token is 32 random url-safe bytes, expires after 24 h, and its clear text is nowhere in the DB."""
    registry = make_registry(tmp_path)
    gateway, token = registry.register_gateway("GW Jinshui 01", "金水区 片区 3", T0)
    assert gateway.id == "gw-jinshui-01"
    assert gateway.state == "pending"
    assert token.expires_ms == T0 + TOKEN_TTL_MS
    assert len(token.token) == 43
    assert token.token not in repr(token)
    registry.db.close()
    assert token.token.encode() not in (tmp_path / "registry.db").read_bytes()
    with sqlite3.connect(tmp_path / "registry.db") as raw:
        dump = "\n".join(raw.iterdump())
    assert token.token not in dump


def test_enrol_once_then_used_token_is_refused(tmp_path: Path) -> None:
    """A token buys credentials once; the second exchange raises TokenUsed and changes nothing."""
    sync = _sync(tmp_path)
    registry = make_registry(tmp_path, sync)
    _, token = registry.register_gateway("gw-a", "site", T0)
    registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
    creds = registry.enrol(token.token, T0 + 1000, agent_version="0.1.0", hostname="box")
    assert (creds.gateway, creds.username) == ("gw-a", "gw-a")
    assert creds.password not in repr(creds)
    assert creds.bundle.version == 1
    assert creds.bundle.document["devices"][0]["id"] == "gnss-1"
    assert registry.check_password("gw-a", creds.password)
    entries = broker_auth.read_password_file(sync.password_file)
    assert set(entries) == {"gw-a", "ingest"}
    assert broker_auth.verify_password(entries["gw-a"], creds.password)
    with pytest.raises(TokenUsed):
        registry.enrol(token.token, T0 + 2000)
    assert registry.check_password("gw-a", creds.password)
    gateway = registry.gateway("gw-a")
    assert (gateway.state, gateway.agent_version, gateway.hostname) == ("enrolled", "0.1.0", "box")


def test_expired_and_unknown_tokens_are_refused(tmp_path: Path) -> None:
    """A token at or past its expiry raises TokenExpired; a made-up one TokenUnknown; neither enrols."""
    registry = make_registry(tmp_path)
    _, token = registry.register_gateway("gw-a", "site", T0)
    with pytest.raises(TokenExpired):
        registry.enrol(token.token, token.expires_ms)
    with pytest.raises(TokenUnknown):
        registry.enrol("x" * 43, T0)
    assert registry.gateway("gw-a").state == "pending"
    # A re-issued token works and the old one is gone.
    fresh = registry.issue_token("gw-a", T0 + TOKEN_TTL_MS)
    with pytest.raises(TokenUnknown):
        registry.enrol(token.token, T0 + TOKEN_TTL_MS)
    assert registry.enrol(fresh.token, T0 + TOKEN_TTL_MS + 1).gateway == "gw-a"


def test_revoke_removes_the_broker_user_and_kills_pending_tokens(tmp_path: Path) -> None:
    """After revoke the password is gone from the DB and the broker file; rotate is refused."""
    sync = _sync(tmp_path)
    registry = make_registry(tmp_path, sync)
    _, token = registry.register_gateway("gw-a", "site", T0)
    creds = registry.enrol(token.token, T0)
    registry.issue_token("gw-a", T0)
    revoked = registry.revoke("gw-a", T0 + 5)
    assert revoked.state == "revoked"
    assert not registry.check_password("gw-a", creds.password)
    assert set(broker_auth.read_password_file(sync.password_file)) == {"ingest"}
    with pytest.raises(GatewayRevoked):
        registry.rotate("gw-a", T0 + 6)
    # Re-provisioning a revoked gateway takes a new token and gives new credentials.
    again = registry.enrol(registry.issue_token("gw-a", T0 + 7).token, T0 + 8)
    assert registry.gateway("gw-a").state == "enrolled"
    assert again.password != creds.password


def test_rotate_replaces_the_password(tmp_path: Path) -> None:
    """Rotation issues a new password; the old one no longer checks, in the DB or the broker file."""
    sync = _sync(tmp_path)
    registry = make_registry(tmp_path, sync)
    _, token = registry.register_gateway("gw-a", "site", T0)
    with pytest.raises(NotEnrolled):
        registry.rotate("gw-a", T0)
    old = registry.enrol(token.token, T0)
    new = registry.rotate("gw-a", T0 + 1)
    assert new.password != old.password
    assert registry.check_password("gw-a", new.password)
    assert not registry.check_password("gw-a", old.password)
    entry = broker_auth.read_password_file(sync.password_file)["gw-a"]
    assert broker_auth.verify_password(entry, new.password)
    assert not broker_auth.verify_password(entry, old.password)


def test_names_ids_and_reserved_users_are_checked(tmp_path: Path) -> None:
    """Ids derive from names; bad names, duplicates and cloud broker users are refused."""
    registry = make_registry(tmp_path)
    assert gateway_id("  Pump Station 7 ") == "pump-station-7"
    for bad in ("gw/1", "", "网关一号", "x" * 65):
        with pytest.raises(InvalidValue):
            registry.register_gateway(bad, "site", T0)
    with pytest.raises(InvalidValue, match="reserved"):
        registry.register_gateway("ingest", "site", T0)
    registry.register_gateway("gw-a", "site", T0)
    with pytest.raises(GatewayExists):
        registry.register_gateway("GW-A", "site", T0)
    with pytest.raises(GatewayUnknown):
        registry.rotate("gw-zz", T0)


def test_devices_are_unique_district_wide_and_validated(tmp_path: Path) -> None:
    """A device id binds once across gateways; part id, location and settings keys are checked."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "site", T0)
    registry.register_gateway("gw-b", "site", T0)
    device = registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
    assert registry.device("gnss-1") == device
    with pytest.raises(DeviceExists):
        registry.bind_device(gnss_device("gnss-1", "gw-b"), T0)
    bad = [
        Device("bad id", "gw-a", "gnss-nmea"),
        Device("d1", "gw-a", "gnss-nmea", part_id="41010215"),
        Device("d1", "gw-a", "gnss-nmea", lat=91.0),
        Device("d1", "gw-a", "gnss-nmea", lon=-181.0),
        Device("d1", "gw-a", "gnss-nmea", settings={"place": {}}),
    ]
    for candidate in bad:
        with pytest.raises(InvalidValue):
            registry.bind_device(candidate, T0)
    with pytest.raises(GatewayUnknown):
        registry.bind_device(gnss_device("d2", "gw-zz"), T0)
    assert device.agent_entry() == {
        "id": "gnss-1",
        "profile": "gnss-nmea",
        "port": "gnss",
        "place": {"lat": 34.7981, "lon": 113.5312, "part_id": "4101021501000003", "grid": "41010210100101"},
    }
    registry.unbind_device("gnss-1")
    assert registry.devices() == []


def test_tokens_never_start_like_a_command_line_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """A drawn token starting with "-" (read as an option by `agent enroll`) is drawn again."""
    drawn = iter(["-starts-like-an-option", "fine-token"])
    monkeypatch.setattr(registry_module.secrets, "token_urlsafe", lambda n: next(drawn))
    assert registry_module.new_token() == "fine-token"
