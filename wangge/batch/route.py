"""``wangge route``: the place (street, community, grid) and departments of each row.

The router reads a message's title and body, and the structured fields when the file has them
(found by name, see :data:`~wangge.batch.files.COLUMN_NAMES`): ``address`` (地址),
``latitude``/``longitude`` (纬度/经度) and the reporter's registered ``grid`` (网格).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from wangge.batch.files import FileSummary, load_messages, write_table
from wangge.batch.messages import add_columns, file_messages, review_columns, routing_columns
from wangge.models.router import MessageRouter
from wangge.pipeline import Triage


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
    results = Triage(router=router).pipe(
        file_messages(data), progress=None if progress is None else partial(progress, "routing")
    )
    add_columns(data.frame, routing_columns(results) | review_columns(results))
    write_table(data.frame, output_path)
    return FileSummary.of(data)
