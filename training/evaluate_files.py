"""Evaluating on labelled files: ``wangge evaluate`` (categories) and routing gold columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wangge.batch.files import LoadedMessages, load_messages
from wangge.batch.messages import file_messages
from wangge.errors import DataError
from wangge.models.router import Route
from wangge.pipeline import Triage
from wangge.pipeline.artifact import ModelMeta, file_sha256, load_model
from wangge.training.calibration import AutoAccept, auto_accept, save_coverage_png
from wangge.training.evaluate import EvaluationReport, evaluate_predictions
from wangge.training.train import fingerprint, write_report

COVERAGE_PNG = "coverage_accuracy.png"


@dataclass(frozen=True)
class FileEvaluation:
    """A model evaluated on a labelled file: the category report, and what its review
    thresholds do to the file's messages (``auto_accept``). When the file is the model's own
    calibration data, those figures would be in-sample: ``recorded`` then holds the
    cross-fitted out-of-fold figures recorded at training, which are the ones to quote."""

    report: EvaluationReport
    auto_accept: AutoAccept
    recorded: dict[str, Any] | None = None
    note: str = ""
    curve: Path | None = None

    def summary(self) -> str:
        """The auto-accept lines ``wangge evaluate`` prints under the report."""
        lines = [self.note] if self.note else []
        if self.recorded is None:
            lines.append(self.auto_accept.describe())
        else:
            figures = self.recorded
            lines += [
                f"cross-fitted out-of-fold (recorded at training): auto-accepted "
                f"{figures['accepted']} of {figures['messages']} messages, "
                f"{figures['accuracy']} right ({figures['accepted_correct']}); review share "
                f"{figures['review_share']:.1%}",
                f"(in-sample, not an honest estimate: {self.auto_accept.describe()})",
            ]
        if self.curve is not None:
            lines.append(f"coverage-accuracy curve: {self.curve}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "auto_accept": self.auto_accept.as_dict(),
            "auto_accept_recorded_out_of_fold": self.recorded,
            "note": self.note,
        }


def evaluate_file(
    model_dir: str | Path,
    data_path: str | Path,
    *,
    text_columns: list[str] | None = None,
    label_column: str | None = None,
    output_dir: str | Path | None = None,
    curve: str | Path | None = None,
) -> FileEvaluation:
    """Evaluate a saved model on a labelled file: the category report and the auto-accept
    accuracy and review share; optionally write the report files (with the coverage-accuracy
    curve) into ``output_dir`` and the curve to ``curve``."""
    model, meta = load_model(model_dir)
    data = load_messages(
        data_path, text_columns=text_columns or None, label_column=label_column, require_label=True
    )
    assert data.labels is not None  # require_label=True guarantees it
    results = Triage(model).pipe(file_messages(data, locations=False))
    predictions = [result.prediction for result in results]
    predicted = [p.category if p else "" for p in predictions]
    report = evaluate_predictions(data.labels, predicted, labels=meta.labels)
    correct = [p == g for p, g in zip(predicted, data.labels, strict=True)]
    accepted = [p is not None and not p.needs_review for p in predictions]
    figures = auto_accept(accepted, correct)
    recorded, note = _in_sample(meta, data, Path(data_path))
    if output_dir is not None:
        curve = curve or Path(output_dir) / COVERAGE_PNG
    if curve is not None:
        Path(curve).parent.mkdir(parents=True, exist_ok=True)
        review = meta.metrics.get("review", {})
        save_coverage_png(
            [p.confidence if p else 0.0 for p in predictions], correct, curve,
            target=review.get("target_accuracy", meta.metrics.get("review_target_accuracy")),
            operating=figures if recorded is None else AutoAccept(
                recorded["messages"], recorded["accepted"], recorded["accepted_correct"]
            ),
            operating_label="model's review thresholds"
            + (" (cross-fitted, recorded at training)" if recorded else ""),
            title=f"{Path(data_path).name}, {len(correct)} messages"
            + (" (in-sample: the model's calibration data)" if recorded else ""),
        )  # fmt: skip
    evaluation = FileEvaluation(report, figures, recorded, note, Path(curve) if curve else None)
    if output_dir is not None:
        extra = {"model_version": meta.version, "data": str(data_path)} | evaluation.as_dict()
        write_report(report, output_dir, extra=extra)
    return evaluation


def _in_sample(
    meta: ModelMeta, data: LoadedMessages, path: Path
) -> tuple[dict[str, Any] | None, str]:
    """The recorded out-of-fold figures if ``data`` is the model's calibration data (by its
    fingerprint), and a note if it is its calibration or training data."""
    assert data.labels is not None
    digest = fingerprint(data.texts, data.labels)
    review = meta.metrics.get("review")
    if not isinstance(review, dict):  # a model saved before the review record existed
        review = {}
    source = review.get("source", {})
    same_file = path.is_file() and source.get("file_sha256") == file_sha256(path)
    if source.get("sha256") == digest or same_file:
        note = (
            "This file is the model's calibration data: its review thresholds were chosen "
            "on it, so its own figures here are in-sample"
        )
        return review["expected"], note
    if meta.training_data.get("sha256") == digest:
        return None, "Note: this file is the model's training data: these figures are in-sample"
    return None, ""


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
