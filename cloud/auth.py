"""Users, roles and bearer tokens: a username and password in, an opaque expiring token out (argon2 hashes)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloud.db import Database, IntegrityError
from cloud.incidents.roles import Role as GovernanceRole

MIGRATIONS = (
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE api_tokens (
        digest TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        expires_ms BIGINT NOT NULL
    )
    """,
)

TOKEN_TTL_MS = 12 * 3600 * 1000


class Role(StrEnum):
    """What a user may do; the incidents layer adds the governance roles."""

    ADMIN = "admin"
    MAINTAINER = "maintainer"


# Every role a user may hold: the fleet roles above and the incident layer's governance roles (网格员, 受理员,
# 值班长, 派遣员, department lead/handler, 运维, 领导 …), named once in cloud.incidents.roles. `system` is the
# engine's own actor, never a user.
ROLES: Final = frozenset({r.value for r in Role} | {r.value for r in GovernanceRole if r is not GovernanceRole.SYSTEM})
# The fleet maintainer works the maintenance queue of the incident layer (运维).
INCIDENT_ROLE: Final = {Role.MAINTAINER.value: GovernanceRole.MAINTENANCE.value}


class AuthError(Exception):
    """A user could not be created or authenticated."""


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user: name, role and data scope (a grid, area or department code; empty = all)."""

    username: str
    role: str
    scope: str = ""


def _digest(token: str) -> str:
    """Tokens are stored as digests: a leaked database does not leak usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_account(username: str, password: str, role: str) -> None:
    """Refuse an empty name or password and an unknown role."""
    if not username or not password:
        raise AuthError("username and password must not be empty")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; known: {', '.join(sorted(ROLES))}")


class Auth:
    """Users and their tokens in the cloud database."""

    def __init__(self, db: Database, *, token_ttl_ms: int = TOKEN_TTL_MS) -> None:
        self.db = db
        self.token_ttl_ms = token_ttl_ms
        self._hasher = PasswordHasher()
        self._dummy: str | None = None
        db.migrate("auth", MIGRATIONS)

    def create_user(self, username: str, password: str, role: str, now: int, *, scope: str = "") -> User:
        """Create a user with an argon2-hashed password; refuse a duplicate name or an empty password."""
        _check_account(username, password, role)
        try:
            self.db.execute(
                "INSERT INTO users (username, password_hash, role, scope, created_ms) VALUES (?, ?, ?, ?, ?)",
                (username, self._hasher.hash(password), role, scope, now),
            )
        except IntegrityError as exc:
            raise AuthError(f"user {username!r} exists") from exc
        return User(username, role, scope)

    def ensure_user(self, username: str, password: str, role: str, now: int, *, scope: str = "") -> User:
        """Create the user unless it exists (bootstrap accounts); an existing user keeps its password."""
        row = self.db.fetchone("SELECT role, scope FROM users WHERE username = ?", (username,))
        if row is not None:
            return User(username, str(row[0]), str(row[1]))
        return self.create_user(username, password, role, now, scope=scope)

    def ensure_users(self, users: Iterable[tuple[str, str, str]], password: str, now: int) -> int:
        """Create the missing (username, role, scope) accounts, all with one password; return how many were new.

        For bulk accounts that share a password anyway (the demo's): the password is hashed once, so 200
        accounts cost one argon2 hash instead of 200 (each ~0.1-0.4 s on purpose).
        """
        wanted = list(users)
        for username, role, _ in wanted:
            _check_account(username, password, role)
        existing = {str(r[0]) for r in self.db.fetchall("SELECT username FROM users")}
        new = [u for u in wanted if u[0] not in existing]
        if new:
            password_hash = self._hasher.hash(password)
            with self.db.transaction():
                self.db.executemany(
                    "INSERT INTO users (username, password_hash, role, scope, created_ms) VALUES (?, ?, ?, ?, ?)",
                    [(username, password_hash, role, scope, now) for username, role, scope in new],
                )
        return len(new)

    def authenticate(self, username: str, password: str) -> User | None:
        """Return the user if the password matches, else None (same cost whether the user exists or not)."""
        row = self.db.fetchone("SELECT password_hash, role, scope FROM users WHERE username = ?", (username,))
        stored = str(row[0]) if row is not None else self._dummy_hash()
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        return User(username, str(row[1]), str(row[2]))

    def issue_token(self, user: User, now: int) -> str:
        """Return a new bearer token for `user`, valid for the configured time."""
        token = secrets.token_urlsafe(32)
        self.db.execute(
            "INSERT INTO api_tokens (digest, username, expires_ms) VALUES (?, ?, ?)",
            (_digest(token), user.username, now + self.token_ttl_ms),
        )
        return token

    def user_for_token(self, token: str, now: int) -> User | None:
        """Return the user a live token belongs to, else None."""
        row = self.db.fetchone(
            "SELECT u.username, u.role, u.scope FROM api_tokens t JOIN users u ON u.username = t.username "
            "WHERE t.digest = ? AND t.expires_ms > ?",
            (_digest(token), now),
        )
        return None if row is None else User(str(row[0]), str(row[1]), str(row[2]))

    def _dummy_hash(self) -> str:
        """A hash to verify against for unknown users, so timing does not reveal which names exist."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy
