"""Who may use the platform: users, their roles and agencies, sessions, API keys.

Kept in one small SQLite file (`auth.database`, by default `<data_dir>/accounts.db`) in every
deployment: a few hundred users and their sessions need no cluster. Passwords are argon2id hashes
(argon2-cffi's defaults, RFC 9106's second recommended parameter set); session tokens and API keys
are random 256-bit secrets stored only as SHA-256 digests, so a copy of the file logs nobody in.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["admin", "analyst", "viewer"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
#: Machines that only push records (the HTTP intake): no analyst rights at all.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
AGENCY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MIN_PASSWORD_LENGTH = 12

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
        agencies TEXT, display_name TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT 'vi',
        timezone TEXT NOT NULL DEFAULT 'Asia/Ho_Chi_Minh', disabled INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
        created REAL NOT NULL, updated REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, kind TEXT NOT NULL,
        csrf_hash TEXT, created REAL NOT NULL, expires REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username)",
    """CREATE TABLE IF NOT EXISTS apikeys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL, agencies TEXT, created REAL NOT NULL, created_by TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS agencies (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS rule_overrides (
        rule_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, updated REAL NOT NULL,
        updated_by TEXT NOT NULL)""",
)


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message says why."""


class LoginRefused(Exception):
    """Wrong name or password, a disabled or a locked account. `reason` is for the audit log and
    the metric only; the caller is told no more than "invalid credentials" or "locked"."""

    def __init__(self, reason: str, locked: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked = locked


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    #: Agencies this user may see; None: every agency.
    agencies: frozenset[str] | None
    display_name: str = ""
    language: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    disabled: bool = False
    locked_until: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "agencies": sorted(self.agencies) if self.agencies is not None else None,
            "display_name": self.display_name,
            "language": self.language,
            "timezone": self.timezone,
            "disabled": self.disabled,
            "locked": self.locked_until > time.time(),
        }


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    csrf_token: str
    username: str
    expires: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    agencies: frozenset[str] | None
    created: float
    created_by: str
    disabled: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "agencies": sorted(self.agencies) if self.agencies is not None else None,
            "created": self.created,
            "created_by": self.created_by,
            "disabled": self.disabled,
        }


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _agencies_json(agencies: Iterable[str] | None) -> str | None:
    return None if agencies is None else orjson.dumps(sorted(set(agencies))).decode()


def _agencies(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(orjson.loads(text))


def check_password_strength(password: str, username: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise AccountError("password must not contain the user name")


class Accounts:
    """The accounts database. Methods are synchronous and short; async callers use `call`."""

    def __init__(
        self,
        path: Path,
        *,
        max_failed_logins: int = 5,
        lockout_seconds: float = 900,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.path = path
        self.max_failed_logins = max_failed_logins
        self.lockout_seconds = lockout_seconds
        self._hasher = hasher or PasswordHasher()
        # A hash to verify against when the user does not exist, so that "no such user" takes
        # as long as "wrong password" and names cannot be probed by timing.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        with contextlib.suppress(OSError):
            path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # Users

    def user_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM users")[0][0])

    def add_user(
        self,
        username: str,
        password: str,
        role: Role,
        agencies: Iterable[str] | None = None,
        display_name: str = "",
        language: str = "vi",
    ) -> User:
        _check_name(username)
        _check_role(role)
        check_password_strength(password, username)
        agency_list = None if agencies is None else sorted(set(agencies))
        if agency_list is not None:
            self._check_agencies(agency_list)
        now = time.time()
        hashed = self._hasher.hash(password)

        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AccountError(f"user {username!r} already exists")
            conn.execute(
                "INSERT INTO users (username, password_hash, role, agencies, display_name,"
                " language, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    username,
                    hashed,
                    role,
                    _agencies_json(agency_list),
                    display_name,
                    language,
                    now,
                    now,
                ),
            )

        self._tx(insert)
        user = self.user(username)
        assert user is not None
        return user

    def user(self, username: str) -> User | None:
        rows = self._read(
            "SELECT username, role, agencies, display_name, language, timezone, disabled,"
            " locked_until FROM users WHERE username = ?",
            (username,),
        )
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        rows = self._read(
            "SELECT username, role, agencies, display_name, language, timezone, disabled,"
            " locked_until FROM users ORDER BY username"
        )
        return [_user(row) for row in rows]

    def update_user(
        self,
        username: str,
        *,
        role: Role | None = None,
        agencies: Iterable[str] | Literal["keep"] | None = "keep",
        display_name: str | None = None,
        language: str | None = None,
        timezone: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        sets: list[str] = []
        params: list[Any] = []
        if role is not None:
            _check_role(role)
            sets.append("role = ?")
            params.append(role)
        if agencies != "keep":
            agency_list = None if agencies is None else sorted(set(agencies))
            if agency_list is not None:
                self._check_agencies(agency_list)
            sets.append("agencies = ?")
            params.append(_agencies_json(agency_list))
        for column, value in (
            ("display_name", display_name),
            ("language", language),
            ("timezone", timezone),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if disabled is not None:
            sets.append("disabled = ?")
            params.append(int(disabled))
        sets.append("updated = ?")
        params.append(time.time())

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"UPDATE users SET {', '.join(sets)} WHERE username = ?",  # noqa: S608
                (*params, username),
            )
            if cursor.rowcount == 0:
                raise AccountError(f"no user {username!r}")
            if disabled or role is not None or agencies != "keep":
                # Rights changed: sessions made under the old ones end now.
                conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

        self._tx(update)
        user = self.user(username)
        assert user is not None
        return user

    def set_password(self, username: str, password: str) -> None:
        check_password_strength(password, username)
        hashed = self._hasher.hash(password)

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0,"
                " updated = ? WHERE username = ?",
                (hashed, time.time(), username),
            )
            if cursor.rowcount == 0:
                raise AccountError(f"no user {username!r}")
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

        self._tx(update)

    def authenticate(self, username: str, password: str, now: float | None = None) -> User:
        """The user, if the password is right and the account usable; LoginRefused otherwise.
        Every failure counts towards the lockout, including attempts on a locked account."""
        moment = time.time() if now is None else now
        rows = self._read(
            "SELECT password_hash, disabled, locked_until FROM users WHERE username = ?",
            (username,),
        )
        if not rows:
            self._verify(self._decoy, password)
            raise LoginRefused("unknown user")
        hashed, disabled, locked_until = rows[0]
        if locked_until > moment:
            self._verify(self._decoy, password)
            raise LoginRefused("account locked", locked=True)
        if not self._verify(hashed, password):
            locked = self._count_failure(username, moment)
            raise LoginRefused("wrong password", locked=locked)
        if disabled:
            raise LoginRefused("account disabled")
        if self._hasher.check_needs_rehash(hashed):
            rehashed = self._hasher.hash(password)
            self._tx(
                lambda conn: conn.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?", (rehashed, username)
                )
            )
        self._tx(
            lambda conn: conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE username = ?",
                (username,),
            )
        )
        user = self.user(username)
        assert user is not None
        return user

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _count_failure(self, username: str, now: float) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE username = ?"
                " RETURNING failed_logins",
                (username,),
            ).fetchone()
            if row and row[0] >= self.max_failed_logins:
                conn.execute(
                    "UPDATE users SET locked_until = ?, failed_logins = 0 WHERE username = ?",
                    (now + self.lockout_seconds, username),
                )
                return True
            return False

        return self._tx(update)

    def unlock(self, username: str) -> None:
        self._tx(
            lambda conn: conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE username = ?",
                (username,),
            )
        )

    # Sessions (bearer tokens and console cookies)

    def create_session(self, username: str, kind: str, ttl_seconds: float) -> Session:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + ttl_seconds

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            conn.execute(
                "INSERT INTO sessions (token_hash, username, kind, csrf_hash, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (digest(token), username, kind, digest(csrf), now, expires),
            )

        self._tx(insert)
        return Session(token=token, csrf_token=csrf, username=username, expires=expires)

    def session_user(
        self, token: str, kind: str, now: float | None = None
    ) -> tuple[User, str | None] | None:
        """The user behind a live session token, and its CSRF digest; None if unknown, expired
        or the user is disabled."""
        moment = time.time() if now is None else now
        rows = self._read(
            "SELECT username, csrf_hash, expires FROM sessions WHERE token_hash = ? AND kind = ?",
            (digest(token), kind),
        )
        if not rows:
            return None
        username, csrf_hash, expires = rows[0]
        if expires <= moment:
            return None
        user = self.user(username)
        if user is None or user.disabled:
            return None
        return user, csrf_hash

    def end_session(self, token: str) -> None:
        self._tx(
            lambda conn: conn.execute("DELETE FROM sessions WHERE token_hash = ?", (digest(token),))
        )

    # API keys

    def create_api_key(
        self, name: str, role: Role, agencies: Iterable[str] | None, created_by: str
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, shown once: `soc_<id>_<secret>`."""
        _check_role(role)
        if not name.strip():
            raise AccountError("an API key needs a name")
        agency_list = None if agencies is None else sorted(set(agencies))
        if agency_list is not None:
            self._check_agencies(agency_list)
        ident = secrets.token_hex(6)
        secret = f"soc_{ident}_{secrets.token_urlsafe(32)}"
        now = time.time()
        self._tx(
            lambda conn: conn.execute(
                "INSERT INTO apikeys (id, name, key_hash, role, agencies, created, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ident, name, digest(secret), role, _agencies_json(agency_list), now, created_by),
            )
        )
        key = ApiKey(ident, name, role, _agencies(_agencies_json(agency_list)), now, created_by)
        return key, secret

    def api_key(self, secret: str) -> ApiKey | None:
        if not secret.startswith("soc_"):
            return None
        rows = self._read(
            "SELECT id, name, role, agencies, created, created_by, disabled, key_hash"
            " FROM apikeys WHERE key_hash = ?",
            (digest(secret),),
        )
        if not rows or rows[0][6]:
            return None
        ident, name, role, agencies, created, created_by, disabled, key_hash = rows[0]
        if not hmac.compare_digest(key_hash, digest(secret)):
            return None
        return ApiKey(ident, name, role, _agencies(agencies), created, created_by, bool(disabled))

    def api_keys(self) -> list[ApiKey]:
        rows = self._read(
            "SELECT id, name, role, agencies, created, created_by, disabled FROM apikeys"
            " ORDER BY created"
        )
        return [ApiKey(i, n, r, _agencies(a), c, b, bool(d)) for i, n, r, a, c, b, d in rows]

    def revoke_api_key(self, ident: str) -> None:
        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute("UPDATE apikeys SET disabled = 1 WHERE id = ?", (ident,))
            if cursor.rowcount == 0:
                raise AccountError(f"no API key {ident!r}")

        self._tx(update)

    # Agencies

    def add_agency(self, ident: str, name: str) -> dict[str, Any]:
        _check_agency(ident)
        if not name.strip():
            raise AccountError("an agency needs a name")

        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM agencies WHERE id = ?", (ident,)).fetchone():
                raise AccountError(f"agency {ident!r} already exists")
            conn.execute(
                "INSERT INTO agencies (id, name, created) VALUES (?, ?, ?)",
                (ident, name, time.time()),
            )

        self._tx(insert)
        return {"id": ident, "name": name}

    def agencies(self) -> list[dict[str, Any]]:
        return [
            {"id": ident, "name": name}
            for ident, name in self._read("SELECT id, name FROM agencies ORDER BY id")
        ]

    def _check_agencies(self, agencies: list[str]) -> None:
        for agency in agencies:
            _check_agency(agency)

    # Rule switches made from the console

    def rule_overrides(self) -> dict[str, bool]:
        return {
            rule_id: bool(enabled)
            for rule_id, enabled in self._read("SELECT rule_id, enabled FROM rule_overrides")
        }

    def set_rule_enabled(self, rule_id: str, enabled: bool, by: str) -> None:
        self._tx(
            lambda conn: conn.execute(
                "INSERT INTO rule_overrides (rule_id, enabled, updated, updated_by)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(rule_id) DO UPDATE SET"
                " enabled = excluded.enabled, updated = excluded.updated,"
                " updated_by = excluded.updated_by",
                (rule_id, int(enabled), time.time(), by),
            )
        )


def _user(row: tuple[Any, ...]) -> User:
    username, role, agencies, display_name, language, timezone, disabled, locked_until = row
    return User(
        username=username,
        role=role,
        agencies=_agencies(agencies),
        display_name=display_name,
        language=language,
        timezone=timezone,
        disabled=bool(disabled),
        locked_until=float(locked_until),
    )


def _check_name(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise AccountError(
            "user name: 1-64 characters, lowercase letters, digits and . _ @ - (starting with"
            " a letter or digit)"
        )


def _check_agency(ident: str) -> None:
    if not re.fullmatch(AGENCY_PATTERN, ident):
        raise AccountError(
            f"agency id {ident!r}: 1-64 characters, lowercase letters, digits and _ . -"
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
