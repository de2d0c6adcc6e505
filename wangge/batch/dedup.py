"""Deduplicating files: ``wangge dedup``.

Messages are processed in time order (the time column, 留言时间/时间/created_at); each joins
the case of earlier messages it repeats or opens its own; a message that shows two cases to be
one merges the younger into the older (:mod:`wangge.models.cases`). The output keeps the input
rows and columns in their order and adds ``case_id`` (the case the message ends in, after any
merge: the id of its first message), ``merged_from`` (the case it was in before an automatic
merge moved it, else empty), ``duplicate_of`` (the message matched, empty for a case's first),
``dup_score`` (the same-case probability) and ``dup_evidence`` (with ``merged``: the cases the
message merged into its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.batch.files import FileSummary, LoadedMessages, load_messages, write_table
from wangge.batch.messages import add_columns, file_messages
from wangge.errors import DataError
from wangge.models.dedup import Decision, DuplicateDetector
from wangge.pipeline import Message, ReviewReason, Triage

logger = logging.getLogger(__name__)

# Messages encoded between two progress reports. The int8 encoder quantises its activations
# per run, so an embedding depends a little on the texts batched with it: changing this
# changes some decisions (102 of 4,326 on the hot-issue messages at 2,048).
FEATURE_BATCH = 1024


@dataclass(frozen=True)
class DedupSummary(FileSummary):
    """A file summary with the number of cases found (rows without text join none) and of the
    cases merged automatically into others."""

    cases: int = 0
    merged: int = 0


def message_times(data: LoadedMessages, positions: Sequence[int]) -> pd.Series:
    """The time of the rows at ``positions``, parsed; a time that cannot be read is an error."""
    column = data.columns.time
    if column is None:
        raise DataError(
            "no time column found (留言时间, 时间 or created_at); name it with --time-column",
            path=data.path,
        )
    values = data.frame[column].iloc[list(positions)]
    times = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = times.isna()
    if bad.any():
        index = positions[int(bad.to_numpy().nonzero()[0][0])]
        raise data.error(f"not a date and time: {data.frame[column].iloc[index]!r}", index, column)
    return times


def message_ids(data: LoadedMessages, positions: Sequence[int]) -> pd.Series:
    """The id of the rows at ``positions`` (their id column, else their row number); a
    repeated id is an error."""
    frame = data.frame.iloc[list(positions)]
    ids = (
        frame[data.columns.id]
        if data.columns.id
        else pd.Series([str(data.rows[i]) for i in positions], index=frame.index)
    )
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        index = positions[int(ids.duplicated().to_numpy().nonzero()[0][0])]
        raise data.error(
            f"duplicate message id {duplicated.iloc[0]!r}: ids must be unique",
            index,
            data.columns.id,
        )
    return ids


def messages_in_time_order(data: LoadedMessages) -> tuple[list[int], list[Message]]:
    """The rows with text as pipeline messages in time order (the file's order among equal
    times), with their positions in the file; a row without text has no time nor id to read."""
    empty = set(data.empty)
    texted = [i for i in range(len(data.frame)) if i not in empty]
    times, ids = message_times(data, texted), message_ids(data, texted)
    messages = file_messages(data, times=times, ids=ids, locations=False, positions=texted)
    order = sorted(range(len(messages)), key=lambda k: (messages[k].time, k))
    return [texted[k] for k in order], [messages[k] for k in order]


def dedup_columns(
    decisions: list[Decision | None], final: list[str | None] | None = None
) -> dict[str, list[Any]]:
    """The columns ``wangge dedup`` adds; a row without text (``None``) is in no case.
    ``final``: each row's case after the automatic merges (default: the case it joined)."""
    cases = final or [d.case_id if d else None for d in decisions]
    return {
        "case_id": [case or "" for case in cases],
        "merged_from": [
            d.case_id if d and case != d.case_id else ""
            for d, case in zip(decisions, cases, strict=True)
        ],
        "duplicate_of": [d.duplicate_of or "" if d else "" for d in decisions],
        "dup_score": [d.score if d else None for d in decisions],
        "dup_evidence": [
            d.evidence if d else {"skipped": ReviewReason.EMPTY.value} for d in decisions
        ],
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
    positions, ordered = messages_in_time_order(data)
    results = Triage(detector=detector).pipe(
        ordered,
        batch_size=FEATURE_BATCH,
        progress=None if progress is None else partial(progress, "preparing"),
    )
    dedups = [result.dedup for result in results]
    decided = detector.add_many(
        [d for d in dedups if d is not None],
        [result.features for result in results if result.features is not None],
        progress=None if progress is None else partial(progress, "deduplicating"),
    )
    decisions: list[Decision | None] = [None] * len(data.frame)
    final: list[str | None] = [None] * len(data.frame)
    for position, decision in zip(positions, decided, strict=True):
        decisions[position] = decision
        final[position] = detector.case_of(decision.message_id)
    add_columns(data.frame, dedup_columns(decisions, final))
    write_table(data.frame, output_path)
    cases = len({case for case in final if case is not None})
    merged = sum(len(d.merged) for d in decided)
    return DedupSummary.of(data, cases=cases, merged=merged)
