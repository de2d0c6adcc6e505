"""Tests for wangge.training.calibration and its use by train/evaluate: per-category review
thresholds with their fallback, cross-fitting, the auto-accept figures and the curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import wangge.training.calibration as calibration
from wangge.batch.files import load_messages
from wangge.cli import app
from wangge.training.calibration import (
    ReviewThresholds,
    ThresholdRule,
    auto_accept,
    choose_thresholds,
    coverage_curve,
    cross_fit,
    save_coverage_png,
    thresholds_from,
)
from wangge.training.config import ReviewConfig, TrainConfig
from wangge.training.evaluate import choose_review_threshold, wilson_lower_bound
from wangge.training.evaluate_files import COVERAGE_PNG, evaluate_file
from wangge.training.train import despaced, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _category(conf: list[float], ok: list[bool], name: str) -> tuple[list, list, list]:
    return conf, [name] * len(conf), ok


def test_per_category_thresholds_and_fallback() -> None:
    # a: 6 messages, right above 0.7; b: 6 messages, right above 0.5 (its 0.4 is wrong);
    # c: 2 messages, too few for its own threshold: it takes the global one.
    a = _category([0.9, 0.8, 0.7, 0.6, 0.55, 0.5], [True, True, True, False, False, False], "a")
    b = _category([0.95, 0.8, 0.7, 0.6, 0.5, 0.4], [True] * 5 + [False], "b")
    c = _category([0.99, 0.3], [True, False], "c")
    conf, pred, ok = (x + y + z for x, y, z in zip(a, b, c, strict=True))
    thresholds = choose_thresholds(conf, pred, ok, ThresholdRule(1.0, min_messages=5))
    assert thresholds.per_category == {"a": 0.7, "b": 0.5}
    assert "c" not in thresholds.per_category
    assert thresholds.global_threshold == choose_review_threshold(conf, ok, target_accuracy=1.0)[0]
    assert thresholds.global_threshold == 0.7  # 0.99 .. 0.7 all right; the 0.6s are not
    accepted = thresholds.accepts(conf, pred)
    assert accepted.tolist() == [
        *[True, True, True, False, False, False],
        *[True, True, True, True, True, False],
        *[True, False],
    ]
    assert thresholds.of(["c", "a", "zzz"]).tolist() == [0.7, 0.7, 0.7]


def test_thresholds_all_fall_back_when_categories_are_small() -> None:
    thresholds = choose_thresholds([0.9, 0.8], ["a", "b"], [True, True], ThresholdRule(0.9))
    assert thresholds.per_category == {}
    assert thresholds.global_threshold == 0.8


def test_thresholds_unreachable_target_reviews_everything() -> None:
    thresholds = choose_thresholds(
        [0.9, 0.8], ["a", "a"], [False, True], ThresholdRule(0.9, min_messages=1)
    )
    assert thresholds.per_category == {"a": 1.0}
    assert thresholds.global_threshold == 1.0


def test_wilson_margin_is_more_conservative() -> None:
    conf = np.linspace(0.99, 0.5, 100)
    ok = np.ones(100, dtype=bool)
    ok[[40, 70]] = False  # 40 right, then 29 right, then 29 right
    plain, coverage = choose_review_threshold(conf, ok, target_accuracy=0.97)
    strict, strict_coverage = choose_review_threshold(conf, ok, target_accuracy=0.97, z=1.0)
    assert strict > plain and strict_coverage < coverage
    assert wilson_lower_bound(np.array([10]), np.array([10]), 0.0).tolist() == [1.0]
    assert wilson_lower_bound(np.array([10]), np.array([10]), 1.0)[0] == pytest.approx(10 / 11)


def test_cross_fit_never_scores_a_message_with_thresholds_it_calibrated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    n = 60
    conf = rng.uniform(0.3, 1.0, n)
    conf[0] = 0.123456  # a marker: message 0's confidence
    gold = np.array(["a", "b", "c"] * 20, dtype=object)
    pred = np.where(rng.uniform(size=n) < 0.8, gold, "a")
    seen: list[set[float]] = []
    real = calibration.choose_thresholds

    def spy(confidences, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(np.round(confidences, 6)))
        return real(confidences, *args, **kwargs)

    monkeypatch.setattr(calibration, "choose_thresholds", spy)
    crossed = cross_fit(conf, pred, gold, ThresholdRule(0.9, min_messages=5), folds=4, seed=1)
    assert len(seen) == 4 == len(crossed.thresholds)
    for k, fitted_on in enumerate(seen):
        held_out = set(np.round(conf[crossed.fold == k], 6))
        assert not held_out & fitted_on  # the fold's messages calibrated nothing that scores it
        assert len(fitted_on) + len(held_out) == n
    # Each fold is decided by its own thresholds.
    for k, thresholds in enumerate(crossed.thresholds):
        mine = crossed.fold == k
        assert (crossed.accepted[mine] == thresholds.accepts(conf[mine], pred[mine])).all()
    assert crossed.figures == auto_accept(crossed.accepted, pred == gold)


def test_auto_accept_figures() -> None:
    figures = auto_accept([True, True, False, True], [True, False, False, True])
    assert figures.accuracy == pytest.approx(2 / 3)
    assert figures.review_share == pytest.approx(0.25)
    assert figures.as_dict()["accepted_correct"] == 2
    assert auto_accept([False], [True]).accuracy is None
    assert "review share 25.0%" in figures.describe()


def test_coverage_curve_and_png(tmp_path: Path) -> None:
    coverage, accuracy = coverage_curve([0.9, 0.5, 0.7], [True, False, True])
    assert coverage.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert accuracy.tolist() == pytest.approx([1.0, 1.0, 2 / 3])
    path = save_coverage_png(
        [0.9, 0.5, 0.7], [True, False, True], tmp_path / "c.png", target=0.97,
        operating=auto_accept([True, False, True], [True, False, True]),
    )  # fmt: skip
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_thresholds_from_meta() -> None:
    assert thresholds_from({"review_threshold": 0.5}) is None
    recorded = {"review": {"thresholds": {"global": 0.8, "per_category": {"a": 0.6}}}}
    assert thresholds_from(recorded) == ReviewThresholds(0.8, {"a": 0.6})


def test_despaced() -> None:
    assert despaced("路灯 坏 了\u3000 小区") == "路灯坏了小区"


# -- train and evaluate with calibration data (the shipped demo data) ----------------------
@pytest.fixture(scope="module")
def calibrated(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("calibrated") / "model"
    review = ReviewConfig(accuracy=0.9, calibration_data=demo_csv, min_category_messages=30)
    train(TrainConfig(data=demo_csv, model_dir=model_dir, review=review), progress=lambda _: None)
    return model_dir


def test_train_records_calibrated_thresholds(calibrated: Path, demo_csv: Path) -> None:
    from wangge.pipeline.artifact import load_model

    model, meta = load_model(calibrated)
    review = meta.metrics["review"]
    assert review["source"]["method"] == "calibration data, cross-fitted"
    assert review["source"]["messages"] == 280
    assert review["expected_review_share"] == review["expected"]["review_share"]
    assert len(review["fold_thresholds"]) == 5
    assert model.review_threshold == review["thresholds"]["global"]
    assert model.review_thresholds == review["thresholds"]["per_category"]
    assert set(review["fallback_categories"]).isdisjoint(model.review_thresholds)
    assert meta.metrics["review_coverage"] == round(1 - review["expected"]["review_share"], 4)


def test_evaluate_on_calibration_file_reports_out_of_fold(
    calibrated: Path, demo_csv: Path, tmp_path: Path
) -> None:
    evaluation = evaluate_file(calibrated, demo_csv, output_dir=tmp_path / "out")
    meta = json.loads((calibrated / "meta.json").read_text(encoding="utf-8"))
    assert evaluation.recorded == meta["metrics"]["review"]["expected"]
    assert "calibration data" in evaluation.note
    text = evaluation.summary()
    assert "cross-fitted out-of-fold (recorded at training)" in text
    assert "not an honest estimate" in text
    assert (tmp_path / "out" / COVERAGE_PNG).read_bytes().startswith(PNG_SIGNATURE)
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["training"]["auto_accept"]["messages"] == 280


def test_evaluate_cli_other_file_reports_auto_accept(
    calibrated: Path, demo_csv: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    lines = demo_csv.read_text(encoding="utf-8").splitlines()
    other.write_text("\n".join(lines[:120]) + "\n", encoding="utf-8")
    curve = tmp_path / "curve.png"
    args = ["evaluate", "--model-dir", str(calibrated), "--data", str(other), "--curve", str(curve)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "auto-accepted" in result.output and "review share" in result.output
    assert "recorded at training" not in result.output
    assert curve.read_bytes().startswith(PNG_SIGNATURE)


def test_train_without_calibration_data_uses_raw_like_holdout(
    demo_csv: Path, tmp_path: Path
) -> None:
    messages: list[str] = []
    review = ReviewConfig(accuracy=0.9, shift_factor=2.0)
    train(
        TrainConfig(data=demo_csv, model_dir=tmp_path / "m", review=review),
        progress=messages.append,
    )
    meta = json.loads((tmp_path / "m" / "meta.json").read_text(encoding="utf-8"))
    recorded = meta["metrics"]["review"]
    assert recorded["source"] == {
        "method": "hold-out, segmentation spaces removed",
        "messages": 42,
    }
    assert recorded["chosen_at_accuracy"] == pytest.approx(0.95)  # errors allowed / 2
    assert recorded["thresholds"]["per_category"] == {}  # global only on the hold-out
    held_out = recorded["expected"]["accuracy"]
    if held_out is not None:
        assert recorded["expected_auto_accept_accuracy"] == pytest.approx(
            round(1 - (1 - held_out) * 2, 4)
        )
    assert "2 times its errors" in recorded["estimated_by"]
    assert any("review thresholds: global" in line for line in messages)


def test_bad_calibration_file_stops_before_training(demo_csv: Path, tmp_path: Path) -> None:
    from wangge.errors import DataError

    unlabelled = tmp_path / "raw.csv"
    unlabelled.write_text("留言主题,留言详情\n路灯坏了,小区路灯坏了\n", encoding="utf-8")
    messages: list[str] = []
    for path in (tmp_path / "missing.csv", unlabelled):
        review = ReviewConfig(calibration_data=path)
        with pytest.raises(DataError):
            train(
                TrainConfig(data=demo_csv, model_dir=tmp_path / "m", review=review),
                progress=messages.append,
            )
    assert not any("fitting" in line for line in messages)
    assert not (tmp_path / "m").exists()


def test_old_format_model_directory_loads_and_evaluates(
    calibrated: Path, demo_csv: Path, tmp_path: Path
) -> None:
    from wangge.pipeline.artifact import load_model, save_model

    model, meta = load_model(calibrated)
    del model.__dict__["review_thresholds"]  # as pickled before per-category thresholds
    model.review_threshold = 0.6
    old_dir = tmp_path / "old"
    save_model(
        model, old_dir, name="category", labels=meta.labels, training_data={}, config={},
        metrics={"review_threshold": 0.6, "review_coverage": 0.9},
    )  # fmt: skip
    loaded, _ = load_model(old_dir)
    assert loaded.review_thresholds is None
    evaluation = evaluate_file(old_dir, demo_csv, curve=tmp_path / "c.png")
    assert evaluation.recorded is None
    predictions = loaded.predict_explained(load_messages(demo_csv).texts)
    flagged = sum(p.needs_review for p in predictions) / len(predictions)
    assert flagged == sum(p.confidence < 0.6 for p in predictions) / len(predictions)
    assert evaluation.auto_accept.review_share == pytest.approx(flagged, abs=0.01)
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)
