"""ONNX export and quantisation: a sentence encoder exported from a small random BERT against
its torch outputs, and SmoothQuant before int8 quantisation on a one-product graph built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from wangge.nlp.bert_onnx import OPSET  # noqa: E402
from wangge.nlp.onnx_export import (  # noqa: E402
    export_encoder,
    quantize_encoder,
    quantize_onnx,
    smooth_activations,
)

RNG = np.random.default_rng(0)
WEIGHT = RNG.normal(size=(16, 8)).astype(np.float32)


def activations(rows: int) -> np.ndarray:
    """Inputs like a transformer's: channel 3 runs 50 times larger than the others."""
    x = RNG.normal(size=(rows, 16)).astype(np.float32)
    x[:, 3] *= 50
    return x


def product_graph(path: Path) -> Path:
    """``y = x @ WEIGHT`` as an ONNX file."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="product")],
        "product",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 8])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def test_smoothing_keeps_the_float_result(tmp_path: Path) -> None:
    source = product_graph(tmp_path / "model.onnx")
    calibration = [{"x": activations(64)} for _ in range(3)]
    smoothed = smooth_activations(source, tmp_path / "smoothed.onnx", calibration, alpha=0.8)
    x = activations(32)
    np.testing.assert_allclose(run(smoothed, x), x @ WEIGHT, rtol=1e-4, atol=1e-3)
    graph = onnx.load(str(smoothed)).graph
    assert [node.op_type for node in graph.node] == ["Mul", "MatMul"]
    scaled = numpy_helper.to_array(next(t for t in graph.initializer if t.name == "w"))
    assert scaled[3].std() > 5 * WEIGHT[3].std()  # the outlier channel's range moved here


def test_smoothing_brings_int8_closer_to_the_float_result(tmp_path: Path) -> None:
    source = product_graph(tmp_path / "model.onnx")
    x = activations(256)
    plain = quantize_onnx(source, tmp_path / "plain.onnx")
    calibration = [{"x": activations(64)}]
    smooth = quantize_onnx(source, tmp_path / "smooth.onnx", calibration=calibration)
    error_plain = np.abs(run(plain, x) - x @ WEIGHT).mean()
    error_smooth = np.abs(run(smooth, x) - x @ WEIGHT).mean()
    assert error_smooth < 0.5 * error_plain
    assert not (tmp_path / "smooth.smoothed.onnx").exists()  # the intermediate file is removed


def test_smoothing_rejects_a_bad_alpha_and_no_calibration(tmp_path: Path) -> None:
    source = product_graph(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="alpha"):
        smooth_activations(source, tmp_path / "out.onnx", [{"x": activations(4)}], alpha=1.5)
    with pytest.raises(ValueError, match="calibration batch"):
        smooth_activations(source, tmp_path / "out.onnx", [], alpha=0.5)


def test_exported_encoder_mean_pools_and_normalises_like_the_torch_model(tmp_path: Path) -> None:
    """The exported graph takes batches of any size and length, ignores padding, and gives
    each text the L2-normalised mean of the model's last hidden states over its tokens."""
    torch = pytest.importorskip("torch", reason="torch (the transformer extra) exports")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    model.save_pretrained(tmp_path)

    path = export_encoder(tmp_path)
    assert path == tmp_path / "encoder.onnx"
    assert [(o.domain, o.version) for o in onnx.load(str(path)).opset_import] == [("", OPSET)]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("input_ids", ["batch", "tokens"]),
        ("attention_mask", ["batch", "tokens"]),
    ]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("embedding", ["batch", 32])]

    texts = [[2, 5, 7, 9, 3], [2, 11, 3], list(range(1, 13))]  # 5, 3 and 12 tokens
    ids = np.zeros((len(texts), 12), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, tokens in enumerate(texts):
        ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1
    (embeddings,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    assert embeddings.shape == (3, 32) and embeddings.dtype == np.float32
    for row, tokens in enumerate(texts):  # each text alone, unpadded, through torch
        with torch.inference_mode():
            hidden = model(input_ids=torch.tensor([tokens])).last_hidden_state[0].numpy()
        pooled = hidden.mean(axis=0)
        np.testing.assert_allclose(embeddings[row], pooled / np.linalg.norm(pooled), atol=1e-5)

    quantize_encoder(tmp_path)
    int8 = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (quantised,) = int8.run(None, {"input_ids": ids, "attention_mask": mask})
    assert np.min(np.sum(quantised * embeddings, axis=1)) > 0.99
    assert not (tmp_path / "encoder.fp32.onnx").exists()
