"""``wangge classify``: the category (and, with a router, place and departments) of each row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from wangge.batch.files import FileSummary, load_messages, write_table
from wangge.batch.messages import add_columns, file_messages, review_columns, routing_columns
from wangge.models.router import MessageRouter
from wangge.pipeline import Triage, TriageResult


def prediction_columns(results: Sequence[TriageResult]) -> dict[str, list[Any]]:
    """The columns ``wangge classify`` adds before the routing ones, one value per message; a
    row without text gets no category and confidence 0."""
    values = [result.category_columns(top_k=3) for result in results]
    review = review_columns(results)
    return {
        "category": [v["category"] for v in values],
        "confidence": [v["probability"] for v in values],
        "top3": [v["top_k"] for v in values],
        "needs_review": review["needs_review"],
        "review_reason": review["review_reason"],
        "evidence": [v["evidence"] for v in values],
    }


def classify_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    router: MessageRouter | None = None,
    text_columns: list[str] | None = None,
    jobs: int = 1,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> FileSummary:
    """Score every message of ``input_path`` and write the input plus predictions.

    Every input column is kept. Should the input already have a column with one of the output
    names, the prediction column is written as ``predicted_<name>`` instead of overwriting it.
    With a ``router``, the routing columns are added too (street, community, grid, department
    top-3 …) and a doubtful location adds ``location`` to the review reasons. A row without
    text gets no category and ``needs_review`` with the reason ``empty`` (it is still routed
    by its address fields), unless ``strict``: it is then an error. ``progress("scoring",
    done, total)`` follows the scoring.
    """
    triage = Triage.load(model_dir, router=router)
    data = load_messages(input_path, text_columns=text_columns or None, allow_empty=not strict)
    results = triage.pipe(
        file_messages(data, locations=router is not None),
        jobs=jobs,
        progress=None if progress is None else partial(progress, "scoring"),
    )
    columns = prediction_columns(results)
    if router is not None:
        columns |= routing_columns(results)
    add_columns(data.frame, columns)  # the frame is ours to extend: no copy of a large input
    write_table(data.frame, output_path)
    return FileSummary.of(data)
