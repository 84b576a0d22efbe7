"""Cloud settings from file and environment, and user authentication with argon2 hashes and bearer tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.auth import Auth, AuthError, Role
from cloud.db import Database
from cloud.settings import SettingsError, load_settings


def test_environment_overrides_the_file_and_secrets_stay_hidden(tmp_path: Path) -> None:
    """GRIDWATCH_SECTION__KEY overrides the file; a secret never appears in the settings' repr."""
    path = tmp_path / "cloud.yaml"
    path.write_text("port: 9000\ningest:\n  host: broker.local\n", encoding="utf-8")
    settings = load_settings(path, {"GRIDWATCH_INGEST__PORT": "1884", "GRIDWATCH_ADMIN_PASSWORD": "s3cret-pw"})
    assert (settings.port, settings.ingest.host, settings.ingest.port) == (9000, "broker.local", 1884)
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("colour: red\n", {}, "colour: unknown key"),
        ("ingest:\n  prot: 1\n", {}, "ingest.prot: unknown key"),
        ("", {"GRIDWATCH_PORT": "eighty"}, "environment: port"),
        ("ingest:\n  protocol: '3.1.1'\n", {}, "ingest: Value error, group: shared subscriptions"),
        ("ingest_workers: 2\ningest:\n  group: null\n", {}, "more than one worker needs a shared ingest.group"),
        (
            "map:\n  tile_url: https://tiles.example/{z}/{x}.png\n",
            {},
            "map.tile_url: Value error, the tile URL needs {y}",
        ),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    """Unknown keys and bad values stop start-up with the key path."""
    path = tmp_path / "cloud.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path if text else None, env)
    assert expected in str(info.value)


def test_bad_value_error_does_not_echo_secrets() -> None:
    """A wrong value next to a secret is reported without the secret's text."""
    with pytest.raises(SettingsError) as info:
        load_settings(None, {"GRIDWATCH_ADMIN_PASSWORD": "pw-123456", "GRIDWATCH_INGEST_WORKERS": "-1"})
    assert "ingest_workers" in str(info.value)
    assert "pw-123456" not in str(info.value)


def test_password_login_and_tokens(tmp_path: Path) -> None:
    """Right password → token → user; wrong password, unknown user, expired token → nothing."""
    auth = Auth(Database.open(tmp_path / "c.db"), token_ttl_ms=1000)
    auth.create_user("maint", "correct horse", Role.MAINTAINER, now=0)
    with pytest.raises(AuthError):
        auth.create_user("maint", "again", Role.ADMIN, now=0)
    assert auth.authenticate("maint", "wrong") is None
    assert auth.authenticate("nobody", "correct horse") is None
    user = auth.authenticate("maint", "correct horse")
    assert user is not None
    assert user.role == Role.MAINTAINER
    token = auth.issue_token(user, now=10)
    assert auth.user_for_token(token, now=500) == user
    assert auth.user_for_token(token, now=1010) is None
    assert auth.user_for_token("forged", now=500) is None
    stored = auth.db.fetchone("SELECT password_hash FROM users WHERE username = 'maint'")
    assert stored is not None
    assert str(stored[0]).startswith("$argon2")


def test_bulk_accounts_share_one_hash_and_existing_ones_are_kept(tmp_path: Path) -> None:
    """ensure_users creates only the missing accounts, all logging in with the one password; others keep theirs."""
    auth = Auth(Database.open(tmp_path / "c.db"))
    auth.create_user("grid-1", "own password", Role.MAINTAINER, now=0)
    users = [("grid-1", "grid_worker", "g1"), ("grid-2", "grid_worker", "g2"), ("dept-CGJ", "dept_handler", "CGJ")]
    assert auth.ensure_users(users, "demo", now=5) == 2
    assert auth.ensure_users(users, "demo", now=6) == 0
    assert auth.authenticate("grid-1", "own password") is not None
    assert auth.authenticate("grid-1", "demo") is None
    second = auth.authenticate("grid-2", "demo")
    assert second is not None
    assert (second.role, second.scope) == ("grid_worker", "g2")
    assert auth.authenticate("dept-CGJ", "demo") is not None
    with pytest.raises(AuthError, match="unknown role"):
        auth.ensure_users([("x", "emperor", "")], "demo", now=7)
