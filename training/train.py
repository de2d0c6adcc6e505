"""The category training pipeline: load, split, fit, evaluate, choose the review threshold, save.

``train(TrainConfig(...))`` is what ``wangge train`` runs (the configuration is
:mod:`wangge.training.config`); it is a plain function so notebooks and benchmarks can call it
too. The model is evaluated on a stratified hold-out split, then (by
default) refitted on all rows so that the saved model has seen every example; the report and
the review threshold come from the hold-out, which the refitted model is not tested on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from wangge.batch.files import LoadedMessages, load_messages
from wangge.batch.messages import file_messages
from wangge.errors import TrainingError
from wangge.home import default_encoder_dir
from wangge.models.classifier import MessageClassifier
from wangge.models.dedup import DedupWeights, ModeWeights
from wangge.nlp.embeddings import ENCODER_FILE
from wangge.nlp.segment import is_presegmented
from wangge.pipeline.artifact import (
    META_FILE,
    DedupWeightsRecord,
    EncoderRecord,
    ModelMeta,
    PipelineRecord,
    department_model_dir,
    file_sha256,
    save_model,
)
from wangge.pipeline.directory import (
    DEDUP_WEIGHTS_FILE,
    dedup_weights_json,
    district_record,
    encoder_record,
    shipped_weights_path,
)
from wangge.pipeline.store import CURRENT_FILE, HISTORY_FILE, versions
from wangge.training.calibration import (
    ReviewThresholds,
    ThresholdRule,
    auto_accept,
    choose_thresholds,
    cross_fit,
)
from wangge.training.config import CONFIG_TOML, ReviewConfig, TrainConfig, to_toml
from wangge.training.evaluate import EvaluationReport, evaluate_predictions, save_confusion_png
from wangge.training.finetune import add_transformer, require_transformer_extra

logger = logging.getLogger(__name__)

PLURALS = {"category": "categories", "department": "departments"}
VALIDATION_SHARE = 0.1  # of the training rows, to stop fine-tuning and fit the mixture
REPORT_MARKDOWN = "report.md"
REPORT_JSON = "report.json"
CONFUSION_PNG = "confusion_matrix.png"


@dataclass(frozen=True)
class TrainResult:
    meta: ModelMeta
    holdout: EvaluationReport
    review_threshold: float  # the global one; meta.metrics["review"] holds the rest
    review_coverage: float  # expected share auto-accepted
    seconds: float


Progress = Callable[[str], None]


def fingerprint(texts: Sequence[str], labels: Sequence[str]) -> str:
    """SHA-256 over the (text, label) rows: identifies the exact training data."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=False):
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f")
        digest.update(label.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def _split(
    n: int, labels: Sequence[str], *, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(n)
    counts = Counter(labels)
    rare = [label for label, count in counts.items() if count < 2]
    if rare:
        raise TrainingError(
            f"categories with a single example cannot be split for evaluation: {rare}; add "
            "examples or remove them"
        )
    try:
        train_idx, test_idx = train_test_split(
            indices, test_size=holdout, random_state=seed, stratify=list(labels)
        )
    except ValueError as exc:  # hold-out too small to hold every category
        raise TrainingError(f"cannot make a stratified hold-out of {holdout:.0%}: {exc}") from exc
    return train_idx, test_idx


def check_model_dir(model_dir: Path, *, overwrite: bool) -> None:
    """Refuse to train into a model store, or into a non-empty directory unless ``overwrite``.

    Only checks: nothing is removed here (an old department model is removed by :func:`train`
    once the new category model is saved).
    """
    if model_dir.exists() and not model_dir.is_dir():
        raise TrainingError(f"--model-dir {model_dir} is a file, not a directory")
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        return
    is_model = (model_dir / META_FILE).is_file()  # its department model is a subdirectory
    stored = [] if is_model else [version.name for version in versions(model_dir)]
    if stored or (model_dir / CURRENT_FILE).is_file() or (model_dir / HISTORY_FILE).is_file():
        raise TrainingError(
            f"{model_dir} is a model store (versions: {', '.join(stored) or 'none'}): train a "
            f"new version into a directory of its own, e.g. --model-dir {model_dir / 'NEW'}, "
            f"then serve it with `wangge models promote NEW --store {model_dir}` (a service "
            f"started with --model-store {model_dir} swaps to it)"
        )
    if not overwrite:
        what = "a model" if is_model else "files"
        raise TrainingError(
            f"{model_dir} is not empty (it holds {what}): pass --force to overwrite it, or give "
            "a new directory"
        )


def train(
    config: TrainConfig, *, progress: Progress = logger.info, overwrite: bool = False
) -> TrainResult:
    """Train, evaluate and save a category model as described by ``config``.

    With ``config.department_column``, a department classifier is trained the same way on the
    rows that name a department and saved in ``<model_dir>/department``; the router adds its
    probabilities to the routing table's rules. A department model left from an earlier run
    is removed once the new category model is saved (classify would otherwise pair the two).
    The resolved configuration is written as ``config.toml`` beside ``meta.json``, the dedup
    weights as ``dedup_weights.json``; ``meta.json`` records what the pipeline was built with
    (:class:`~wangge.pipeline.artifact.PipelineRecord`). ``progress`` receives one line per
    step, prefixed with the seconds elapsed. The model directory must be new or empty unless
    ``overwrite`` (:func:`check_model_dir`).
    """
    model_dir = Path(config.model_dir)
    check_model_dir(model_dir, overwrite=overwrite)
    if config.backend == "transformer":
        require_transformer_extra()
        base = config.fine_tune.base()  # the encoder's directory, recorded as resolved
        config = config.model_copy(
            update={"fine_tune": config.fine_tune.model_copy(update={"base_model": base})}
        )
    started = time.perf_counter()

    def step(message: str) -> None:
        progress(f"[{time.perf_counter() - started:5.1f}s] {message}")

    pipeline = _pipeline(config, step)  # district, encoder, weights: bad ones stop here
    data, texts, labels = _load_labelled(config, step)
    departments = None
    if config.department_column:  # read before anything is written: a bad column stops here
        departments = load_messages(
            config.data, text_columns=config.text_columns, label_column=config.department_column
        )
    reassigned = _reviewed_departments(config)
    calibration = None
    if config.review.calibration_data is not None:  # read now: a bad file stops here
        calibration = load_messages(config.review.calibration_data, require_label=True)
    result = _train_target(
        "category", texts, labels, data, config, model_dir, step, started, pipeline, calibration
    )
    (model_dir / CONFIG_TOML).write_text(to_toml(config), encoding="utf-8")
    if (department_model_dir(model_dir) / META_FILE).is_file():
        shutil.rmtree(department_model_dir(model_dir))
    texts_d: list[str] = []
    labels_d: list[str] = []
    for source in (departments, reassigned):
        if source is not None:
            assert source.labels is not None  # loaded with its department column
            named = [i for i, label in enumerate(source.labels) if label]
            step(f"department classifier: {len(named)} of {len(source.texts)} messages of "
                 f"{source.path} name one")  # fmt: skip
            texts_d += [source.texts[i] for i in named]
            labels_d += [source.labels[i] for i in named]
    if len(set(labels_d)) >= 2:
        _train_target(
            "department",
            texts_d,
            labels_d,
            departments or reassigned or data,
            config,
            department_model_dir(model_dir),
            step,
            started,
        )
    elif departments is not None or reassigned is not None:
        step(f"department classifier: not trained ({len(set(labels_d))} department named)")
    return result


def _reviewed_departments(config: TrainConfig) -> LoadedMessages | None:
    """The reviewed messages (``--include-reviews``, a ``wangge export-reviews`` file) with the
    department a reviewer moved them to (its ``department`` column, empty where none was
    set): the learned correction of the routing. None without such a file or column."""
    if config.reviews is None:
        return None
    header = load_messages(config.reviews, require_label=True)
    if REVIEWED_DEPARTMENT not in header.frame.columns:
        return None
    return load_messages(config.reviews, label_column=REVIEWED_DEPARTMENT)


@dataclass(frozen=True)
class _Pipeline:
    """What the category model's directory records beyond the model, and the dedup weights
    it holds (as JSON)."""

    record: PipelineRecord
    weights_json: str


def _pipeline(config: TrainConfig, step: Callable[[str], None]) -> _Pipeline:
    """The district tables, the sentence encoder and the dedup weights the pipeline is built
    with (the weights with the thresholds of ``config.dedup`` that are set), and the commit."""
    source = config.dedup.weights or shipped_weights_path()
    payload = dedup_weights_json(source)
    weights = DedupWeights.from_dict(payload)
    for mode, threshold in (
        ("encoder", config.dedup.encoder_threshold),
        ("lexical", config.dedup.lexical_threshold),
    ):
        if threshold is not None:
            changed = ModeWeights(getattr(weights, mode).weights, threshold)
            weights = replace(weights, **{mode: changed})
    encoder = _encoder(config, step)
    fitted = payload.get("fitted")
    fitted_with = fitted.get("encoder") if isinstance(fitted, dict) else None
    if encoder is not None and isinstance(fitted_with, dict):
        if fitted_with.get("sha256") != encoder.sha256:
            step(
                f"note: the dedup weights were fitted with the encoder {fitted_with.get('id')}, "
                f"not that of {encoder.directory} (refit them with `wangge dedup fit`)"
            )
    record = PipelineRecord(
        district=district_record(config.district_dir),
        encoder=encoder,
        dedup_weights=DedupWeightsRecord(
            file=DEDUP_WEIGHTS_FILE, source=str(source), sha256=file_sha256(Path(source))
        ),
        git_commit=git_commit(),
    )
    weights_json = json.dumps(payload | weights.as_dict(), ensure_ascii=False, indent=2)
    return _Pipeline(record, weights_json + "\n")


def _encoder(config: TrainConfig, step: Callable[[str], None]) -> EncoderRecord | None:
    """The sentence encoder of ``config.encoder_dir``, else the default one if it is there."""
    if config.encoder_dir is not None:
        return encoder_record(config.encoder_dir)
    if (default_encoder_dir() / ENCODER_FILE).is_file():
        return encoder_record(default_encoder_dir())
    step(f"no sentence encoder in {default_encoder_dir()}: the pipeline expects none")
    return None


def git_commit() -> str | None:
    """The commit of the git checkout this wangge runs from; None when it is not one (an
    installed package) or git is missing."""
    here = Path(__file__).resolve()
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=here.parent, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    lines = found.stdout.splitlines()
    if found.returncode != 0 or len(lines) != 2:
        return None
    top, commit = lines  # a checkout of wangge itself, not a repository it is installed in
    return commit if Path(top, here.parent.name, here.name).resolve() == here else None


# The column of `wangge export-reviews` files that holds a reviewer's department.
REVIEWED_DEPARTMENT = "department"


def _load_labelled(
    config: TrainConfig, step: Callable[[str], None]
) -> tuple[LoadedMessages, list[str], list[str]]:
    """The labelled data file, and its texts and labels with the reviewed messages added."""
    step(f"loading {config.data}")
    data = load_messages(
        config.data,
        text_columns=config.text_columns,
        label_column=config.label_column,
        require_label=True,
    )
    assert data.labels is not None  # require_label=True guarantees it
    texts, labels = data.texts, data.labels
    if config.reviews is not None:
        reviewed = load_messages(config.reviews, require_label=True)
        assert reviewed.labels is not None
        step(f"adding {len(reviewed.texts)} reviewed messages from {config.reviews}")
        texts, labels = texts + reviewed.texts, labels + reviewed.labels
    return data, texts, labels


@dataclass
class _Fitted:
    """A classifier fitted without the hold-out, and its hold-out probabilities."""

    model: Any  # the linear classifier, or the ensemble holding it
    probabilities: np.ndarray
    metrics: dict[str, Any]
    files: tuple[str, ...]


def _train_target(
    name: str,
    texts: list[str],
    labels: list[str],
    data: LoadedMessages,
    config: TrainConfig,
    model_dir: Path,
    step: Callable[[str], None],
    started: float,
    pipeline: _Pipeline | None = None,
    calibration: LoadedMessages | None = None,
) -> TrainResult:
    """Split, fit, evaluate, refit, choose the review thresholds (on ``calibration`` if
    given, else on the hold-out) and save one classifier; with ``pipeline`` (the category
    model's), its dedup weights and record too."""
    step(
        f"{name}: {len(texts)} messages, {len(set(labels))} {PLURALS.get(name, name)}; "
        f"text columns {list(data.columns.text)}, label column {data.columns.label!r}"
        + ("; text is pre-segmented" if is_presegmented(texts) else "")
    )
    train_idx, test_idx = _split(len(texts), labels, holdout=config.holdout, seed=config.seed)
    classifier = MessageClassifier(tokenizer=config.tokenizer(), **config.classifier.parameters())
    step("segmenting")
    tokens = classifier.tokenize(texts)
    label_array = np.asarray(labels, dtype=object)
    fitted = _fit_without_holdout(
        classifier, tokens, label_array, (train_idx, test_idx), config, model_dir, step
    )
    predicted = classifier.classes_[fitted.probabilities.argmax(axis=1)]
    gold = label_array[test_idx]
    report = evaluate_predictions(list(gold), list(predicted), labels=list(classifier.classes_))
    step(f"hold-out macro-F1 {report.macro_f1:.4f}, accuracy {report.accuracy:.4f}")
    if calibration is None:  # scored before the refit, by the model without the hold-out
        scored, source = _holdout_scores(fitted, texts, test_idx, gold, config.review)
    if config.refit:  # the linear part; a fine-tuned transformer is not refitted
        step(f"refitting on all {len(texts)} messages")
        classifier.fit_tokens(tokens, label_array)
    if calibration is not None:
        scored, source = calibration_scores(fitted.model, calibration, step)
    thresholds, review = choose_review(scored, config.review, source, seed=config.seed)
    step(describe_review(thresholds, review))
    fitted.model.review_threshold = thresholds.global_threshold
    fitted.model.review_thresholds = thresholds.per_category
    coverage = round(1 - review["expected"]["review_share"], 4)
    metrics = {
        "holdout": report.summary(),
        "review_threshold": thresholds.global_threshold,
        "review_coverage": coverage,
        "review_target_accuracy": config.review.accuracy,
        "review": review,
        "train_seconds": round(time.perf_counter() - started, 2),
        **fitted.metrics,
    }
    files = fitted.files
    if pipeline is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / DEDUP_WEIGHTS_FILE).write_text(pipeline.weights_json, encoding="utf-8")
        files += (DEDUP_WEIGHTS_FILE,)
    meta = save_model(
        fitted.model,
        model_dir,
        name=name,
        labels=[str(c) for c in classifier.classes_],
        training_data=_training_data(config, texts, labels, data, classifier),
        config=config.model_dump(mode="json") | {"classifier_params": _params(classifier)},
        metrics=metrics,
        files=files,
        pipeline=pipeline.record if pipeline is not None else None,
    )
    write_report(report, model_dir, extra=metrics)
    step(f"saved {name} model {meta.version} to {model_dir}")
    return TrainResult(
        meta, report, thresholds.global_threshold, coverage, time.perf_counter() - started
    )


@dataclass(frozen=True)
class Scored:
    """Labelled messages scored by a model: its top confidence and category, and the gold."""

    confidences: np.ndarray
    predicted: np.ndarray
    gold: np.ndarray

    @classmethod
    def of(cls, probabilities: np.ndarray, classes: np.ndarray, gold: Sequence[str]) -> Scored:
        predicted = np.asarray([str(c) for c in classes[probabilities.argmax(axis=1)]], object)
        gold_array = np.asarray([str(g) for g in gold], dtype=object)
        return cls(probabilities.max(axis=1), predicted, gold_array)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.gold


def despaced(text: str) -> str:
    """A pre-segmented text with its segmentation spaces removed, as raw text comes."""
    return re.sub(r"\s+", "", text)


def _holdout_scores(
    fitted: _Fitted, texts: list[str], test_idx: np.ndarray, gold: np.ndarray, review: ReviewConfig
) -> tuple[Scored, dict[str, Any]]:
    """The hold-out scored by the model fitted without it: re-segmented from its text with
    the spaces removed (``review.raw_holdout``), else as the training file has it."""
    classes = fitted.model.classes_
    if not review.raw_holdout:
        source = {"method": "hold-out", "messages": len(test_idx)}
        return Scored.of(fitted.probabilities, classes, list(gold)), source
    probabilities = fitted.model.predict_proba([despaced(texts[i]) for i in test_idx])
    source = {"method": "hold-out, segmentation spaces removed", "messages": len(test_idx)}
    return Scored.of(probabilities, classes, list(gold)), source


def calibration_scores(
    model: Any, data: LoadedMessages, step: Callable[[str], None] = logger.info
) -> tuple[Scored, dict[str, Any]]:
    """The calibration file's messages (``load_messages`` with ``require_label``: columns
    found as ``wangge evaluate`` finds them) scored by the final model, as the pipeline
    scores them."""
    assert data.labels is not None  # loaded with require_label=True
    texts = [message.text for message in file_messages(data, locations=False)]
    step(f"calibrating the review thresholds on {len(texts)} messages of {data.path}")
    probabilities = model.predict_proba(texts)
    source = {
        "method": "calibration data, cross-fitted",
        "file": str(data.path),
        "messages": len(texts),
        "sha256": fingerprint(data.texts, data.labels),
        "file_sha256": file_sha256(Path(data.path)) if Path(data.path).is_file() else None,
    }
    return Scored.of(probabilities, model.classes_, data.labels), source


def choose_review(
    scored: Scored, review: ReviewConfig, source: dict[str, Any], *, seed: int
) -> tuple[ReviewThresholds, dict[str, Any]]:
    """The review thresholds chosen on all of ``scored``, and what ``meta.json`` records of
    them: the expected auto-accept accuracy and review share, cross-fitted over
    ``review.folds`` folds of ``scored`` (each fold decided by thresholds chosen on the
    others), the in-sample figures, and where they come from (``source``). On the hold-out
    (no calibration data) the target is raised and the thresholds are global as
    :class:`ReviewConfig` says."""
    on_holdout = "file" not in source
    target = review.accuracy
    minimum: int | None = review.min_category_messages
    if on_holdout:
        target = 1 - (1 - review.accuracy) / review.shift_factor
        minimum = minimum if review.holdout_per_category else None
    rule = ThresholdRule(target, review.z, minimum)
    thresholds = choose_thresholds(scored.confidences, scored.predicted, scored.correct, rule)
    in_sample = auto_accept(
        thresholds.accepts(scored.confidences, scored.predicted), scored.correct
    )
    how = f"{review.folds}-fold cross-fitted out-of-fold"
    if len(scored.gold) >= 2 * review.folds:
        crossed = cross_fit(
            scored.confidences, scored.predicted, scored.gold, rule, folds=review.folds, seed=seed
        )
        expected, folds = crossed.figures.as_dict(), [t.as_dict() for t in crossed.thresholds]
    else:  # too few to cross-fit: say so
        how = f"in-sample, fewer than {2 * review.folds} messages to cross-fit"
        expected, folds = in_sample.as_dict(), []
    record = {
        "target_accuracy": review.accuracy,
        "chosen_at_accuracy": round(target, 6),
        "z": review.z,
        "min_category_messages": review.min_category_messages,
        "folds": review.folds,
        "estimated_by": f"{source['method']}: {how}"
        + (
            f", at accuracy {target:.4f}; the expected accuracy on raw text is the hold-out's "
            f"with {review.shift_factor:g} times its errors"
            if on_holdout
            else ""
        ),
        "expected_auto_accept_accuracy": _shifted(expected["accuracy"], review, on_holdout),
        "expected_review_share": expected["review_share"],
        "expected": expected,
        "in_sample": in_sample.as_dict(),
        "thresholds": thresholds.as_dict(),
        "fallback_categories": sorted(
            set(map(str, scored.predicted)) - set(thresholds.per_category)
        ),
        "fold_thresholds": folds,
        "source": source,
    }
    return thresholds, record


def _shifted(accuracy: float | None, review: ReviewConfig, on_holdout: bool) -> float | None:
    """The accuracy expected on raw text: the hold-out's with ``shift_factor`` times its
    errors (calibration data is raw already: unchanged)."""
    if accuracy is None or not on_holdout:
        return accuracy
    return round(max(0.0, 1 - (1 - accuracy) * review.shift_factor), 4)


def describe_review(thresholds: ReviewThresholds, review: dict[str, Any]) -> str:
    """One line: the thresholds and the expected figures."""
    own = ", ".join(f"{c} {t:.3f}" for c, t in sorted(thresholds.per_category.items()))
    accuracy = review["expected_auto_accept_accuracy"]
    shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
    return (
        f"review thresholds: global {thresholds.global_threshold:.3f}"
        + (f"; per category {own}" if own else "")
        + f". Expected ({review['estimated_by']}): auto-accepted {shown} right, review share "
        f"{review['expected_review_share']:.1%} (target {review['target_accuracy']:.2f})"
    )


def _fit_without_holdout(
    classifier: MessageClassifier,
    tokens: list[list[str]],
    labels: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    model_dir: Path,
    step: Callable[[str], None],
) -> _Fitted:
    """Fit on the training rows of ``split`` (for the transformer backend, less a validation
    share that stops fine-tuning and fits the mixture) and predict the hold-out rows."""
    train_idx, test_idx = split
    fit_idx, val_idx = train_idx, np.empty(0, dtype=int)
    if config.backend == "transformer":
        fit_idx, val_idx = _split_indices(train_idx, labels, VALIDATION_SHARE, config.seed)
    step(f"fitting on {len(fit_idx)} messages, evaluating on {len(test_idx)}")
    classifier.fit_tokens([tokens[i] for i in fit_idx], labels[fit_idx])
    probabilities = classifier.predict_proba_tokens([tokens[i] for i in test_idx])
    if config.backend != "transformer":
        return _Fitted(classifier, probabilities, {}, ())
    ensemble, mixed, metrics, files = add_transformer(
        classifier, tokens, labels, (fit_idx, val_idx, test_idx), probabilities,
        config.fine_tune, model_dir, step,
    )  # fmt: skip
    return _Fitted(ensemble, mixed, metrics, files)


def _training_data(
    config: TrainConfig,
    texts: list[str],
    labels: list[str],
    data: LoadedMessages,
    classifier: MessageClassifier,
) -> dict[str, Any]:
    """What ``meta.json`` records of the data a model was trained on."""
    return {
        "file": str(config.data),
        "rows": len(texts),
        "sha256": fingerprint(texts, labels),
        "label_counts": dict(Counter(labels)),
        "text_columns": list(data.columns.text),
        "label_column": data.columns.label,
        "data_files": data_file_hashes(classifier),
    }


def _split_indices(
    indices: np.ndarray, labels: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``indices`` split in two, stratified by their labels (plainly if a class is too small)."""
    stratify = labels[indices]
    try:
        first, second = train_test_split(
            indices, test_size=share, random_state=seed, stratify=stratify
        )
    except ValueError:
        first, second = train_test_split(indices, test_size=share, random_state=seed)
    return np.asarray(first), np.asarray(second)


def data_file_hashes(classifier: MessageClassifier) -> dict[str, str]:
    """SHA-256 of the editable data files the model was built from (taxonomy, stop words)."""
    shipped = resources.files("wangge.data")
    taxonomy = (
        Path(classifier.taxonomy_path).read_bytes()
        if classifier.taxonomy_path is not None
        else shipped.joinpath("taxonomy.csv").read_bytes()
    )
    stopwords = "\n".join(sorted(classifier.tokenizer_.stopwords)).encode("utf-8")
    return {
        "taxonomy": hashlib.sha256(taxonomy).hexdigest(),
        "stopwords": hashlib.sha256(stopwords).hexdigest(),
    }


def _params(classifier: MessageClassifier) -> dict[str, Any]:
    params = classifier.get_params(deep=False)
    params["tokenizer"] = repr(params["tokenizer"])
    return params


def write_report(
    report: EvaluationReport, directory: str | Path, *, extra: dict[str, Any] | None = None
) -> None:
    """Write ``report.md``, ``report.json`` and ``confusion_matrix.png`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REPORT_MARKDOWN).write_text(report.to_markdown(), encoding="utf-8")
    payload = report.to_dict() | ({"training": extra} if extra else {})
    (directory / REPORT_JSON).write_text(
        json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    save_confusion_png(report, directory / CONFUSION_PNG)
