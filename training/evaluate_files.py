"""Evaluating on labelled files: ``wangge evaluate`` (categories) and routing gold columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wangge.batch.files import LoadedMessages, load_messages
from wangge.batch.messages import file_messages
from wangge.errors import DataError
from wangge.models.router import Route
from wangge.pipeline import Triage
from wangge.pipeline.artifact import load_model
from wangge.training.evaluate import EvaluationReport, evaluate_predictions
from wangge.training.train import write_report


def evaluate_file(
    model_dir: str | Path,
    data_path: str | Path,
    *,
    text_columns: list[str] | None = None,
    label_column: str | None = None,
    output_dir: str | Path | None = None,
) -> EvaluationReport:
    """Evaluate a saved model on a labelled file; optionally write the report files."""
    model, meta = load_model(model_dir)
    data = load_messages(
        data_path, text_columns=text_columns or None, label_column=label_column, require_label=True
    )
    assert data.labels is not None  # require_label=True guarantees it
    results = Triage(model).pipe(file_messages(data, locations=False))
    predicted = [result.prediction.category if result.prediction else "" for result in results]
    report = evaluate_predictions(data.labels, predicted, labels=meta.labels)
    if output_dir is not None:
        write_report(
            report, output_dir, extra={"model_version": meta.version, "data": str(data_path)}
        )
    return report


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


def evaluate_routing(data: LoadedMessages, routes: Sequence[Route]) -> RoutingEvaluation:
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
