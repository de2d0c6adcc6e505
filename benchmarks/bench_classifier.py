"""Benchmark of the category classifier: quality, training time, throughput and memory.

Run from the repository root::

    .venv/bin/python benchmarks/bench_classifier.py [--no-cv] [--json results.json]

Steps, each printing its figures:

a. train with the real pipeline (what ``wangge train`` runs) on ``train_tokenized.csv``;
b. score ``dev_raw_labeled.csv`` (raw title + body) with the saved model, as ``wangge classify``;
c. (``--cv``, the default) 5-fold stratified cross-validation on ``train_tokenized.csv``;
d. batch-scoring throughput in process, and end to end through the ``wangge classify`` CLI;
e. peak resident memory of this process and of the ``wangge classify`` subprocess.

A Markdown summary table follows; ``--json PATH`` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, note, say, wangge_command
from sklearn.model_selection import StratifiedKFold

from wangge.batch.files import LoadedMessages, load_messages, titles_and_bodies
from wangge.batch.messages import file_messages
from wangge.models.classifier import MessageClassifier
from wangge.pipeline import Message, Triage
from wangge.pipeline.artifact import load_model
from wangge.pipeline.triage import BATCH_SIZE
from wangge.training.config import TrainConfig
from wangge.training.evaluate import evaluate_predictions
from wangge.training.train import train

LABEL_COLUMN = "一级标签"
CV_FOLDS = 5
CV_SEED = 0

Figures = dict[str, Any]

# Runs the command in argv[2:] and writes {"seconds", "maxrss_kib"} of it as JSON to argv[1].
# The command must be forked from a fresh, small process: on Linux exec carries the forking
# process's peak RSS into the child's ru_maxrss, so RUSAGE_CHILDREN read here, after training,
# would report this benchmark's own peak instead of the child's.
_MEASURE_CHILD = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[2:]).returncode
seconds = time.perf_counter() - started
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "maxrss_kib": maxrss}, out)
sys.exit(code)
"""


def step_train(data_dir: Path, model_dir: Path, figures: Figures) -> None:
    """(a) Train exactly as ``wangge train --text-column tokens --label-column 一级标签``."""
    say("## a. training (wangge train pipeline)")
    config = TrainConfig(
        data=data_dir / TRAIN_FILE,
        text_columns=["tokens"],
        label_column=LABEL_COLUMN,
        model_dir=model_dir,
    )
    started = time.perf_counter()
    result = train(config, progress=lambda message: note(f"  {message}"), overwrite=True)
    wall = time.perf_counter() - started
    figures |= {
        "train_rows": result.meta.training_data["rows"],
        "train_seconds": wall,
        "train_pipeline_seconds": result.seconds,  # as `wangge train` reports it (before saving)
        "holdout_macro_f1": result.holdout.macro_f1,
        "holdout_accuracy": result.holdout.accuracy,
        "review_threshold": result.review_threshold,
    }
    say(
        f"training wall-clock: {wall:.1f} s ({figures['train_rows']} messages; the pipeline "
        f"reports {result.seconds:.1f} s, before saving the model and the report)"
    )
    say(f"hold-out macro-F1 {result.holdout.macro_f1:.4f}, accuracy {result.holdout.accuracy:.4f}")
    say()


def step_dev(
    data_dir: Path, model_dir: Path, figures: Figures
) -> tuple[MessageClassifier, LoadedMessages]:
    """(b) Score the raw dev set with the saved model; returns the model and the dev set."""
    say(f"## b. {DEV_FILE} scored with the saved model")
    started = time.perf_counter()
    model, meta = load_model(model_dir)
    figures["model_load_seconds"] = time.perf_counter() - started
    dev = load_messages(data_dir / DEV_FILE)  # auto-detects 留言主题 + 留言详情, as classify does
    if dev.labels is None:
        raise SystemExit(f"error: {DEV_FILE} has no label column")
    predictions = [r.prediction for r in Triage(model).pipe(file_messages(dev, locations=False))]
    predicted = [p.category for p in predictions]
    report = evaluate_predictions(dev.labels, predicted, labels=meta.labels)
    flagged = np.array([p.needs_review for p in predictions])
    correct = np.array([p == g for p, g in zip(predicted, dev.labels, strict=True)])
    unflagged_accuracy = float(correct[~flagged].mean()) if (~flagged).any() else float("nan")
    figures |= {
        "dev_messages": report.n,
        "dev_macro_f1": report.macro_f1,
        "dev_accuracy": report.accuracy,
        "dev_needs_review_share": float(flagged.mean()),
        "dev_unflagged_accuracy": unflagged_accuracy,
        "dev_per_class_f1": {label: m.f1 for label, m in report.per_class.items()},
    }
    say(f"text columns {list(dev.columns.text)}; model load {figures['model_load_seconds']:.2f} s")
    say(report.to_markdown())
    say(
        f"needs_review: {flagged.mean():.1%} of messages; accuracy of the rest: "
        f"{unflagged_accuracy:.4f} ({int((~flagged).sum())} messages)"
    )
    say()
    return model, dev


def step_cv(data_dir: Path, figures: Figures) -> None:
    """(c) Stratified k-fold CV, tokenizing once and fitting a fresh classifier per fold."""
    say(f"## c. {CV_FOLDS}-fold stratified cross-validation on {TRAIN_FILE} (seed {CV_SEED})")
    data = load_messages(
        data_dir / TRAIN_FILE,
        text_columns=["tokens"],
        label_column=LABEL_COLUMN,
        require_label=True,
    )
    assert data.labels is not None  # require_label=True guarantees it
    labels = np.asarray(data.labels, dtype=object)
    tokens = MessageClassifier().tokenize(data.texts)
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=CV_SEED)
    f1s: list[float] = []
    accuracies: list[float] = []
    for fold, (fit_idx, test_idx) in enumerate(folds.split(np.zeros(len(labels)), labels), 1):
        started = time.perf_counter()
        classifier = MessageClassifier().fit_tokens([tokens[i] for i in fit_idx], labels[fit_idx])
        probabilities = classifier.predict_proba_tokens([tokens[i] for i in test_idx])
        predicted = classifier.classes_[probabilities.argmax(axis=1)]
        report = evaluate_predictions(
            list(labels[test_idx]), list(predicted), labels=list(classifier.classes_)
        )
        f1s.append(report.macro_f1)
        accuracies.append(report.accuracy)
        say(
            f"fold {fold}: macro-F1 {report.macro_f1:.4f}, accuracy {report.accuracy:.4f} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    figures |= {
        "cv_macro_f1_mean": float(np.mean(f1s)),
        "cv_macro_f1_std": float(np.std(f1s)),
        "cv_accuracy_mean": float(np.mean(accuracies)),
        "cv_accuracy_std": float(np.std(accuracies)),
    }
    say(
        f"macro-F1 {np.mean(f1s):.4f} ± {np.std(f1s):.4f}; "
        f"accuracy {np.mean(accuracies):.4f} ± {np.std(accuracies):.4f}"
    )
    say()


def step_throughput(
    model: MessageClassifier, dev: LoadedMessages, model_dir: Path, n: int, figures: Figures
) -> None:
    """(d, e) In-process batch throughput, then the ``wangge classify`` CLI on an n-row file."""
    say(f"## d. scoring throughput ({n} messages, batches of {BATCH_SIZE})")
    raw = titles_and_bodies(dev)
    repeated = [raw[i % len(raw)] for i in range(n)]
    model.predict_explained(dev.texts[:BATCH_SIZE], top_k=3)  # warm-up batch
    started = time.perf_counter()  # from raw fields: normalisation included
    messages = [Message.of(title=title, content=body) for title, body in repeated]
    predictions = Triage(model).pipe(messages)
    seconds = time.perf_counter() - started
    assert len(predictions) == n
    figures |= {
        "inprocess_messages": n,
        "inprocess_seconds": seconds,
        "inprocess_messages_per_s": n / seconds,
    }
    say(
        f"in process (Triage.pipe from raw fields): {n / seconds:,.0f} messages/s ({seconds:.2f} s)"
    )

    with tempfile.TemporaryDirectory(prefix="bench_classify_") as tmp:
        big = dev.frame.iloc[np.arange(n) % len(dev.frame)].reset_index(drop=True)
        input_csv, output_csv = Path(tmp) / "messages.csv", Path(tmp) / "scored.csv"
        big.to_csv(input_csv, index=False)
        command = [wangge_command(), "classify", str(input_csv), "--model-dir", str(model_dir)]
        command += ["-o", str(output_csv)]
        measured = Path(tmp) / "measured.json"
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE_CHILD, str(measured), *command],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"error: wangge classify failed ({done.returncode}):\n{done.stderr}")
        child = json.loads(measured.read_text())
    seconds = child["seconds"]
    figures |= {
        "cli_messages": n,
        "cli_seconds": seconds,
        "cli_messages_per_s": n / seconds,
        "cli_peak_rss_mib": child["maxrss_kib"] / 1024,  # Linux reports ru_maxrss in KiB
    }
    say(
        f"wangge classify CLI end to end: {n / seconds:,.0f} messages/s ({seconds:.2f} s, "
        f"process start and model load included); it said: {done.stdout.strip()}"
    )
    say(f"model load alone (load_model, in process): {figures['model_load_seconds']:.2f} s")
    say()


def summary(figures: Figures) -> str:
    """The scalar figures as a two-column Markdown table."""
    lines = ["| figure | value |", "|---|---:|"]
    for key, value in figures.items():
        if isinstance(value, dict):
            lines += [f"| {key}[{k}] | {v:.4f} |" for k, v in value.items()]
        elif isinstance(value, float):
            if key.endswith("_seconds"):
                shown = f"{value:.2f}"
            elif key.endswith(("_per_s", "_mib")):
                shown = f"{value:,.1f}"
            else:
                shown = f"{value:.4f}"
            lines.append(f"| {key} | {shown} |")
        else:
            lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    add = parser.add_argument
    add("--model-dir", type=Path, help="where to save the model; a temporary dir if not given")
    add("--cv", action=argparse.BooleanOptionalAction, default=True, help="5-fold CV")
    add("--messages", type=int, default=10_000, help="messages of the throughput runs")
    add("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.messages < BATCH_SIZE:
        parser.error(f"--messages must be at least {BATCH_SIZE}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = data_dir_with(args.data_dir, (TRAIN_FILE, DEV_FILE))
    if data_dir is None:
        return 2
    figures: Figures = {"data_dir": str(data_dir)}
    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        model_dir = args.model_dir or Path(tmp)
        step_train(data_dir, model_dir, figures)
        model, dev = step_dev(data_dir, model_dir, figures)
        if args.cv:
            step_cv(data_dir, figures)
        step_throughput(model, dev, model_dir, args.messages, figures)
    # Linux reports ru_maxrss in KiB.
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say("## e. peak memory")
    say(
        f"this process: {figures['peak_rss_mib']:.0f} MiB; wangge classify subprocess: "
        f"{figures['cli_peak_rss_mib']:.0f} MiB"
    )
    say()
    say("## summary")
    say(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
        say(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
