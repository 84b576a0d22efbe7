"""gateway.broker_auth: the rendered mosquitto config, ACL and password file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import broker_auth


def _settings(text: str) -> dict[str, str]:
    """Return the last value of each directive in a mosquitto config (comments and blanks skipped)."""
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}


def test_config_has_the_settings_that_keep_qos1_lossless(tmp_path: Path) -> None:
    """The rendered config binds loopback on the port, persists, and queues far beyond the 1000 default."""
    files = broker_auth.render_config(tmp_path, 18830)
    conf = _settings(files.config.read_text())
    assert conf["listener"] == "18830 127.0.0.1"
    assert conf["persistence"] == "true"
    assert conf["persistence_location"] == f"{tmp_path.resolve()}/"
    assert int(conf["autosave_interval"]) <= 30
    assert int(conf["max_queued_messages"]) >= 1_000_000
    assert int(conf["max_inflight_messages"]) >= 32
    assert conf["set_tcp_nodelay"] == "true"
    assert conf["allow_anonymous"] == "false"
    assert conf["password_file"] == str(files.password_file)
    assert conf["acl_file"] == str(files.acl)
    assert "user" not in conf


def test_config_without_auth_is_anonymous_and_has_no_acl(tmp_path: Path) -> None:
    """auth=False renders an anonymous broker with neither password file nor ACL."""
    files = broker_auth.render_config(tmp_path, 1883, auth=False, bind="0.0.0.0", run_as="root")
    conf = _settings(files.config.read_text())
    assert conf["allow_anonymous"] == "true"
    assert conf["listener"] == "1883 0.0.0.0"
    assert conf["user"] == "root"
    assert "acl_file" not in conf
    assert files.acl is None
    assert files.password_file is None


def test_acl_confines_gateways_to_their_own_topics() -> None:
    """The ACL lets %u write only its own data topics and read its config; cloud users read all, configure."""
    lines = [line for line in broker_auth.render_acl(("ingest", "api")).splitlines() if line and line[0] != "#"]
    assert [line for line in lines if line.startswith("pattern")] == [
        "pattern write gw/%u/telemetry",
        "pattern write gw/%u/alerts",
        "pattern write gw/%u/status",
        "pattern write gw/%u/config/ack",
        "pattern read gw/%u/config",
    ]
    for user in ("ingest", "api"):
        block = lines[lines.index(f"user {user}") + 1 : lines.index(f"user {user}") + 3]
        assert block == ["topic read gw/+/#", "topic write gw/+/config"]


@pytest.mark.parametrize("name", ["", "a/b", "gw+", "gw#", "a:b", "has space", "x" * 65, "-lead"])
def test_unsafe_usernames_are_refused(name: str) -> None:
    """Usernames that would break %u topic patterns or the password file are refused."""
    with pytest.raises(broker_auth.BrokerAuthError):
        broker_auth.check_username(name)


def test_add_user_stores_a_hash_not_the_password(tmp_path: Path) -> None:
    """add_user writes a mosquitto PBKDF2 hash line per user and replaces an existing user's entry."""
    pw = tmp_path / "passwd"
    broker_auth.add_user(pw, "gw-001", "s3cret-one")
    broker_auth.add_user(pw, "gw-002", "s3cret-two")
    broker_auth.add_user(pw, "gw-001", "s3cret-three")
    text = pw.read_text()
    users = [line.split(":", 1)[0] for line in text.splitlines()]
    assert sorted(users) == ["gw-001", "gw-002"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())
    assert "s3cret" not in text


def test_multiline_password_is_refused(tmp_path: Path) -> None:
    """A password with a newline could smuggle a second prompt answer, so it is refused."""
    with pytest.raises(broker_auth.BrokerAuthError):
        broker_auth.add_user(tmp_path / "passwd", "gw-001", "a\nb")


def test_port_out_of_range_is_refused(tmp_path: Path) -> None:
    """A port outside 1..65535 is refused before anything is written."""
    with pytest.raises(broker_auth.BrokerAuthError):
        broker_auth.render_config(tmp_path, 70000)
