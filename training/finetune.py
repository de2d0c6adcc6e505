"""Fine-tune a pretrained encoder (a local Hugging Face directory) to classify messages.

The texts it sees are the classifier's own preparation, the content tokens of
:class:`wangge.nlp.segment.Tokenizer` joined by spaces
(:func:`wangge.models.transformer.transformer_text`): raw and
pre-segmented messages meet there, exactly as for the linear model, and serving prepares text
with the same function.

Practical on 2 CPU cores because (all measured, see docs/benchmarks.md): sequences are cut at
``max_length`` sub-words, the embeddings and the lower ``freeze_layers`` encoder layers stay
frozen, batches group texts of similar length, and training stops early when macro-F1 on the
validation split stops improving. A GPU is used automatically when there is one (transformers'
``Trainer``). Runs are seeded; checkpoints are written each evaluation and an interrupted run
resumes from the last one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from wangge.errors import TrainingError
from wangge.models.classifier import MessageClassifier, fit_temperature
from wangge.models.transformer import (
    ONNX_FILE,
    TRANSFORMER_DIR,
    EnsembleClassifier,
    TransformerScorer,
    transformer_text,
)
from wangge.nlp.e5 import CHECKPOINT_FILE
from wangge.nlp.embeddings import CONFIG_FILE, TOKENIZER_FILE
from wangge.training.config import FineTuneConfig

logger = logging.getLogger(__name__)

HF_DIR = "hf"  # the fine-tuned checkpoint, before export, inside the work directory
CALIBRATION_TEXTS = 256  # training texts whose activations set the int8 smoothing scales
# SmoothQuant's migration strengths tried when quantising; the one whose int8 predictions
# agree most with the float model on the validation rows is kept. For a 6-layer model on dev,
# 0.7-0.9 gave 99.3-99.6 % agreement, 0.5 97.3 % and 1.0 98.7 % (nlp/onnx_export.py).
SMOOTHING_ALPHAS = (0.7, 0.8, 0.9)


@dataclass
class FineTuneResult:
    checkpoint: Path  # the best checkpoint, as a Hugging Face directory
    best_macro_f1: float
    epochs_run: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def require_transformer_extra() -> None:
    """Fail with the command to run when the packages fine-tuning needs are missing (they are
    the ``transformer`` extra, not part of the default install)."""
    from importlib.util import find_spec

    missing = [name for name in ("torch", "transformers", "accelerate") if find_spec(name) is None]
    if missing:
        raise TrainingError(
            f"the transformer backend needs {', '.join(missing)}: install the transformer "
            "extra (bash scripts/setup.sh dev,transformer)"
        )


# The weight files of a Hugging Face checkpoint (single file or sharded).
CHECKPOINT_FILES = (
    CHECKPOINT_FILE,
    f"{CHECKPOINT_FILE}.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def require_checkpoint(base: Path) -> None:
    """Fail with the command to run unless ``base`` is a Hugging Face checkpoint directory
    (`wangge models fetch-e5` writes only the ONNX encoder unless ``--checkpoint``)."""
    if not (base / CONFIG_FILE).is_file() or not any(
        (base / name).is_file() for name in CHECKPOINT_FILES
    ):
        raise TrainingError(
            f"{base} holds no Hugging Face checkpoint ({CONFIG_FILE} and {CHECKPOINT_FILE}): "
            "write multilingual-e5-small's with `wangge models fetch-e5 --checkpoint` (into "
            "$WANGGE_HOME/e5-small; needs the transformer extra) or pass --base-model"
        )


def class_weights(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """``n / (k · count)`` per class, as scikit-learn's ``"balanced"``."""
    counts = Counter(labels)
    return np.asarray([len(labels) / (len(classes) * counts[c]) for c in classes], np.float32)


def fine_tune(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    val_texts: Sequence[str],
    val_labels: Sequence[str],
    classes: Sequence[str],
    config: FineTuneConfig,
    work_dir: str | Path,
    *,
    progress: Callable[[str], None] = logger.info,
) -> FineTuneResult:
    """Fine-tune ``config.base_model`` on prepared texts; the best checkpoint (by validation
    macro-F1) ends in ``work_dir/hf``. Checkpoints go to ``work_dir/checkpoints``; if one is
    there from an interrupted run with the same data, training resumes from it."""
    import time

    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    started = time.perf_counter()
    work_dir = Path(work_dir)
    set_seed(config.seed)
    label_ids = {label: index for index, label in enumerate(classes)}
    tokenizer, model = _classification_model(config, classes, progress)

    def dataset(texts: Sequence[str], labels: Sequence[str]) -> Dataset:
        encoded = tokenizer(list(texts), truncation=True, max_length=config.max_length)
        return Dataset.from_dict(dict(encoded) | {"labels": [label_ids[y] for y in labels]})

    train_set, val_set = dataset(train_texts, train_labels), dataset(val_texts, val_labels)
    weights = (
        torch.tensor(class_weights(train_labels, classes))
        if config.class_weight == "balanced"
        else None
    )

    def weighted_cross_entropy(logits: Any, labels: Any) -> Any:
        weight = None if weights is None else weights.to(labels.device)
        return torch.nn.functional.cross_entropy(logits, labels, weight=weight)

    checkpoints = work_dir / "checkpoints"
    trainer = trainer_with_loss(weighted_cross_entropy)(
        model=model,
        args=_training_arguments(config, checkpoints, len(train_set)),
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_macro_f1,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=config.patience)],
    )
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        progress(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=last)
    checkpoint = work_dir / HF_DIR
    trainer.save_model(str(checkpoint))
    kept = ("epoch", "step", "eval_loss", "eval_macro_f1")  # not timings: runs compare equal
    history = [
        {key: float(entry[key]) for key in kept if key in entry}
        for entry in trainer.state.log_history
        if "eval_macro_f1" in entry
    ]
    return FineTuneResult(
        checkpoint=checkpoint,
        best_macro_f1=max((h["eval_macro_f1"] for h in history), default=float("nan")),
        epochs_run=float(trainer.state.epoch or 0.0),
        seconds=time.perf_counter() - started,
        history=history,
    )


def _classification_model(
    config: FineTuneConfig, classes: Sequence[str], progress: Callable[[str], None]
) -> tuple[Any, Any]:
    """The tokenizer and the sequence classifier of ``config``'s base model, cut to
    ``config.layers`` layers with the lower ``config.freeze_layers`` frozen."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = config.base()
    require_checkpoint(base)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base),
        local_files_only=True,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={label: index for index, label in enumerate(classes)},
    )
    if config.layers:
        truncate_layers(model, config.layers)
    frozen = freeze_lower(model, config.freeze_layers)
    progress(
        f"fine-tuning {base.name} ({len(model.base_model.encoder.layer)} layers): {frozen} "
        "lower layers and the embeddings frozen"
    )
    return tokenizer, model


def _training_arguments(config: FineTuneConfig, checkpoints: Path, rows: int) -> Any:
    """transformers' arguments: evaluate (and checkpoint) ``evaluations_per_epoch`` times an
    epoch, keep the best model by validation macro-F1."""
    from transformers import TrainingArguments

    steps_per_epoch = math.ceil(rows / config.batch_size)
    eval_steps = max(1, steps_per_epoch // max(1, config.evaluations_per_epoch))
    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        learning_rate=config.learning_rate,
        warmup_steps=max(1, steps_per_epoch // 10),
        weight_decay=0.01,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        logging_steps=max(1, eval_steps // 4),
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        dataloader_num_workers=0,
    )


def _macro_f1(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = np.asarray(prediction.predictions).argmax(axis=1)
    return {"macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro"))}


def truncate_layers(model: Any, layers: int) -> None:
    """Keep the embeddings and the lower ``layers`` encoder layers (the upper ones are dropped
    from the model and its config): half the layers, half the time per message."""
    encoder = model.base_model.encoder
    if not 1 <= layers <= len(encoder.layer):
        raise TrainingError(f"layers must be between 1 and {len(encoder.layer)}, not {layers}")
    encoder.layer = encoder.layer[:layers]
    model.config.num_hidden_layers = layers


def freeze_lower(model: Any, layers: int) -> int:
    """Freeze the embeddings and the lower ``layers`` encoder layers; returns how many."""
    base = model.base_model
    for parameter in base.embeddings.parameters():
        parameter.requires_grad = False
    encoder_layers = base.encoder.layer
    count = min(layers, len(encoder_layers))
    for layer in encoder_layers[:count]:
        for parameter in layer.parameters():
            parameter.requires_grad = False
    return count


def trainer_with_loss(loss: Callable[[Any, Any], Any]) -> type:
    """A transformers ``Trainer`` class whose loss is ``loss(logits, labels)`` (class-weighted
    cross-entropy here, the cut-vocabulary one of :mod:`wangge.training.adapt`)."""
    from transformers import Trainer

    class LossTrainer(Trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            value = loss(outputs.logits, labels)
            return (value, outputs) if return_outputs else value

    return LossTrainer


def add_transformer(
    linear: MessageClassifier,
    tokens: Sequence[Sequence[str]],
    labels: np.ndarray,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    linear_test: np.ndarray,
    config: FineTuneConfig,
    model_dir: Path,
    progress: Callable[[str], None],
) -> tuple[EnsembleClassifier, np.ndarray, dict[str, Any], tuple[str, ...]]:
    """Fine-tune on the ``fit`` rows (stopping on ``val``), export to int8 ONNX in
    ``model_dir/transformer`` (:func:`_export_int8`), and mix with ``linear`` (fitted on the
    same ``fit`` rows; ``linear_test`` are its hold-out probabilities): temperature and
    weight fitted on ``val``. Returns the ensemble, its hold-out probabilities, metrics
    (hold-out macro-F1 of each part and of the mixture, int8 agreement …) and the files it
    reads."""
    import shutil

    from sklearn.metrics import f1_score

    fit_idx, val_idx, test_idx = splits
    classes = [str(c) for c in linear.classes_]
    texts = [transformer_text(t) for t in tokens]
    work_dir = model_dir / "transformer-work"
    result = fine_tune(
        [texts[i] for i in fit_idx], list(labels[fit_idx]), [texts[i] for i in val_idx],
        list(labels[val_idx]), classes, config, work_dir, progress=progress,
    )  # fmt: skip
    progress(f"fine-tuned in {result.seconds:.0f}s ({result.epochs_run:.2f} epochs), best "
             f"validation macro-F1 {result.best_macro_f1:.4f}; exporting to ONNX")  # fmt: skip
    exported = _export_int8(result.checkpoint, texts, splits, config, model_dir, progress)
    gold_val = np.searchsorted(linear.classes_, labels[val_idx])
    temperature = fit_temperature(exported.val_logits, gold_val)
    linear_val = linear.predict_proba_tokens([tokens[i] for i in val_idx])
    weight = _mixture_weight(
        softmax(exported.val_logits / temperature, axis=1), linear_val, gold_val
    )
    transformer_test = softmax(exported.test_logits / temperature, axis=1)
    mixed = weight * transformer_test + (1 - weight) * linear_test

    def macro_f1(probabilities: np.ndarray) -> float:
        predicted = linear.classes_[probabilities.argmax(axis=1)]
        return round(float(f1_score(labels[test_idx], predicted, average="macro")), 4)

    facts = {
        "holdout_macro_f1": {
            "linear": macro_f1(linear_test),
            "transformer": macro_f1(transformer_test),
            "ensemble": macro_f1(mixed),
        },  # fmt: skip
        "weight": weight,
        "temperature": round(temperature, 4),
        "int8_agreement": round(exported.test_agreement, 4),
        "smoothing_alpha": exported.alpha,
        "int8_validation_agreement": exported.val_agreements,
        "validation_macro_f1": round(result.best_macro_f1, 4),
        "epochs": round(result.epochs_run, 2),
        "fine_tune_seconds": round(result.seconds, 1),
        "history": result.history,
    }
    progress(f"hold-out macro-F1: {facts['holdout_macro_f1']}; weight of the transformer "
             f"{weight:.2f}")  # fmt: skip
    shutil.rmtree(work_dir)  # checkpoints only matter to resume an interrupted run
    ensemble = EnsembleClassifier(
        linear, transformer_weight=weight, temperature=temperature, max_length=config.max_length
    )
    ensemble.attach(model_dir)
    files = tuple(f"{TRANSFORMER_DIR}/{name}" for name in (ONNX_FILE, TOKENIZER_FILE, CONFIG_FILE))
    return ensemble, mixed, {"transformer": facts}, files


@dataclass
class _Int8Export:
    alpha: float  # the smoothing alpha kept
    val_agreements: dict[str, float]  # of each alpha tried, with the float graph
    val_logits: np.ndarray
    test_logits: np.ndarray
    test_agreement: float


def _export_int8(
    checkpoint: Path,
    texts: list[str],
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: FineTuneConfig,
    model_dir: Path,
    progress: Callable[[str], None],
) -> _Int8Export:
    """Export ``checkpoint`` to ONNX and quantise it into ``model_dir/transformer``
    (smoothed; the alpha whose int8 predictions agree most with the float graph on ``val``
    is kept; the float graph is kept as ``model.fp32.onnx``, which serving does not read),
    and check the int8 graph against the float one on the hold-out (``test``)."""
    import shutil

    from wangge.nlp.onnx_export import export_classifier

    fit_idx, val_idx, test_idx = splits
    out = model_dir / TRANSFORMER_DIR
    out.mkdir(parents=True, exist_ok=True)
    fp32_path = out / "model.fp32.onnx"
    export_classifier(checkpoint, fp32_path)
    for name in (TOKENIZER_FILE, CONFIG_FILE):
        shutil.copyfile(checkpoint / name, out / name)
    fp32 = TransformerScorer(out, max_length=config.max_length, onnx_file=fp32_path.name)
    sample = np.random.default_rng(config.seed).choice(
        fit_idx, size=min(CALIBRATION_TEXTS, len(fit_idx)), replace=False
    )
    calibration = [feed for _, feed in fp32.batches([texts[i] for i in sample])]
    val_texts, test_texts = [texts[i] for i in val_idx], [texts[i] for i in test_idx]
    val_float = fp32.logits(val_texts).argmax(axis=1)
    test_float = fp32.logits(test_texts).argmax(axis=1)
    del fp32  # the float graph stays beside the int8 one, for agreement checks on other data
    alpha, val_agreements, val_logits = _quantize_most_faithful(
        fp32_path, out / ONNX_FILE, calibration, val_texts, val_float, config.max_length, progress
    )
    test_logits = TransformerScorer(out, max_length=config.max_length).logits(test_texts)
    agreement = float((test_logits.argmax(axis=1) == test_float).mean())
    progress(f"int8 and float predictions agree on {agreement:.1%} of the hold-out")
    return _Int8Export(alpha, val_agreements, val_logits, test_logits, agreement)


def _quantize_most_faithful(
    fp32_path: Path,
    target: Path,
    calibration: list[dict[str, np.ndarray]],
    texts: list[str],
    float_predictions: np.ndarray,
    max_length: int,
    progress: Callable[[str], None],
) -> tuple[float, dict[str, float], np.ndarray]:
    """Quantise ``fp32_path`` into ``target`` with each of :data:`SMOOTHING_ALPHAS` and keep
    the graph whose predictions on ``texts`` agree most with ``float_predictions`` (the
    float graph's); returns its alpha, the agreement of each and its logits of ``texts``."""
    from wangge.nlp.onnx_export import quantize_onnx

    candidate = target.with_suffix(".candidate.onnx")
    agreements: dict[str, float] = {}
    best, chosen, chosen_logits = -1.0, SMOOTHING_ALPHAS[0], np.empty(0)
    for alpha in SMOOTHING_ALPHAS:
        quantize_onnx(fp32_path, candidate, calibration=calibration, alpha=alpha, embeddings=True)
        scorer = TransformerScorer(
            candidate.parent, max_length=max_length, onnx_file=candidate.name
        )
        logits = scorer.logits(texts)
        agreement = float((logits.argmax(axis=1) == float_predictions).mean())
        del scorer
        agreements[str(alpha)] = round(agreement, 4)
        progress(f"int8 with smoothing alpha {alpha}: agrees on {agreement:.1%} of validation")
        if agreement > best:
            best, chosen, chosen_logits = agreement, alpha, logits
            candidate.replace(target)
    candidate.unlink(missing_ok=True)
    return chosen, agreements, chosen_logits


def _mixture_weight(transformer: np.ndarray, linear: np.ndarray, gold: np.ndarray) -> float:
    """The weight of the transformer (0, 0.05 … 1) whose mixture has the least log-loss."""
    rows = np.arange(len(gold))

    def log_loss(weight: float) -> float:
        mixed = weight * transformer + (1 - weight) * linear
        return float(-np.log(np.clip(mixed[rows, gold], 1e-12, None)).mean())

    return min((round(w, 2) for w in np.linspace(0, 1, 21)), key=log_loss)
