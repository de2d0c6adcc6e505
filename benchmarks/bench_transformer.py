"""Linear, transformer and ensemble side by side on the raw dev messages.

Reads a model directory trained with ``wangge train --backend transformer`` on
``train_tokenized.csv`` and reports, on ``dev_raw_labeled.csv``: macro-F1 and accuracy of the
linear part alone, the fine-tuned transformer alone (int8 ONNX), and their mixture as served;
messages per second and peak memory of each (each variant in its own process, scoring the 667
messages from raw text, tokenization included; the median of 3 runs); and how often the int8
graph agrees with the float one. The mixture weight was fitted on a validation split during
training; the sweep of weights printed is a diagnostic, not how the weight is chosen. Last, to
tell how much of the transformer's deficit is its window: a linear model trained and scored on
only the words the transformer reads (the first ``max_length`` sub-words of each text).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, say
from scipy.special import softmax

from wangge.batch.files import load_messages
from wangge.models.classifier import MessageClassifier
from wangge.models.transformer import TRANSFORMER_DIR, TransformerScorer, transformer_text
from wangge.pipeline.artifact import load_model
from wangge.training.evaluate import evaluate_predictions

VARIANTS = ("linear", "transformer", "ensemble")
FP32_FILE = "model.fp32.onnx"
REPEATS = 3


def median_rate(run: Callable[[], np.ndarray], count: int) -> tuple[np.ndarray, float]:
    """``run()``'s result and the median of its messages/s over :data:`REPEATS` runs (runs on
    this shared 2-core machine vary by up to a fifth)."""
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        rates.append(count / (time.perf_counter() - started))
    return result, float(np.median(rates))


def measure(model_dir: Path, data_dir: Path, variant: str) -> dict[str, float]:
    """Score the dev file with one variant: quality, speed and this process's peak memory."""
    model, _ = load_model(model_dir)
    dev = load_messages(data_dir / DEV_FILE, require_label=True)
    assert dev.labels is not None
    if variant != "linear":
        model.transformer_proba_tokens([["热身"]])  # open the ONNX session before timing

    def score() -> np.ndarray:
        tokens = model.tokenize(dev.texts)
        if variant == "linear":
            return np.asarray(model.linear.predict_proba_tokens(tokens))
        if variant == "transformer":
            return np.asarray(model.transformer_proba_tokens(tokens))
        return np.asarray(model.predict_proba_tokens(tokens))

    probabilities, rate = median_rate(score, len(dev.texts))
    report = evaluate_predictions(dev.labels, list(model.classes_[probabilities.argmax(axis=1)]))
    return {
        "macro_f1": report.macro_f1,
        "accuracy": report.accuracy,
        "messages_per_second": rate,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def agreement_and_sweep(model_dir: Path, data_dir: Path) -> None:
    model, _ = load_model(model_dir)
    dev = load_messages(data_dir / DEV_FILE, require_label=True)
    assert dev.labels is not None
    tokens = model.tokenize(dev.texts)
    texts = [transformer_text(t) for t in tokens]
    model.scorer.logits(texts[:8])  # open the ONNX session before timing
    int8, rate = median_rate(lambda: model.scorer.logits(texts), len(texts))
    say(f"int8 transformer graph alone (prepared texts in, logits out): {rate:.0f} messages/s")
    linear = model.linear.predict_proba_tokens(tokens)
    transformer = softmax(int8 / model.temperature, axis=1)
    w = model.transformer_weight
    fp32_path = model_dir / TRANSFORMER_DIR / FP32_FILE
    if fp32_path.is_file():
        fp32 = TransformerScorer(
            model_dir / TRANSFORMER_DIR, max_length=model.max_length, onnx_file=FP32_FILE
        ).logits(texts)
        agree = float((fp32.argmax(1) == int8.argmax(1)).mean())
        say(f"int8 vs float transformer: same category for {agree:.1%} of the dev messages")
        float_mix = (w * softmax(fp32 / model.temperature, axis=1) + (1 - w) * linear).argmax(1)
        int8_mix = (w * transformer + (1 - w) * linear).argmax(1)
        same = float(np.mean(float_mix == int8_mix))
        say(f"int8 vs float ensemble: same category for {same:.1%}")
    else:
        say(f"({fp32_path} not found: no int8/float agreement)")
    sweep = []
    for weight in np.linspace(0, 1, 11):
        mixed = weight * transformer + (1 - weight) * linear
        predicted = list(model.classes_[mixed.argmax(axis=1)])
        sweep.append(f"{weight:.1f}: {evaluate_predictions(dev.labels, predicted).macro_f1:.4f}")
    say(f"dev macro-F1 by transformer weight (fitted weight {model.transformer_weight}): "
        + ", ".join(sweep))  # fmt: skip


def linear_in_window(model_dir: Path, data_dir: Path) -> None:
    """Dev macro-F1 of a linear model that sees only what the transformer sees."""
    model, _ = load_model(model_dir)
    tokenizer = model.scorer.tokenizer  # truncates at the model's max_length

    def window(tokens: list[list[str]]) -> list[list[str]]:
        texts = [transformer_text(t) for t in tokens]
        ends = [max(end for _, end in e.offsets) for e in tokenizer.encode_batch(texts)]
        return [text[:end].split() for text, end in zip(texts, ends, strict=True)]

    train = load_messages(data_dir / TRAIN_FILE, text_columns=["tokens"], label_column="一级标签")
    dev = load_messages(data_dir / DEV_FILE, require_label=True)
    assert train.labels is not None and dev.labels is not None
    linear = MessageClassifier().fit_tokens(window(model.tokenize(train.texts)), train.labels)
    probabilities = linear.predict_proba_tokens(window(model.tokenize(dev.texts)))
    report = evaluate_predictions(dev.labels, list(linear.classes_[probabilities.argmax(axis=1)]))
    say(f"linear model on the first {model.max_length} sub-words only (the transformer's "
        f"window): dev macro-F1 {report.macro_f1:.4f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="a transformer model")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data_dir = data_dir_with(args.data_dir, (DEV_FILE, TRAIN_FILE))
    if data_dir is None:
        return 2
    if args.variant:  # one variant, in this process: print its figures as JSON
        print(json.dumps(measure(args.model_dir, data_dir, args.variant)))  # noqa: T201
        return 0
    meta = json.loads((args.model_dir / "meta.json").read_text(encoding="utf-8"))
    facts = meta["metrics"].get("transformer")
    if facts is None:
        parser.error(f"{args.model_dir} was not trained with --backend transformer")
    say(f"model {meta['version']}: {meta['config']['fine_tune']}")
    say(f"training: {meta['metrics']['train_seconds']:.0f} s, fine-tuning "
        f"{facts['fine_tune_seconds']:.0f} s ({facts['epochs']} epochs), transformer weight "
        f"{facts['weight']}, hold-out macro-F1 {facts['holdout_macro_f1']}, int8 agreement on "
        f"the hold-out {facts['int8_agreement']:.1%}")  # fmt: skip
    say()
    say("| variant | dev macro-F1 | dev accuracy | messages/s | peak memory |")
    say("|---|---:|---:|---:|---:|")
    for variant in VARIANTS:
        command = [sys.executable, __file__, "--model-dir", str(args.model_dir),
                   "--data-dir", str(data_dir), "--variant", variant]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        f = json.loads(output.strip().splitlines()[-1])
        say(f"| {variant} | {f['macro_f1']:.4f} | {f['accuracy']:.4f} | "
            f"{f['messages_per_second']:.0f} | {f['peak_rss_mb']:.0f} MB |")  # fmt: skip
    say()
    agreement_and_sweep(args.model_dir, data_dir)
    linear_in_window(args.model_dir, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
