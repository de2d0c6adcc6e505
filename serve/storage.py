"""Storage of ingested messages and their cases (SQLAlchemy; SQLite by default).

The database is the record: a message is committed before the API answers, and on start the
duplicate detector is rebuilt from it (:func:`load_detector`), with the stored embeddings and
entities, so no sentence encoder runs again for messages already seen.

A :class:`Store` only opens the database: its schema is brought up to date by
:mod:`wangge.serve.migrate` (at the service's start, or ``wangge db upgrade``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    cast,
    create_engine,
    distinct,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from wangge.models.dedup import DedupMessage, DuplicateDetector, MessageFeatures, heat
from wangge.nlp.fields import normalized

logger = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class CaseRow(Base):
    """A case: the messages that report one problem. Its id is its first message's id."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    first_at: Mapped[datetime] = mapped_column(DateTime)
    last_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    reports: Mapped[int] = mapped_column(Integer, default=1)
    category: Mapped[str | None] = mapped_column(String(64))
    street_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(32))
    # The case a reviewer merged this one into (its messages moved there); None: a live case.
    merged_into: Mapped[int | None] = mapped_column(Integer)


class MessageRow(Base):
    """An ingested message with what the models said of it."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    reporter: Mapped[str | None] = mapped_column(String(128))
    likes: Mapped[int] = mapped_column(Integer, default=0)
    dislikes: Mapped[int] = mapped_column(Integer, default=0)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)
    dup_score: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    entities: Mapped[list[str] | None] = mapped_column(JSON)  # null: not tagged yet


class ReviewTaskRow(Base):
    """A message waiting for (or given) a person's check; see :mod:`wangge.serve.review`."""

    __tablename__ = "review_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    priority: Mapped[float] = mapped_column(Float, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open, claimed, done, invalid
    # Copies of the message's current category and street, so the queue filters in SQL.
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    street_code: Mapped[str | None] = mapped_column(String(32), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer)  # bumped by every change: stale writes fail
    created_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)

    # Every UPDATE of a task holds ``WHERE version = <the version read>``: of two concurrent
    # changes the second matches no row and fails with StaleDataError, on every database
    # (SQLite ignores SELECT ... FOR UPDATE). The review actions bump the version themselves.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class UnlocatedRow(Base):
    """A message that names no community: on its street's (or, without a street, the
    district's) 待定位 list until a dispatcher assigns it a grid (see
    :mod:`wangge.serve.locating`)."""

    __tablename__ = "unlocated"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    street_code: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open, located
    created_at: Mapped[datetime] = mapped_column(DateTime)  # the message's time
    grid_id: Mapped[str | None] = mapped_column(String(64))
    located_by: Mapped[str | None] = mapped_column(String(64))
    located_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer)  # as a review task's: stale writes fail

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class AuditRow(Base):
    """One recorded action: who did what, when, with the values before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    message_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)


class UserRow(Base):
    """A reviewer or an administrator; the password is kept as a scrypt hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # reviewer, admin
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)


class SessionRow(Base):
    """A reviewer's login: the SHA-256 of its token, valid until ``expires_at``."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class ApiKeyRow(Base):
    """An intake system's API key: only its SHA-256 is stored (see :mod:`wangge.serve.auth`)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's start, to tell keys apart
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets a rollback journal (:func:`_sqlite_pragmas`),
    synchronous commits and enforced foreign keys. Its errors never show the statement's
    parameters (messages, phone numbers), so that they do not reach logs."""
    engine = create_engine(url, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """No shared memory: a rollback journal rather than WAL, and no memory-mapped I/O.

    WAL keeps its index in ``<database>-shm``, mapped into memory and written through the
    mapping: when that file cannot be written any more (made immutable, a file system remounted
    read-only), the next transaction's write to the mapping kills the process with SIGBUS,
    without a log line. Through a rollback journal every write is a system call, and a refused
    one is an ``OperationalError``: the service answers 503 and logs it. A database left in
    WAL mode by an earlier version is switched back unless another connection holds it open.
    """
    cursor = connection.cursor()
    try:
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode == "wal":
            try:
                cursor.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError as error:
                logger.warning("the SQLite database stays in WAL mode (%s): close the other "
                               "processes using it and restart", error)  # fmt: skip
        cursor.execute("PRAGMA mmap_size=0")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged message survives a crash
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class Store:
    """Sessions over one database (opened as it is: nothing is migrated here)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def unavailable(self) -> str | None:
        """Why the database cannot take requests now, or ``None``: a read of a table fails,
        or a SQLite file cannot be written (nor its directory, where the journal is created)
        though reads still work — immutable files, a read-only file system."""
        try:
            with self.session() as session:
                session.execute(select(ApiKeyRow.id).limit(1))
        except SQLAlchemyError as error:
            return f"the database does not answer ({type(error).__name__})"
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        path = Path(database)
        for where in (path, path.parent):
            if where.exists() and not os.access(where, os.W_OK):
                return f"{where} cannot be written"
        return None


def dedup_message(row: MessageRow) -> DedupMessage:
    """What the duplicate detector compares of a stored message: what the triage pipeline gave
    it when it was ingested (its text normalised, its place, its category when confident)."""
    result = row.result or {}
    category = result.get("category") or None
    return DedupMessage(
        id=str(row.id),
        title=normalized(row.title),
        content=normalized(row.content),
        time=row.created_at,
        reporter=row.reporter,
        place=result.get("community_code") or result.get("street_code") or None,
        category=category,
        category_confident=category is not None
        and "category" not in (result.get("review_reasons") or ()),
    )


def load_detector(
    store: Store, detector: DuplicateDetector, snapshot: Path | None = None
) -> tuple[int, int]:
    """Index every stored message under its stored case, reusing the HNSW graph saved at
    ``snapshot`` for the messages it holds; returns how many messages, and how many of
    them came with the graph."""
    with store.session() as session:
        rows = session.scalars(select(MessageRow).order_by(MessageRow.id)).all()
    restored = detector.restore_ann(snapshot, [str(row.id) for row in rows]) if snapshot else 0
    batch = 2048
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        messages = [dedup_message(row) for row in chunk]
        vectors = None
        if detector.encoder is not None and all(row.embedding for row in chunk):
            vectors = np.stack([np.frombuffer(row.embedding or b"", np.float32) for row in chunk])
        entities = [None if row.entities is None else frozenset(row.entities) for row in chunk]
        features = detector.features(messages, vectors=vectors, entities=entities)
        detector.index(messages, [str(row.case_id) for row in chunk], features)
    return len(rows), restored


def stored_features(features: MessageFeatures) -> dict[str, Any]:
    """The columns that let :func:`load_detector` skip the encoder and LAC on restart."""
    vector = features.vector
    return {
        "embedding": None if vector is None else np.asarray(vector, np.float32).tobytes(),
        "entities": None if features.entities is None else sorted(features.entities),
    }


def case_summary(session: Session, case: CaseRow) -> dict[str, Any]:
    """A case with its messages, distinct reporters and likes (for the API)."""
    messages = session.scalars(
        select(MessageRow).where(MessageRow.case_id == case.id).order_by(MessageRow.created_at)
    ).all()
    reporters = {m.reporter or f"anonymous-{m.id}" for m in messages}
    return {
        "case_id": str(case.id),
        "title": case.title,
        "first_at": case.first_at,
        "last_at": case.last_at,
        "reports": len(messages),
        "reporters": len(reporters),
        "likes": sum(m.likes for m in messages),
        "dislikes": sum(m.dislikes for m in messages),
        "category": case.category,
        "street_code": case.street_code,
        "community_code": case.community_code,
        "merged_into": None if case.merged_into is None else str(case.merged_into),
        "messages": [
            {
                "message_id": str(m.id),
                "id": m.external_id,
                "title": m.title,
                "created_at": m.created_at,
                "duplicate_of": None if m.duplicate_of is None else str(m.duplicate_of),
                "dup_score": m.dup_score,
            }
            for m in messages
        ],
    }


def _reporter_key() -> Any:
    """Who reported a message, for counting people: its reporter, or for an anonymous message
    the message itself (each anonymous report counts as one person)."""
    return func.coalesce(MessageRow.reporter, "#" + cast(MessageRow.id, String))


def case_reporters(session: Session, case_id: int) -> int:
    """The people who reported a case (see :func:`_reporter_key`)."""
    count = select(func.count(distinct(_reporter_key()))).where(MessageRow.case_id == case_id)
    return int(session.scalar(count) or 0)


def window_counts(
    session: Session, since: datetime | None, until: datetime
) -> dict[int, dict[str, Any]]:
    """Per case, its reports between ``since`` and ``until``: one grouped query."""
    query = (
        select(
            MessageRow.case_id,
            func.count(),
            func.count(distinct(_reporter_key())),
            func.sum(MessageRow.likes),
            func.sum(MessageRow.dislikes),
            func.max(MessageRow.created_at),
        )
        .where(MessageRow.created_at <= until)
        .group_by(MessageRow.case_id)
    )
    if since is not None:
        query = query.where(MessageRow.created_at >= since)
    return {
        case_id: {
            "reports": reports,
            "reporters": reporters,
            "likes": int(likes or 0),
            "dislikes": int(dislikes or 0),
            "last_at": last_at,
        }
        for case_id, reports, reporters, likes, dislikes, last_at in session.execute(query)
        if case_id is not None
    }


def hot_cases(session: Session, since: datetime | None, until: datetime) -> list[dict[str, Any]]:
    """The cases with a report between ``since`` and ``until``, hottest first (ties: the older
    case first), each with the window's counts (:func:`window_counts`) and its ``heat``
    (:func:`~wangge.models.dedup.heat`, aged to ``until``): what ``GET /v1/hot-issues`` and the
    dashboard both rank. A merged case's messages are its surviving case's, so a merged case
    is counted once, under that case."""
    window = window_counts(session, since, until)
    rows: Iterable[CaseRow] = (
        session.scalars(select(CaseRow).where(CaseRow.id.in_(window))) if window else []
    )
    cases = {case.id: case for case in rows}
    ranked = []
    for case_id, counts in window.items():
        case = cases[case_id]
        age = (until - counts["last_at"]).total_seconds() / 86400
        score = heat(counts["reports"], counts["reporters"], counts["likes"], counts["dislikes"],
                     age)  # fmt: skip
        ranked.append({"case_id": case.id, "title": case.title, "first_at": case.first_at,
                       "category": case.category, "street_code": case.street_code,
                       "community_code": case.community_code, **counts,
                       "heat": round(score, 4)})  # fmt: skip
    ranked.sort(key=lambda case: (-case["heat"], case["case_id"]))
    return ranked


def recount_reports(session: Session, case_ids: Iterable[int]) -> dict[int, int]:
    """Set the ``reports`` of these cases to the number of their messages, and return them.

    Call it after moving messages between cases, in the same transaction: the moves are
    flushed, then the case rows locked in id order (PostgreSQL; on SQLite the flushed writes
    hold the database's write lock already) before counting, so that a concurrent move into or
    out of the same cases waits for this one to commit and counts it."""
    ids = sorted(set(case_ids))
    session.flush()
    cases = session.scalars(
        select(CaseRow)
        .where(CaseRow.id.in_(ids))
        .order_by(CaseRow.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: foreign-key checks do not wait
        .execution_options(populate_existing=True)
    ).all()
    counted = select(MessageRow.case_id, func.count()).where(MessageRow.case_id.in_(ids))
    counts = {
        case_id: count for case_id, count in session.execute(counted.group_by(MessageRow.case_id))
    }
    for case in cases:
        case.reports = counts.get(case.id, 0)
    return {case_id: counts.get(case_id, 0) for case_id in ids}
