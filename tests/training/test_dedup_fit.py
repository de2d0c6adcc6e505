"""Fitting the dedup pair weights (``wangge dedup fit``) on the tiny fixture of labelled pairs,
and training with the weights it writes."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from typer.testing import CliRunner

from wangge.batch.dedup import messages_in_time_order
from wangge.batch.files import load_messages
from wangge.cli import app
from wangge.errors import DataError
from wangge.models.dedup import DedupWeights, DuplicateDetector
from wangge.pipeline.directory import DEDUP_WEIGHTS_FILE, read_dedup_weights
from wangge.training import dedup_fit
from wangge.training.dedup_fit import THRESHOLDS, fit_mode, prepare_modes, read_pairs
from wangge.training.dedup_replay import replay_matches

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "dedup_pairs"
MESSAGES, PAIRS = FIXTURE / "messages.csv", FIXTURE / "pairs.csv"


class BigramEncoder:
    """Unit vectors of hashed character 2-gram counts: rewordings come out close."""

    dim = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for i in range(len(text) - 1):
                vectors[row, zlib.crc32(text[i : i + 2].encode()) % self.dim] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def probabilities(x: pd.DataFrame, names: list[str], weights: dict[str, float]) -> np.ndarray:
    z = weights["bias"] + sum(weights[name] * x[name].to_numpy() for name in names)
    return 1.0 / (1.0 + np.exp(-z))


def test_fit_on_the_fixture_gives_weights_that_separate_its_pairs() -> None:
    pairs = read_pairs([PAIRS])
    _positions, messages = messages_in_time_order(load_messages(MESSAGES))
    modes = prepare_modes(messages, pairs, BigramEncoder())
    assert [mode.name for mode in modes] == ["lexical", "encoder"]
    same = pairs["same_case"].to_numpy() == 1
    for mode in modes:
        fitted = fit_mode(mode, pairs, folds=3)
        assert fitted.weights.threshold in THRESHOLDS
        assert sorted(fitted.cross_validated) == sorted(THRESHOLDS)
        weights = vars(fitted.weights.weights)
        assert all(weights[name] == round(weights[name], 3) for name in weights)
        p = probabilities(mode.x, mode.names, weights)
        assert p[same].mean() > p[~same].mean() + 0.2, mode.name
    assert modes[0].x["cosine"].eq(0).all() and modes[1].x["cosine"].gt(0).any()


def test_wangge_dedup_fit_writes_weights_that_train_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_csv: Path
) -> None:
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "encoder.onnx").write_bytes(b"a graph")
    monkeypatch.setattr(dedup_fit, "load_encoder", lambda directory: BigramEncoder())
    output = tmp_path / "weights.json"
    runner = CliRunner()
    result = runner.invoke(app, ["dedup", "fit", "--pairs", str(PAIRS), "--messages",
                                 str(MESSAGES), "--out", str(output), "--encoder", str(encoder),
                                 "--folds", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "encoder: threshold" in result.output and "lexical: threshold" in result.output
    written = json.loads(output.read_text(encoding="utf-8"))
    weights = DedupWeights.from_dict(written)
    fitted = written["fitted"]
    assert fitted["pairs"] == [{"file": "pairs.csv", "rows": 40,
                                "sha256": dedup_fit.file_sha256(PAIRS)}]  # fmt: skip
    assert fitted["messages"]["rows"] == 24 and fitted["encoder"]["id"] == "encoder"
    assert "3-fold" in fitted["method"]

    model_dir = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--data", str(demo_csv), "--model-dir",
                                  str(model_dir), "--dedup-weights", str(output), "--encoder",
                                  str(encoder)])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    loaded = read_dedup_weights(model_dir / DEDUP_WEIGHTS_FILE)
    assert loaded == weights
    for mode in ("encoder", "lexical"):
        fitted_weights = written[mode]["weights"]
        assert set(dedup_fit.FEATURES[mode]) <= set(fitted_weights)
        assert fitted_weights["lexical_cosine"] > 0
        # Features not fitted (issue 18's comparison found no gain) weigh nothing.
        assert fitted_weights["broad_places"] == fitted_weights["log_days"] == 0.0
    detector = DuplicateDetector(
        BigramEncoder(), weights=loaded.encoder.weights, threshold=loaded.encoder.threshold
    )
    assert (detector.weights, detector.threshold) == (
        loaded.encoder.weights,
        loaded.encoder.threshold,
    )
    assert "fitted with the encoder" not in trained.output  # the same encoder: no note


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id_a,id_b\n1,2\n", "no column same_case"),
        ("id_a,id_b,same_case\n1,2,1\n3,4,yes\n", "same_case must be 1 or 0"),
        ("id_a,id_b,same_case\n1,2,1\n3,4,1\n", "both same-case (1) and different-case (0)"),
    ],
)
def test_bad_pairs_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DataError) as error:
        read_pairs([write(tmp_path / "pairs.csv", text)])
    assert expected in str(error.value)


def test_pairs_naming_unknown_messages_are_refused(tmp_path: Path) -> None:
    pairs = read_pairs(
        [write(tmp_path / "pairs.csv", "id_a,id_b,same_case\n101,999,1\n101,102,0\n")]
    )
    _positions, messages = messages_in_time_order(load_messages(MESSAGES))
    with pytest.raises(DataError, match="1 message ids of the pairs are not in the messages"):
        prepare_modes(messages, pairs, None)


def test_too_few_pairs_for_the_folds_are_refused() -> None:
    pairs = read_pairs([PAIRS])
    _positions, messages = messages_in_time_order(load_messages(MESSAGES))
    (lexical,) = prepare_modes(messages, pairs, None)
    with pytest.raises(DataError, match="needs at least 20 pairs of each label"):
        fit_mode(lexical, pairs, folds=20)


def test_replayed_case_builds_are_the_detectors() -> None:
    pairs = read_pairs([PAIRS])
    _positions, messages = messages_in_time_order(load_messages(MESSAGES))
    for mode in prepare_modes(messages, pairs, BigramEncoder()):
        weights = dedup_fit.fit_weights(mode, np.arange(len(pairs)), pairs["same_case"] == 1)
        replay = dedup_fit.recorded(mode)
        assert len(replay.candidates) == len(messages) and len(replay.x) > 0
        for threshold in (0.3, THRESHOLDS[0], 0.9):
            assert replay_matches(mode.encoder, mode.features, replay, weights, threshold)
            replayed = dedup_fit.together_replayed(mode, pairs, weights, threshold)
            built = dedup_fit.together(mode, pairs, weights, threshold)
            assert (replayed == built).all()
