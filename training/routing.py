"""Routing files: ``wangge route``, and the routing columns ``wangge classify`` adds.

The router reads a message's title and body, and the structured fields when the file has them
(found by name, see :data:`~wangge.training.loaders.COLUMN_NAMES`): ``address`` (地址),
``latitude``/``longitude`` (纬度/经度) and the reporter's registered ``grid`` (网格).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.errors import DataError
from wangge.models.router import MessageRouter, Route
from wangge.training.loaders import (
    EMPTY_REASON,
    FileSummary,
    LoadedMessages,
    find_column,
    load_messages,
    titles_and_bodies,
    write_table,
)

logger = logging.getLogger(__name__)

COORDINATE_RANGE = {"latitude": 90.0, "longitude": 180.0}
ROUTE_BATCH = 1024  # messages routed between two progress reports


def add_columns(frame: pd.DataFrame, columns: dict[str, list[Any]]) -> None:
    """Add result columns to ``frame``; a name the input already has gets ``predicted_``."""
    existing = set(frame.columns)
    for name, values in columns.items():
        column = name if name not in existing else f"predicted_{name}"
        if column != name:
            logger.warning("input already has a %r column: results go to %r", name, column)
        frame[column] = values


def _coordinate(
    value: str, kind: str, data: LoadedMessages, index: int, column: str
) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or abs(number) > COORDINATE_RANGE[kind]:
        raise DataError(
            f"not a {kind} in degrees: {value!r}",
            path=data.path,
            row=data.rows[index],
            column=column,
        )
    return number


def routing_messages(data: LoadedMessages) -> list[dict[str, Any]]:
    """The routing fields of every row: title, content and the structured location fields.

    With two or more text columns the first is the title (counted a little more by the
    router); with one it is all content.
    """
    frame = data.frame
    found = {
        kind: find_column(frame, kind) for kind in ("address", "latitude", "longitude", "grid")
    }
    messages = []
    texts = titles_and_bodies(data)
    for index, record in enumerate(frame.to_dict("records")):
        title, body = texts[index]
        message: dict[str, Any] = {"title": title or None, "content": body}
        if found["address"]:
            message["address"] = record[found["address"]]
        if found["grid"]:
            message["grid_id"] = record[found["grid"]].strip() or None
        for kind in ("latitude", "longitude"):
            column = found[kind]
            if column:
                message[kind] = _coordinate(record[column], kind, data, index, column)
        messages.append(message)
    return messages


def routing_columns(routes: list[Route]) -> dict[str, list[Any]]:
    """The columns routing adds, one value per message."""
    columns: dict[str, list[Any]] = {}
    for route in routes:
        for name, value in route.as_columns().items():
            columns.setdefault(name, []).append(value)
    return columns


def route_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    router: MessageRouter,
    text_columns: list[str] | None = None,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> FileSummary:
    """Route every message of ``input_path``; write the input columns plus the routing ones.

    A row without text is routed by its address fields alone and flagged for review with the
    reason ``empty``, unless ``strict``: it is then an error. ``progress("routing", done,
    total)`` follows the routing.
    """
    data = load_messages(input_path, text_columns=text_columns or None, allow_empty=not strict)
    messages = routing_messages(data)
    routes: list[Route] = []
    for start in range(0, len(messages), ROUTE_BATCH):
        routes += router.route_many(messages[start : start + ROUTE_BATCH])
        if progress is not None:
            progress("routing", len(routes), len(messages))
    columns = routing_columns(routes)
    empty = set(data.empty)
    reasons = [
        [EMPTY_REASON] * (index in empty) + ["location"] * route.needs_review
        for index, route in enumerate(routes)
    ]
    columns["needs_review"] = [bool(reason) for reason in reasons]
    columns["review_reason"] = [",".join(reason) for reason in reasons]
    frame = data.frame
    add_columns(frame, columns)
    write_table(frame, output_path)
    return FileSummary.of(data)


@dataclass(frozen=True)
class RoutingEvaluation:
    """Location accuracy against gold ``gold_street_code``/``gold_community_code`` columns.

    ``leaks`` counts messages whose gold is out of area or no place at all but which were
    routed to a community of the district: the mistake that sends a grid worker for nothing.
    """

    messages: int
    street_accuracy: float
    community_accuracy: float
    out_of_area_accuracy: float
    leaks: int
    by_kind: dict[str, tuple[int, int]]  # kind -> (correct, total)
    errors: list[str]


def evaluate_routing(data: LoadedMessages, routes: list[Route]) -> RoutingEvaluation:
    """Compare routes with the gold columns of an evaluation file (see ``tests/fixtures``)."""
    frame = data.frame
    for column in ("gold_street_code", "gold_community_code", "gold_out_of_area"):
        if column not in frame.columns:
            raise DataError("an evaluation file needs this column", path=data.path, column=column)
    kinds = frame["kind"] if "kind" in frame.columns else pd.Series(["all"] * len(frame))
    street = community = out = leaks = 0
    by_kind: dict[str, list[int]] = {}
    errors = []
    for index, route in enumerate(routes):
        got = route.location.as_columns()
        gold_street = frame["gold_street_code"].iloc[index]
        gold_community = frame["gold_community_code"].iloc[index]
        gold_out = frame["gold_out_of_area"].iloc[index].strip() in ("1", "true", "True")
        right = (
            got["street_code"] == gold_street,
            got["community_code"] == gold_community,
            got["out_of_area"] == gold_out,
        )
        street, community, out = street + right[0], community + right[1], out + right[2]
        if (gold_out or not gold_community) and not gold_street and got["community_code"]:
            leaks += 1
        tally = by_kind.setdefault(kinds.iloc[index], [0, 0])
        tally[0] += all(right)
        tally[1] += 1
        if not all(right):
            errors.append(
                f"row {data.rows[index]}: gold {gold_street or '-'}/{gold_community or '-'}"
                f"{' out' if gold_out else ''}, got {got['street_name'] or '-'}/"
                f"{got['community_name'] or '-'}{' out' if got['out_of_area'] else ''} "
                f"({'; '.join(got['route_evidence'])})"
            )
    total = len(routes)
    return RoutingEvaluation(
        total,
        street / total,
        community / total,
        out / total,
        leaks,
        {kind: (c, n) for kind, (c, n) in by_kind.items()},
        errors,
    )
