"""Routing files: ``wangge route``, and the routing columns ``wangge classify`` adds.

The router reads a message's title and body, and the structured fields when the file has them
(found by name, see :data:`~wangge.training.loaders.COLUMN_NAMES`): ``address`` (地址),
``latitude``/``longitude`` (纬度/经度) and the reporter's registered ``grid`` (网格).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.errors import DataError
from wangge.models.router import MessageRouter, Route
from wangge.nlp.fields import message_text
from wangge.training.loaders import LoadedMessages, find_column, load_messages, write_table

logger = logging.getLogger(__name__)

COORDINATE_RANGE = {"latitude": 90.0, "longitude": 180.0}


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
    text = list(data.columns.text)
    found = {
        kind: find_column(frame, kind) for kind in ("address", "latitude", "longitude", "grid")
    }
    messages = []
    for index, record in enumerate(frame.to_dict("records")):
        message: dict[str, Any] = {
            "title": record[text[0]] if len(text) > 1 else None,
            "content": message_text(record[c] for c in (text[1:] if len(text) > 1 else text)),
        }
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
) -> int:
    """Route every message of ``input_path``; write the input columns plus the routing ones."""
    data = load_messages(input_path, text_columns=text_columns or None)
    routes = router.route_many(routing_messages(data))
    columns = routing_columns(routes)
    columns["needs_review"] = [route.needs_review for route in routes]
    columns["review_reason"] = ["location" if route.needs_review else "" for route in routes]
    frame = data.frame
    add_columns(frame, columns)
    write_table(frame, output_path)
    return len(frame)
