"""Tests for wangge.training.evaluate: metrics, review threshold, confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wangge.training.evaluate import (
    ClassMetrics,
    EvaluationReport,
    choose_review_threshold,
    evaluate_predictions,
    save_confusion_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Hand-computed example (labels a, b, c):
#   gold a a a b b c / predicted a a b b c c
#   confusion (rows gold a, b, c; columns predicted a, b, c): [2 1 0] [0 1 1] [0 0 1]
#   a: P 2/2, R 2/3, F1 0.8;  b: P 1/2, R 1/2, F1 0.5;  c: P 1/2, R 1/1, F1 2/3
GOLD = ["a", "a", "a", "b", "b", "c"]
PREDICTED = ["a", "a", "b", "b", "c", "c"]


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    return evaluate_predictions(GOLD, PREDICTED)


def test_evaluate_predictions_hand_computed(report: EvaluationReport) -> None:
    assert report.n == 6
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report.micro_f1 == pytest.approx(4 / 6)
    assert report.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert report.labels == ["a", "b", "c"]
    assert report.per_class["a"] == ClassMetrics(
        precision=1.0, recall=pytest.approx(2 / 3), f1=pytest.approx(0.8), support=3
    )  # type: ignore[arg-type]
    assert report.per_class["b"].precision == pytest.approx(0.5)
    assert report.per_class["b"].recall == pytest.approx(0.5)
    assert report.per_class["c"].precision == pytest.approx(0.5)
    assert report.per_class["c"].recall == pytest.approx(1.0)
    assert [report.per_class[x].support for x in "abc"] == [3, 2, 1]


def test_evaluate_predictions_confusion_rows_are_gold(report: EvaluationReport) -> None:
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # Row sums are gold counts, column sums predicted counts.
    assert [sum(row) for row in report.confusion] == [3, 2, 1]
    assert [sum(col) for col in zip(*report.confusion, strict=True)] == [2, 2, 2]


def test_evaluate_predictions_labels_order_respected() -> None:
    report = evaluate_predictions(GOLD, PREDICTED, labels=["c", "a", "b"])
    assert report.labels == ["c", "a", "b"]
    assert report.confusion == [[1, 0, 0], [0, 2, 1], [1, 0, 1]]
    assert list(report.per_class) == ["c", "a", "b"]
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_evaluate_predictions_unseen_predicted_label_included() -> None:
    report = evaluate_predictions(["a", "a", "b", "b"], ["a", "x", "b", "b"], labels=["a", "b"])
    assert report.labels == ["a", "b", "x"]
    assert report.confusion == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    assert report.per_class["x"] == ClassMetrics(precision=0.0, recall=0.0, f1=0.0, support=0)
    # Macro-F1 averages the categories present in the gold labels only (a: 2/3, b: 1).
    assert report.macro_f1 == pytest.approx((2 / 3 + 1.0) / 2)
    assert report.accuracy == pytest.approx(0.75)


def test_evaluate_predictions_label_absent_from_data_listed() -> None:
    report = evaluate_predictions(["a", "b"], ["a", "b"], labels=["a", "b", "z"])
    assert report.labels == ["a", "b", "z"]
    assert report.confusion[2] == [0, 0, 0]
    assert report.macro_f1 == 1.0  # z has no gold support: not averaged


def test_evaluate_predictions_default_order_is_sorted_union() -> None:
    report = evaluate_predictions(["环境保护", "交通运输"], ["交通运输", "城乡建设"])
    assert report.labels == sorted({"环境保护", "交通运输", "城乡建设"})


def test_evaluate_predictions_perfect() -> None:
    report = evaluate_predictions(GOLD, GOLD)
    assert report.accuracy == report.macro_f1 == report.micro_f1 == report.weighted_f1 == 1.0
    assert report.confusion == [[3, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_report_summary_rounds(report: EvaluationReport) -> None:
    assert report.summary() == {
        "n": 6,
        "accuracy": 0.6667,
        "macro_f1": 0.6556,
        "micro_f1": 0.6667,
        "weighted_f1": 0.6778,
    }


def test_report_to_dict_is_json(report: EvaluationReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["confusion"] == report.confusion
    assert data["per_class"]["a"]["support"] == 3


def test_report_to_markdown(report: EvaluationReport) -> None:
    text = report.to_markdown()
    assert "macro-F1: 0.6556" in text
    assert "| a | 1.000 | 0.667 | 0.800 | 3 |" in text
    assert "| gold \\ predicted | a | b | c |" in text
    assert "| a | 2 | 1 | 0 |" in text


# -- choose_review_threshold ----------------------------------------------------------------
def test_review_threshold_all_correct() -> None:
    assert choose_review_threshold([0.9, 0.3, 0.6], [True, True, True]) == (0.3, 1.0)


@pytest.mark.parametrize(
    ("confidences", "correct"),
    [([0.9, 0.8], [False, True]), ([0.9, 0.4], [False, False]), ([], [])],
    ids=["top-wrong", "all-wrong", "empty"],
)
def test_review_threshold_target_not_reached(confidences: list[float], correct: list[bool]) -> None:
    assert choose_review_threshold(confidences, correct, target_accuracy=0.95) == (1.0, 0.0)


def test_review_threshold_typical() -> None:
    confidences = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True, False]
    # Running accuracy from the top: 1, 1, 1, 3/4, 4/5, 4/6.
    assert choose_review_threshold(confidences, correct, target_accuracy=0.8) == (0.6, 0.8333)
    assert choose_review_threshold(confidences, correct, target_accuracy=0.95) == (0.8, 0.5)
    assert choose_review_threshold(confidences, correct, target_accuracy=0.6) == (0.5, 1.0)


def test_review_threshold_input_order_irrelevant() -> None:
    confidences = [0.5, 0.95, 0.7, 0.9, 0.6, 0.8]
    correct = [False, True, False, True, True, True]
    assert choose_review_threshold(confidences, correct, target_accuracy=0.8) == (0.6, 0.8333)


def test_review_threshold_accepts_numpy() -> None:
    import numpy as np

    threshold, coverage = choose_review_threshold(
        np.array([0.91234567, 0.5]), np.array([True, False]), target_accuracy=0.9
    )
    assert (threshold, coverage) == (
        0.91234567,
        0.5,
    )  # not rounded: it is compared with probabilities
    assert isinstance(threshold, float) and isinstance(coverage, float)


def test_review_threshold_ties() -> None:
    # The two 0.8 predictions cannot be told apart by a threshold: one is wrong, so with a
    # target of 100 % only the 0.9 prediction may pass, whatever the order of the input.
    first = choose_review_threshold([0.9, 0.8, 0.8], [True, True, False], target_accuracy=1.0)
    second = choose_review_threshold([0.9, 0.8, 0.8], [True, False, True], target_accuracy=1.0)
    assert first == second == (0.9, pytest.approx(1 / 3, abs=1e-4))


# -- save_confusion_png ---------------------------------------------------------------------
def test_save_confusion_png_writes_png(report: EvaluationReport, tmp_path: Path) -> None:
    path = save_confusion_png(report, tmp_path / "confusion.png")
    assert path == tmp_path / "confusion.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_save_confusion_png_chinese_labels(tmp_path: Path) -> None:
    report = evaluate_predictions(
        ["城乡建设", "环境保护", "交通运输", "环境保护"],
        ["城乡建设", "交通运输", "交通运输", "环境保护"],
    )
    path = save_confusion_png(report, str(tmp_path / "cm.png"))
    assert Path(path).read_bytes().startswith(PNG_SIGNATURE)


def test_save_confusion_png_row_without_gold(tmp_path: Path) -> None:
    # A predicted-only label has an all-zero row: shares must not divide by zero.
    report = evaluate_predictions(["a", "a"], ["a", "x"])
    path = save_confusion_png(report, tmp_path / "cm.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
