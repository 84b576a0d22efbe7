"""Broker credentials from the registry: gateway ids and password hashes in; mosquitto files and a reload out.

The registry is the source of truth for gateway users; `BrokerSync.apply` rewrites the password file
from it in one atomic rename (keeping users it does not manage, such as the cloud's `ingest`) and
sends SIGHUP. The shipped ACL (gateway/mosquitto/acl) confines every user by `%u` patterns, so a
registered gateway needs no ACL lines of its own; what must never happen is a gateway id equal to a
cloud user, which would inherit the cloud's read-all ACL, so `apply` refuses that.

Measured with mosquitto 2.0.11 (tests/cloud/test_registry_broker.py): on SIGHUP the broker re-reads the
password file and disconnects connected clients whose username is gone or whose password no longer
matches (in ~0.1 s), so revoke and rotate also end live sessions; their reconnects are refused.

Not managed: a broker without a password file to write (the demo's embedded amqtt, which checks no
password) is run with `broker_admin.password_file` unset; the cloud then builds no BrokerSync and the
registry still registers, enrols and revokes gateways, only without touching a broker.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from gateway import broker_auth


class BrokerSyncError(Exception):
    """The broker files could not be written or the broker could not be told to reload."""


class BrokerSync:
    """Writes the mosquitto password file (and optionally the ACL) and reloads the broker."""

    def __init__(
        self,
        password_file: Path,
        *,
        pid: int | None = None,
        pid_file: Path | None = None,
        acl_file: Path | None = None,
        cloud_users: tuple[str, ...] = broker_auth.DEFAULT_CLOUD_USERS,
    ) -> None:
        self.password_file = password_file
        self.pid = pid
        self.pid_file = pid_file
        self.acl_file = acl_file
        self.cloud_users = cloud_users
        self.reloads = 0

    def _broker_pid(self) -> int | None:
        if self.pid is not None:
            return self.pid
        if self.pid_file is None:
            return None
        try:
            return int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError) as exc:
            raise BrokerSyncError(f"cannot read broker pid from {self.pid_file}: {exc}") from exc

    def apply(self, managed: Collection[str], active: Mapping[str, str]) -> bool:
        """Make the file hold exactly `active` (id -> hash) among `managed` ids; reload if it changed."""
        clash = sorted(set(managed) & set(self.cloud_users))
        if clash:
            raise BrokerSyncError(f"gateway ids {clash} are cloud broker users")
        try:
            current = broker_auth.read_password_file(self.password_file)
            wanted = {u: h for u, h in current.items() if u not in managed and u not in active}
            wanted.update(active)
            changed = wanted != current
            if changed:
                broker_auth.write_password_file(self.password_file, wanted)
            if self.acl_file is not None:
                acl = broker_auth.render_acl(self.cloud_users)
                if not self.acl_file.exists() or self.acl_file.read_text(encoding="utf-8") != acl:
                    self.acl_file.write_text(acl, encoding="utf-8")
                    changed = True
            pid = self._broker_pid()
            if changed and pid is not None:
                broker_auth.reload(pid)
                self.reloads += 1
        except (OSError, broker_auth.BrokerAuthError) as exc:
            raise BrokerSyncError(str(exc)) from exc
        return changed
