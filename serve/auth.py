"""Who may call the service: API keys of intake systems, accounts of reviewers.

**API keys** are for the intake systems that call ``/v1/``.

A key is 32 random bytes (``wg_`` + URL-safe base64), shown once when it is created
(``wangge keys create NAME``) and stored only as its SHA-256: a key that random cannot be
guessed from its hash, so a slow password hash would add nothing. A request sends it as
``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; a missing or unknown key gets 401, a
revoked one 403. ``WANGGE_API_KEYS=false`` switches the check off (a closed test network).

**Accounts** are for the staff who review (role ``reviewer``) or also administer (``admin``):
``wangge users add NAME --role reviewer`` reads the password from standard input and keeps
its scrypt hash (salted; n=2^``SCRYPT_LOG_N``, r=8, p=1, the cost written into the hash as
``scrypt$LOG_N$SALT$DIGEST``; hashes of the form ``scrypt$SALT$DIGEST`` are n=2^14 and are
re-hashed at the current cost when their owner logs in). Logging in gives a session token valid
for ``SESSION_HOURS``, stored as its SHA-256 like an API key.

**Throttling** (:class:`LoginThrottle`): after ``MAX_FAILURES`` failed logins within
``FAILURE_WINDOW_S`` for one account name, or from one client address, further attempts for it
answer 429 with ``Retry-After`` for ``LOCKOUT_S``, without checking the password; a successful
login clears the account's count. The client address is uvicorn's: behind a reverse proxy,
the one X-Forwarded-For names if the proxy is among ``WANGGE_FORWARDED_ALLOW_IPS``, else the
proxy's. The counts live in the memory of the process (one server process; a restart forgets
them), at most ``THROTTLE_MAX_KEYS`` of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select

from wangge.errors import WanggeError
from wangge.models.cases import AUTO_ACTOR
from wangge.serve.storage import ApiKeyRow, SessionRow, Store, UserRow

KEY_PREFIX = "wg_"
ROLES = ("reviewer", "admin")
SESSION_HOURS = 8
MIN_PASSWORD = 8
SCRYPT_LOG_N = 17  # n=2^17, r=8, p=1: OWASP's recommendation; ~128 MiB and ~0.7 s per hash
_SCRYPT_R, _SCRYPT_P = 8, 1
_OLD_LOG_N = 14  # the cost of hashes written without it (``scrypt$SALT$DIGEST``)
MAX_FAILURES = 5  # failed logins per account name or client address ...
FAILURE_WINDOW_S = 15 * 60  # ... within this many seconds ...
LOCKOUT_S = 15 * 60  # ... lock it out for this many seconds (429 with Retry-After)
THROTTLE_MAX_KEYS = 100_000  # the most names and addresses counted at once


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


def _scrypt(password: str, salt: bytes, log_n: int) -> bytes:
    n = 2**log_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P,
                          maxmem=256 * _SCRYPT_R * n)  # fmt: skip


def hash_password(password: str) -> str:
    """``scrypt$LOG_N$SALT$DIGEST`` at the current cost ``SCRYPT_LOG_N``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_LOG_N)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${SCRYPT_LOG_N}$" + "$".join(encoded)


def _hash_cost(stored: str) -> tuple[int, str, str]:
    """The cost (log2 of n), salt and digest of a stored hash, old form included."""
    parts = stored.split("$")
    if len(parts) == 3:
        return _OLD_LOG_N, parts[1], parts[2]
    return int(parts[1]), parts[2], parts[3]


def password_matches(password: str, stored: str) -> bool:
    log_n, salt, digest = _hash_cost(stored)
    computed = _scrypt(password, base64.b64decode(salt), log_n)
    return hmac.compare_digest(computed, base64.b64decode(digest))


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash was made at another cost than ``SCRYPT_LOG_N``."""
    return _hash_cost(stored)[0] != SCRYPT_LOG_N


def add_user(store: Store, username: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if username == AUTO_ACTOR:
        raise AccountError(f"{AUTO_ACTOR!r} names the service's own actions in the audit log")
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


@lru_cache(maxsize=2)
def _unknown_user_hash(log_n: int) -> str:
    """What a password given with an unknown name is checked against: the same scrypt work as
    for a known name, so that the time of the answer does not tell which names exist. Called
    with the current ``SCRYPT_LOG_N``, which keys the cache: a changed cost makes a new hash."""
    return hash_password(secrets.token_urlsafe(16))


def log_in(store: Store, username: str, password: str) -> str | None:
    """A new session token, or ``None`` for a wrong name or password or a disabled account
    (each checked with the same work: see :func:`_unknown_user_hash`). A hash of another cost
    than ``SCRYPT_LOG_N`` is replaced by one at that cost."""
    with store.session() as session:
        user = session.scalar(select(UserRow).where(UserRow.username == username))
        stored = user.password_hash if user is not None else _unknown_user_hash(SCRYPT_LOG_N)
        matches = password_matches(password, stored)
        if user is None or user.disabled_at is not None or not matches:
            return None
        if needs_rehash(stored):
            user.password_hash = hash_password(password)
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


@dataclass
class _Failures:
    window_start: float
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Counts of failed logins per key (``user:NAME``, ``addr:HOST``), safe across threads.

    ``MAX_FAILURES`` failures within ``FAILURE_WINDOW_S`` lock a key out for ``LOCKOUT_S``.
    At most ``max_keys`` keys are kept: past that, expired ones are dropped, then the oldest.
    """

    def __init__(
        self, max_keys: int = THROTTLE_MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, _Failures] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def retry_after(self, keys: list[str]) -> int:
        """Seconds until every one of ``keys`` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [self._entries[k].locked_until - now for k in keys if k in self._entries]
        return max([0, *(math.ceil(wait) for wait in waits)])

    def failed(self, keys: list[str]) -> None:
        """Count a failed login against each of ``keys``; lock out those at ``MAX_FAILURES``."""
        now = self._clock()
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or now - entry.window_start > FAILURE_WINDOW_S:
                    entry = self._entries[key] = _Failures(window_start=now)
                entry.count += 1
                if entry.count >= MAX_FAILURES:
                    entry.locked_until = now + LOCKOUT_S
            self._prune(now)

    def succeeded(self, key: str) -> None:
        """Forget the failures counted against ``key``."""
        with self._lock:
            self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        if len(self._entries) <= self._max_keys:
            return
        for key, entry in list(self._entries.items()):
            if entry.locked_until <= now and now - entry.window_start > FAILURE_WINDOW_S:
                del self._entries[key]
        for key in list(self._entries)[: max(0, len(self._entries) - self._max_keys)]:
            del self._entries[key]  # the oldest first: insertion order
