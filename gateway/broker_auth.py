"""Broker files: a data dir and port in; a rendered mosquitto.conf, ACL and password file out; reload."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Final

_TEMPLATES: Final = Path(__file__).resolve().parent / "mosquitto"
# Usernames become topic levels through the ACL's %u, so no MQTT separators or wildcards may appear.
_USERNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_CLOUD_USERS: Final = ("ingest",)


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
    """Return the ACL text: gateways confined to gw/<own id>/, cloud users reading all and writing configs."""
    blocks = [f"user {check_username(u)}\ntopic read gw/+/#\ntopic write gw/+/config\n" for u in cloud_users]
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
