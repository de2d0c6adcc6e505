"""Tests for wangge.nlp.embeddings.SentenceEncoder on a tiny random BERT saved to tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from wangge.nlp.embeddings import CHARS_PER_TOKEN, SentenceEncoder
from wangge.nlp.onnx_export import quantize_encoder

CHARS = "路灯坏了小区物业乱收费工地夜间施工噪音扰民垃圾没人清理停车难公交车不按站点"
TEXTS = [
    "路灯坏了",
    "小区物业乱收费，停车难",
    "工地",
    "夜间施工噪音扰民，垃圾没人清理，公交车不按站点停车",
    "路灯坏了",
    "物业",
]


@pytest.fixture(scope="module")
def model_dir(tiny_bert_dir: Path) -> Path:
    return tiny_bert_dir


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> SentenceEncoder:
    return SentenceEncoder(model_dir, prefix="", batch_size=4)


def test_shape_dtype_and_unit_norm(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert encoder.dim == 32
    assert vectors.shape == (len(TEXTS), 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert encoder.encode([]).shape == (0, 32)


def test_order_is_restored_after_length_sorting(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    one_by_one = np.vstack([encoder.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_deterministic_and_identical_texts_identical(encoder: SentenceEncoder) -> None:
    first, second = encoder.encode(TEXTS), encoder.encode(TEXTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[0], first[4], atol=1e-6)  # both "路灯坏了"


def test_truncation_to_max_length(model_dir: Path) -> None:
    short = SentenceEncoder(model_dir, prefix="", max_length=4)
    vectors = short.encode(["路灯坏了小区", "路灯坏了物业"])
    # [CLS] 路 灯 [SEP]: both texts are cut to the same two characters.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_prefix_is_prepended(model_dir: Path, encoder: SentenceEncoder) -> None:
    prefixed = SentenceEncoder(model_dir, prefix="小区")
    np.testing.assert_allclose(prefixed.encode(["物业"]), encoder.encode(["小区物业"]), atol=1e-6)


def test_int8_quantised_encoder_stays_close_to_fp32(
    model_dir: Path, encoder: SentenceEncoder, tmp_path: Path
) -> None:
    quantised_dir = tmp_path / "int8"
    shutil.copytree(model_dir, quantised_dir)
    quantize_encoder(quantised_dir)
    assert (quantised_dir / "encoder.onnx").stat().st_size < (
        model_dir / "encoder.onnx"
    ).stat().st_size
    quantised = SentenceEncoder(quantised_dir, prefix="", batch_size=4).encode(TEXTS)
    exact = encoder.encode(TEXTS)
    assert not np.array_equal(quantised, exact)
    assert np.sum(quantised * exact, axis=1).min() > 0.95


def test_missing_onnx_file_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="wangge models export-encoder"):
        SentenceEncoder(tmp_path)


def test_a_long_text_is_cut_before_it_is_tokenised(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = SentenceEncoder(model_dir, prefix="", max_length=4)
    long = "路灯坏了小区" * 4000
    seen: list[int] = []
    encode_batch = short.tokenizer.encode_batch

    def recorded(texts: list[str]) -> list:
        seen.extend(len(text) for text in texts)
        return encode_batch(texts)

    monkeypatch.setattr(short, "tokenizer", _Wrapped(short.tokenizer, recorded))
    vectors = short.encode([long, "路灯坏了"])
    assert seen == [4 * CHARS_PER_TOKEN, 4]
    np.testing.assert_allclose(vectors[0], short.encode(["路灯"])[0], atol=1e-6)


class _Wrapped:
    """A tokenizer whose ``encode_batch`` is replaced."""

    def __init__(self, tokenizer: object, encode_batch: object) -> None:
        self._tokenizer, self.encode_batch = tokenizer, encode_batch

    def __getattr__(self, name: str) -> object:
        return getattr(self._tokenizer, name)
