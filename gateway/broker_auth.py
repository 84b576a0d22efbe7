"""Broker files: a data dir and port in; a rendered mosquitto.conf, ACL and password file out; reload."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Final

_TEMPLATES: Final = Path(__file__).resolve().parent / "mosquitto"
# Usernames become topic levels through the ACL's %u, so no MQTT separators or wildcards may appear.
_USERNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_CLOUD_USERS: Final = ("ingest",)
# mosquitto 2.0's password hash ("$7$": PBKDF2-HMAC-SHA512, 12-byte salt); 101 rounds is mosquitto_passwd's
# own default, enough because gateway passwords are 256-bit random strings, not human choices.
_PBKDF2_TAG: Final = "7"
_PBKDF2_ROUNDS: Final = 101
_SALT_BYTES: Final = 12


class BrokerAuthError(Exception):
    """A broker file could not be rendered or a user could not be added."""


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where the rendered broker files live."""

    config: Path
    acl: Path | None
    password_file: Path | None
    data_dir: Path


def check_username(username: str) -> str:
    """Return the username if it is safe as a broker user and topic level, else raise BrokerAuthError."""
    if not _USERNAME.fullmatch(username):
        raise BrokerAuthError(f"invalid broker username {username!r}: use 1-64 of [A-Za-z0-9._-]")
    return username


def render_acl(cloud_users: tuple[str, ...] = DEFAULT_CLOUD_USERS) -> str:
    """Return the ACL text: gateways kept to gw/<own id>/; cloud users read all, write configs, share live events."""
    # gridwatch/live/#: the API processes' live-event fan-out (cloud.live.fanout), cloud users only.
    blocks = [
        f"user {check_username(u)}\ntopic read gw/+/#\ntopic write gw/+/config\ntopic readwrite gridwatch/live/#\n"
        for u in cloud_users
    ]
    template = Template((_TEMPLATES / "acl").read_text(encoding="utf-8"))
    return template.substitute(cloud_users="\n".join(blocks))


def render_config(
    data_dir: Path,
    port: int,
    *,
    bind: str = "127.0.0.1",
    auth: bool = True,
    cloud_users: tuple[str, ...] = DEFAULT_CLOUD_USERS,
    run_as: str | None = None,
) -> BrokerFiles:
    """Write mosquitto.conf (and with auth an ACL and an empty password file) into data_dir."""
    if not 0 < port < 65536:
        raise BrokerAuthError(f"port {port} out of range")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    acl: Path | None = None
    password_file: Path | None = None
    if auth:
        acl = data_dir / "acl"
        acl.write_text(render_acl(cloud_users), encoding="utf-8")
        password_file = data_dir / "passwd"
        if not password_file.exists():
            password_file.touch(mode=0o600)
        auth_block = f"allow_anonymous false\npassword_file {password_file}\nacl_file {acl}\n"
    else:
        auth_block = "allow_anonymous true\n"
    # mosquitto started as root drops to the "mosquitto" user unless told otherwise; tests running as
    # root with private temp dirs pass run_as so the broker can still read its files.
    user_line = f"user {run_as}" if run_as else ""
    template = Template((_TEMPLATES / "mosquitto.conf").read_text(encoding="utf-8"))
    text = template.substitute(port=port, bind=bind, data_dir=data_dir, auth_block=auth_block, user_line=user_line)
    config = data_dir / "mosquitto.conf"
    config.write_text(text, encoding="utf-8")
    return BrokerFiles(config=config, acl=acl, password_file=password_file, data_dir=data_dir)


def add_user(password_file: Path, username: str, password: str) -> None:
    """Add or replace a user in a mosquitto password file (hashing done by mosquitto_passwd)."""
    check_username(username)
    if not password or "\n" in password:
        raise BrokerAuthError("password must be non-empty and single-line")
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerAuthError("mosquitto_passwd not found (install the mosquitto package)")
    if not password_file.exists():
        password_file.touch(mode=0o600)
    # The password goes through stdin (prompt + confirmation), never argv where `ps` would show it.
    try:
        subprocess.run(
            [tool, str(password_file), username],
            input=f"{password}\n{password}\n",
            text=True,
            capture_output=True,
            check=True,
            timeout=30,
        )
    except subprocess.CalledProcessError as exc:
        raise BrokerAuthError(f"mosquitto_passwd failed for {username!r}: {exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BrokerAuthError(f"mosquitto_passwd timed out for {username!r}") from exc


def reload(pid: int) -> None:
    """Ask a running mosquitto to re-read its password and ACL files (SIGHUP)."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise BrokerAuthError(f"no mosquitto process {pid}") from exc


def hash_password(password: str, *, rounds: int = _PBKDF2_ROUNDS, salt: bytes | None = None) -> str:
    """Return the mosquitto 2.0 password-file hash (`$7$rounds$salt$digest`) of `password`."""
    if not password or "\n" in password:
        raise BrokerAuthError("password must be non-empty and single-line")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"${_PBKDF2_TAG}${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether `password` matches a `$7$` hash from hash_password or mosquitto_passwd."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != _PBKDF2_TAG or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def read_password_file(password_file: Path) -> dict[str, str]:
    """Return the `username -> hash` entries of a mosquitto password file (empty if it does not exist)."""
    try:
        text = password_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            username, sep, hashed = line.partition(":")
            if not sep:
                raise BrokerAuthError(f"{password_file}: malformed line for {username!r}")
            entries[username] = hashed
    return entries


def write_private(path: Path, text: str) -> None:
    """Write a secret-bearing file atomically with mode 0600: a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_password_file(password_file: Path, entries: Mapping[str, str]) -> None:
    """Replace a mosquitto password file with `username -> hash` entries atomically (mode 0600)."""
    lines = []
    for username, hashed in sorted(entries.items()):
        check_username(username)
        if not hashed or any(c in hashed for c in ":\n"):
            raise BrokerAuthError(f"invalid password hash for {username!r}")
        lines.append(f"{username}:{hashed}\n")
    # The broker reads the file on SIGHUP; a rename means it sees the old or the new file, never half.
    write_private(password_file, "".join(lines))


def remove_user(password_file: Path, username: str) -> bool:
    """Remove a user from a mosquitto password file; return whether it was there."""
    entries = read_password_file(password_file)
    if entries.pop(check_username(username), None) is None:
        return False
    write_password_file(password_file, entries)
    return True
