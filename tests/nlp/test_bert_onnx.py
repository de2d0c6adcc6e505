"""wangge.nlp.bert_onnx: the BERT sentence-encoder graph written from numpy weights, against a
plain numpy forward pass (and transformers' BertModel when torch is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

onnx = pytest.importorskip("onnx", reason="onnx (the e5 extra) writes the graph")

import onnxruntime  # noqa: E402

from wangge.nlp.bert_onnx import OPSET, bert_encoder_graph  # noqa: E402
from wangge.nlp.onnx_export import quantize_onnx  # noqa: E402

HIDDEN, LAYERS, HEADS, FFN, VOCAB, POSITIONS, EPS = 32, 2, 4, 64, 20, 16, 1e-12


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """A random BERT under transformers' ``BertModel`` state-dict names."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, base: float = 0.0, scale: float = 0.2) -> np.ndarray:
        return (base + scale * rng.standard_normal(shape)).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": normal(VOCAB, HIDDEN, scale=1.0),
        "embeddings.position_embeddings.weight": normal(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
        "embeddings.LayerNorm.weight": normal(HIDDEN, base=1.0),
        "embeddings.LayerNorm.bias": normal(HIDDEN),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name, rows, cols in (
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", FFN, HIDDEN),
            ("output.dense", HIDDEN, FFN),
        ):
            w[f"{p}.{name}.weight"] = normal(rows, cols)
            w[f"{p}.{name}.bias"] = normal(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{norm}.weight"] = normal(HIDDEN, base=1.0)
            w[f"{p}.{norm}.bias"] = normal(HIDDEN)
    return w


def reference(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BERT on one unpadded sequence in float64 numpy, mean-pooled and L2-normalised."""
    w = {name: value.astype(np.float64) for name, value in weights.items()}

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + EPS)
        return x * w[f"{name}.weight"] + w[f"{name}.bias"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    n, size = len(ids), HIDDEN // HEADS
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:n]
    x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q, k, v = (
            linear(x, f"{p}.attention.self.{name}").reshape(n, HEADS, size)
            for name in ("query", "key", "value")
        )
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(size)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = np.einsum("hts,shd->thd", probs, v).reshape(n, HIDDEN)
        x = norm(
            x + linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
        )
        mid = linear(x, f"{p}.intermediate.dense")
        mid = 0.5 * mid * (1 + erf(mid / np.sqrt(2)))
        x = norm(x + linear(mid, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


SEQUENCES = [[0, 5, 9, 13, 17, 4, 2], [0, 11, 3, 2], [0, 2], [0, 19, 18, 7, 6, 2]]


def padded(sequences: list[list[int]], pad: int = 1) -> dict[str, np.ndarray]:
    """One batch: ids padded with ``pad`` at the end, and the attention mask."""
    longest = max(map(len, sequences))
    ids = np.full((len(sequences), longest), pad, np.int64)
    mask = np.zeros_like(ids)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def run(model: object, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(),  # type: ignore[attr-defined]
        providers=["CPUExecutionProvider"],
    )
    (embedding,) = session.run(["embedding"], feed)
    return np.asarray(embedding)


def test_graph_equals_a_numpy_bert_on_a_padded_batch() -> None:
    weights = random_weights()
    embedding = run(bert_encoder_graph(weights, heads=HEADS, eps=EPS), padded(SEQUENCES))
    assert embedding.shape == (len(SEQUENCES), HIDDEN) and embedding.dtype == np.float32
    expected = np.stack([reference(weights, ids) for ids in SEQUENCES])
    np.testing.assert_allclose(embedding, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-6)


def test_graph_is_valid_standard_opset_17() -> None:
    model = bert_encoder_graph(random_weights(), heads=HEADS, eps=EPS)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["embedding"]
    ops = {node.op_type for node in model.graph.node}
    assert {"LayerNormalization", "Erf", "Softmax", "MatMul"} <= ops


def test_block_quantised_word_embeddings_are_the_dequantised_table() -> None:
    weights = random_weights()
    rng = np.random.default_rng(1)
    values = rng.integers(-8, 8, size=(VOCAB, HIDDEN)).astype(np.int8)
    scales = rng.uniform(0.01, 0.1, size=(VOCAB, HIDDEN // 8)).astype(np.float16)
    table = (values.reshape(VOCAB, -1, 8) * scales.astype(np.float32)[:, :, None]).reshape(
        VOCAB, HIDDEN
    )
    weights["embeddings.word_embeddings.weight"] = table
    blocks = bert_encoder_graph(weights, heads=HEADS, eps=EPS, word_blocks=(values, scales))
    names = {tensor.name for tensor in blocks.graph.initializer}
    assert "embeddings.word_embeddings.weight" not in names  # only the int8 values and scales
    expected = run(bert_encoder_graph(weights, heads=HEADS, eps=EPS), padded(SEQUENCES))
    np.testing.assert_allclose(run(blocks, padded(SEQUENCES)), expected, atol=1e-6)


def test_heads_must_divide_the_hidden_size() -> None:
    with pytest.raises(ValueError, match="not a multiple of 5 heads"):
        bert_encoder_graph(random_weights(), heads=5, eps=EPS)


def test_int8_quantisation_needs_no_torch_and_stays_close(tmp_path: Path) -> None:
    path = tmp_path / "encoder.onnx"
    model = bert_encoder_graph(random_weights(), heads=HEADS, eps=EPS)
    onnx.save(model, str(path))
    expected = run(model, padded(SEQUENCES))
    quantize_onnx(path)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MatMulInteger" in ops and not (tmp_path / "encoder.fp32.onnx").exists()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (quantised,) = session.run(["embedding"], padded(SEQUENCES))
    assert np.min(np.sum(quantised * expected, axis=1)) > 0.98


def test_graph_equals_transformers_bert_model() -> None:
    torch = pytest.importorskip("torch", reason="torch (the transformer extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    weights = random_weights()
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=POSITIONS, layer_norm_eps=EPS,
    )  # fmt: skip
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict(
        {name: torch.from_numpy(value) for name, value in weights.items()}, strict=False
    )
    assert not unexpected and all("position_ids" in name for name in missing)
    feed = padded(SEQUENCES)
    ids, mask = torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights_3d = mask.unsqueeze(-1).float()
    pooled = (hidden * weights_3d).sum(1) / weights_3d.sum(1)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    np.testing.assert_allclose(run(bert_encoder_graph(weights, heads=HEADS, eps=EPS), feed),
                               expected, atol=1e-5)  # fmt: skip
