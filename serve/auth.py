"""API keys of the intake systems that call ``/v1/``.

A key is 32 random bytes (``wg_`` + URL-safe base64), shown once when it is created
(``wangge keys create NAME``) and stored only as its SHA-256: a key that random cannot be
guessed from its hash, so a slow password hash would add nothing. A request sends it as
``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; a missing or unknown key gets 401, a
revoked one 403. ``WANGGE_API_KEYS=false`` switches the check off (a closed test network).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from wangge.errors import WanggeError
from wangge.serve.storage import ApiKeyRow, Store

KEY_PREFIX = "wg_"


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
