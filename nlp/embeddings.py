"""Batched sentence embeddings from an ONNX encoder, and the file names of a model directory.

:class:`SentenceEncoder` runs ``<model_dir>/encoder.onnx`` (written by
:mod:`wangge.nlp.bert_onnx` for multilingual-e5-small, or by :mod:`wangge.nlp.onnx_export` for
other Hugging Face encoders) on ONNX Runtime with the Rust ``tokenizers``: no torch at run
time. :class:`OnnxTextModel` is what it shares with the classifier graphs. On the 2-core
machine the int8 multilingual-e5-small embedded the 4,326 hot-issue titles in 9.3 s of CPU on
one thread (fp32: 30.8 s); ONNX Runtime ran an fp32 graph in 34 s of wall time where torch
took 47 s, with the same vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ENCODER_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
# Texts are cut to this many characters per token of ``max_length`` before they are tokenised:
# far more than ``max_length`` tokens ever cover, so the tokens kept are the same, while a
# 20,000-character title tokenised whole took 35 ms to keep its first 32 tokens.
CHARS_PER_TOKEN = 16


class OnnxTextModel:
    """A Hugging Face model exported to ONNX (``input_ids`` and ``attention_mask`` in, one
    output) with its ``tokenizer.json`` and ``config.json``, in ``model_dir`` (kept as
    ``directory``).

    ``threads`` is ONNX Runtime's intra-op thread count (default: one per physical core).
    """

    def __init__(
        self,
        model_dir: str | Path,
        onnx_file: str,
        *,
        max_length: int,
        batch_size: int,
        threads: int | None = None,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        self.directory = model_dir
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        self.pad_id = int(self.config.get("pad_token_id") or 0)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(model_dir / onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.width = int(self.session.get_outputs()[0].shape[-1])

    def run(self, texts: Sequence[str]) -> np.ndarray:
        """The model's output, one float32 row per text, in the input order."""
        out = np.empty((len(texts), self.width), dtype=np.float32)
        for rows, feed in self.batches(texts):
            (values,) = self.session.run(None, feed)
            out[rows] = values
        return out

    def batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """The graph's inputs for ``texts``, batch by batch, with the rows each batch holds.
        Texts are sorted by length before batching so that each batch pads little."""
        limit = self.max_length * CHARS_PER_TOKEN
        cut = [text[:limit] for text in texts]
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(cut)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            longest = len(ids[batch[0]])
            input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, index in enumerate(batch):
                input_ids[row, : len(ids[index])] = ids[index]
                mask[row, : len(ids[index])] = 1
            yield batch, {"input_ids": input_ids, "attention_mask": mask}


class SentenceEncoder(OnnxTextModel):
    """Mean-pooled, L2-normalised sentence vectors from ``<model_dir>/encoder.onnx``.

    ``prefix`` is prepended to every text (e5 models expect ``"query: "`` or ``"passage: "``;
    use ``""`` for other models).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_length: int = 64,
        batch_size: int = 64,
        prefix: str = "query: ",
        threads: int | None = None,
    ) -> None:
        path = Path(model_dir) / ENCODER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: build e5's with `wangge models fetch-e5`, or export "
                f"another Hugging Face encoder with `wangge models export-encoder {model_dir}`"
            )
        super().__init__(
            model_dir, ENCODER_FILE, max_length=max_length, batch_size=batch_size, threads=threads
        )
        self.prefix = prefix
        self.dim = self.width

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dim)`` with unit-norm rows."""
        return self.run([self.prefix + t for t in texts])
