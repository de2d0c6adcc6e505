"""Who may call the service: API keys of intake systems, accounts of reviewers.

**API keys** are for the intake systems that call ``/v1/``.

A key is 32 random bytes (``wg_`` + URL-safe base64), shown once when it is created
(``wangge keys create NAME``) and stored only as its SHA-256: a key that random cannot be
guessed from its hash, so a slow password hash would add nothing. A request sends it as
``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; a missing or unknown key gets 401, a
revoked one 403. ``WANGGE_API_KEYS=false`` switches the check off (a closed test network).

**Accounts** are for the staff who review (role ``reviewer``) or also administer (``admin``):
``wangge users add NAME --role reviewer`` reads the password from standard input and keeps
its scrypt hash (salted, n=2^14, r=8). Logging in gives a session token valid for
``SESSION_HOURS``, stored as its SHA-256 like an API key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select

from wangge.errors import WanggeError
from wangge.serve.storage import ApiKeyRow, SessionRow, Store, UserRow

KEY_PREFIX = "wg_"
ROLES = ("reviewer", "admin")
SESSION_HOURS = 8
MIN_PASSWORD = 8
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class ApiKeyError(WanggeError):
    """A key operation that cannot be done (a name taken, an unknown name)."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, name: str) -> str:
    """A new key for ``name``; the only time the key itself is seen."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with store.session() as session:
        if session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name)) is not None:
            raise ApiKeyError(
                f"a key named {name!r} exists already: revoke it or choose another name"
            )
        session.add(
            ApiKeyRow(name=name, key_hash=hash_key(key), prefix=key[:10], created_at=datetime.now())
        )
    return key


def revoke_key(store: Store, name: str) -> None:
    """Revoke the key named ``name``: requests with it get 403 from now on."""
    with store.session() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
        if row is None:
            raise ApiKeyError(f"no key named {name!r}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now()


def list_keys(store: Store) -> list[KeyInfo]:
    with store.session() as session:
        rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
        return [KeyInfo(r.name, r.prefix, r.created_at, r.revoked_at) for r in rows]


def key_status(store: Store, key: str) -> tuple[str | None, bool]:
    """The name of the key's owner (``None`` if unknown) and whether it is revoked."""
    with store.session() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
        return (None, False) if row is None else (row.name, row.revoked_at is not None)


class AccountError(WanggeError):
    """An account operation that cannot be done (a name taken, a weak password)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return "scrypt$" + "$".join(encoded)


def password_matches(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    computed = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), **_SCRYPT)
    return hmac.compare_digest(computed, base64.b64decode(digest))


def add_user(store: Store, username: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    with store.session() as session:
        if session.scalar(select(UserRow).where(UserRow.username == username)) is not None:
            raise AccountError(f"a user named {username!r} exists already")
        session.add(UserRow(username=username, password_hash=hash_password(password), role=role,
                            created_at=datetime.now()))  # fmt: skip


def disable_user(store: Store, username: str) -> None:
    """Disable an account and end its sessions."""
    with store.session() as session:
        user = session.scalar(select(UserRow).where(UserRow.username == username))
        if user is None:
            raise AccountError(f"no user named {username!r}")
        user.disabled_at = user.disabled_at or datetime.now()
        for login in session.scalars(select(SessionRow).where(SessionRow.user_id == user.id)):
            session.delete(login)


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    """What a password given with an unknown name is checked against: the same scrypt work as
    for a known name, so that the time of the answer does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(16))


def log_in(store: Store, username: str, password: str) -> str | None:
    """A new session token, or ``None`` for a wrong name or password or a disabled account
    (each checked with the same work: see :func:`_unknown_user_hash`)."""
    with store.session() as session:
        user = session.scalar(select(UserRow).where(UserRow.username == username))
        stored = user.password_hash if user is not None else _unknown_user_hash()
        matches = password_matches(password, stored)
        if user is None or user.disabled_at is not None or not matches:
            return None
        token = secrets.token_urlsafe(32)
        expires = datetime.now() + timedelta(hours=SESSION_HOURS)
        session.add(SessionRow(token_hash=hash_key(token), user_id=user.id, expires_at=expires))
    return token


def log_out(store: Store, token: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    with store.session() as session:
        login = session.get(SessionRow, hash_key(token))
        if login is not None:
            session.delete(login)


def session_user(store: Store, token: str) -> User | None:
    """The user of a live session token, or ``None``."""
    with store.session() as session:
        login = session.get(SessionRow, hash_key(token))
        if login is None or login.expires_at < datetime.now():
            return None
        user = session.get(UserRow, login.user_id)
        if user is None or user.disabled_at is not None:
            return None
        return User(user.username, user.role)
