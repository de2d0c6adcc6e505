"""From a loaded table to pipeline messages, and from results back to columns."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from wangge.batch.files import LoadedMessages, find_column, titles_and_bodies
from wangge.pipeline import Message, TriageResult
from wangge.pipeline.reasons import join_reasons

logger = logging.getLogger(__name__)

COORDINATE_RANGE = {"latitude": 90.0, "longitude": 180.0}


def file_messages(
    data: LoadedMessages,
    *,
    times: pd.Series | None = None,
    ids: pd.Series | None = None,
    locations: bool = True,
    positions: Sequence[int] | None = None,
) -> list[Message]:
    """The rows at ``positions`` (default: all) as pipeline messages: title and body, the
    reporter, and (with ``locations``) the structured location fields found by name
    (``address``, ``latitude``/``longitude``, ``grid``), checked. ``times`` and ``ids`` are
    aligned with ``positions``.

    With two or more text columns the first is the title (counted a little more by the
    router); with one it is all content.
    """
    frame = data.frame
    kinds = ("address", "latitude", "longitude", "grid", "reporter") if locations else ("reporter",)
    found = {kind: find_column(frame, kind) for kind in kinds}
    columns = {kind: frame[column].tolist() for kind, column in found.items() if column}
    texts = titles_and_bodies(data)
    messages = []
    for k, index in enumerate(range(len(texts)) if positions is None else positions):
        title, body = texts[index]
        fields: dict[str, Any] = {}
        if "address" in columns:
            fields["address"] = columns["address"][index]
        if "grid" in columns:
            fields["grid_id"] = columns["grid"][index]
        for kind in ("latitude", "longitude"):
            if kind in columns:
                fields[kind] = _coordinate(columns[kind][index], kind, data, index, found[kind])
        if "reporter" in columns:
            fields["reporter"] = str(columns["reporter"][index]) or None
        if times is not None:
            fields["time"] = times.iloc[k].to_pydatetime()
        if ids is not None:
            fields["id"] = str(ids.iloc[k])
        messages.append(Message.of_normalized(title, body, **fields))
    return messages


def _coordinate(
    value: str, kind: str, data: LoadedMessages, index: int, column: Any
) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or abs(number) > COORDINATE_RANGE[kind]:
        raise data.error(f"not a {kind} in degrees: {value!r}", index, column)
    return number


def review_columns(results: Sequence[TriageResult]) -> dict[str, list[Any]]:
    """``needs_review`` and ``review_reason`` (the reason codes, comma-separated)."""
    return {
        "needs_review": [result.needs_review for result in results],
        "review_reason": [join_reasons(result.reasons) for result in results],
    }


def routing_columns(results: Sequence[TriageResult]) -> dict[str, list[Any]]:
    """The columns routing adds (place, grid, departments), one value per message."""
    columns: dict[str, list[Any]] = {}
    for result in results:
        assert result.route is not None  # the pipeline routes when it has a router
        for name, value in result.route.as_columns().items():
            columns.setdefault(name, []).append(value)
    return columns


def add_columns(frame: pd.DataFrame, columns: dict[str, list[Any]]) -> None:
    """Add result columns to ``frame``; a name the input already has gets ``predicted_``."""
    existing = set(frame.columns)
    for name, values in columns.items():
        column = name if name not in existing else f"predicted_{name}"
        if column != name:
            logger.warning("input already has a %r column: results go to %r", name, column)
        frame[column] = values
