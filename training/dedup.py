"""Deduplicating files: ``wangge dedup``.

Messages are processed in time order (the time column, 留言时间/时间/created_at); each joins
the case of an earlier message it repeats or opens its own. The output keeps the input rows
and columns in their order and adds ``case_id`` (the id of the case's first message),
``duplicate_of`` (the message matched, empty for a case's first), ``dup_score`` (the
same-case probability) and ``dup_evidence``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.errors import DataError
from wangge.models.dedup import Decision, DedupMessage, DuplicateDetector, Encoder, MessageFeatures
from wangge.training.loaders import (
    EMPTY_REASON,
    FileSummary,
    LoadedMessages,
    find_column,
    load_messages,
    titles_and_bodies,
    write_table,
)
from wangge.training.routing import add_columns

logger = logging.getLogger(__name__)

DEDUP_MAX_TOKENS = 32  # titles: longer ones are cut, which costs little for duplicate search
FEATURE_BATCH = 1024  # messages encoded between two progress reports


@dataclass(frozen=True)
class DedupSummary(FileSummary):
    """A file summary with the number of cases found (rows without text join none)."""

    cases: int = 0


def message_times(data: LoadedMessages) -> pd.Series:
    """The time of every row, parsed; a row whose time cannot be read is an error."""
    column = data.columns.time
    if column is None:
        raise DataError(
            "no time column found (留言时间, 时间 or created_at); name it with --time-column",
            path=data.path,
        )
    times = pd.to_datetime(data.frame[column], errors="coerce", format="mixed")
    bad = times.isna()
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"not a date and time: {data.frame[column].iloc[index]!r}",
            path=data.path,
            row=data.rows[index],
            column=column,
        )
    return times


def dedup_messages(data: LoadedMessages, times: pd.Series) -> list[DedupMessage]:
    frame = data.frame
    ids = (
        frame[data.columns.id]
        if data.columns.id
        else pd.Series([str(row) for row in data.rows], index=frame.index)
    )
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        index = int(ids.duplicated().to_numpy().nonzero()[0][0])
        raise DataError(
            f"duplicate message id {duplicated.iloc[0]!r}: ids must be unique",
            path=data.path,
            row=data.rows[index],
            column=data.columns.id,
        )
    reporter = find_column(frame, "reporter")
    texts = titles_and_bodies(data)
    return [
        DedupMessage(
            id=str(ids.iloc[i]),
            title=texts[i][0],
            content=texts[i][1],
            time=times.iloc[i].to_pydatetime(),
            reporter=(str(frame[reporter].iloc[i]) or None) if reporter else None,
        )
        for i in range(len(frame))
    ]


def dedup_columns(decisions: list[Decision | None]) -> dict[str, list[Any]]:
    """The columns ``wangge dedup`` adds; a row without text (``None``) is in no case."""
    return {
        "case_id": [d.case_id if d else "" for d in decisions],
        "duplicate_of": [d.duplicate_of or "" if d else "" for d in decisions],
        "dup_score": [d.score if d else None for d in decisions],
        "dup_evidence": [d.evidence if d else {"skipped": EMPTY_REASON} for d in decisions],
    }


def dedup_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    detector: DuplicateDetector,
    text_columns: list[str] | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> DedupSummary:
    """Deduplicate a file in time order.

    A row without text joins no case (empty ``case_id``, ``dup_evidence`` ``{"skipped":
    "empty"}``), unless ``strict``: it is then an error. ``progress(what, done, total)``
    follows the encoding (``"preparing"``) and the decisions (``"deduplicating"``).
    """
    data = load_messages(
        input_path, text_columns=text_columns, time_column=time_column, id_column=id_column,
        allow_empty=not strict,
    )  # fmt: skip
    times = message_times(data)
    messages = dedup_messages(data, times)
    empty = set(data.empty)
    order = sorted(
        (i for i in range(len(messages)) if i not in empty), key=lambda i: (messages[i].time, i)
    )
    ordered = [messages[i] for i in order]
    features: list[MessageFeatures] = []
    for start in range(0, len(ordered), FEATURE_BATCH):
        features += detector.features(ordered[start : start + FEATURE_BATCH])
        if progress is not None:
            progress("preparing", len(features), len(ordered))
    decided = detector.add_many(
        ordered, features, progress=None if progress is None else partial(progress, "deduplicating")
    )
    decisions: list[Decision | None] = [None] * len(messages)
    for position, index in enumerate(order):
        decisions[index] = decided[position]
    add_columns(data.frame, dedup_columns(decisions))
    write_table(data.frame, output_path)
    cases = len({d.case_id for d in decisions if d is not None})
    return DedupSummary(len(data.frame), data.columns.text, data.empty_errors(), cases)


def load_encoder(model_dir: str | Path | None) -> Encoder | None:
    """The sentence encoder of a local model directory, or ``None`` without one."""
    if model_dir is None:
        return None
    from wangge.nlp.embeddings import ENCODER_FILE, SentenceEncoder

    if not (Path(model_dir) / ENCODER_FILE).is_file():
        raise DataError(
            f"no {ENCODER_FILE} in this encoder directory (run `wangge models fetch-e5`, or "
            "`wangge models export-encoder DIR` for another Hugging Face encoder)",
            path=model_dir,
        )
    return SentenceEncoder(model_dir, max_length=DEDUP_MAX_TOKENS)
