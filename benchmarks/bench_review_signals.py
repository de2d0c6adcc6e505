"""Review scores beyond the classifier's top probability (issue 17, item 1; an experiment).

Run from the repository root (needs the e5 encoder, ``bash scripts/setup.sh dev`` builds it)::

    .venv/bin/python benchmarks/bench_review_signals.py [--max-length 32]

Compares, at target 0.97 with per-category thresholds (50 messages) cross-fitted over 5 fold
seeds, three review scores for the linear classifier's predicted category:

- ``p1``: its top probability (what ``wangge train`` uses);
- ``correctness, no e5``: a logistic model of "the prediction is right" on the logit of p1 and
  log(p1 / p2);
- ``correctness + e5``: the same plus the logit of the probability a second model, logistic
  regression on multilingual-e5-small sentence vectors (the first ``--max-length`` sub-words,
  as duplicate detection embeds them), gives the predicted category, and whether its top
  category agrees.

The variant is chosen on the training file alone: 5-fold cross-validation on
``train_tokenized.csv``, each fold scored with its segmentation spaces removed (raw-like), the
correctness model itself cross-fitted over the same folds. Then each is measured once on the
667 raw dev messages: classifier and e5 model trained on the whole training file, the
correctness model on the training file's out-of-fold scores (no dev message trains anything),
the thresholds cross-fitted on dev as ``--calibration-data`` does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, note, say
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from wangge.batch.files import load_messages
from wangge.batch.messages import file_messages
from wangge.home import default_encoder_dir
from wangge.models.classifier import MessageClassifier
from wangge.nlp.embeddings import SentenceEncoder
from wangge.training.calibration import ThresholdRule, coverage_curve, cross_fit
from wangge.training.config import ClassifierConfig, TrainConfig
from wangge.training.train import despaced

LABEL_COLUMN = "一级标签"
E5_C = 16.0  # chosen by 5-fold CV accuracy of the e5 model on the training file (4, 16, 64)
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p + EPS) - np.log1p(-p + EPS)


def features(p: np.ndarray, q: np.ndarray, *, e5: bool) -> np.ndarray:
    """Per message: logit p1, log(p1/p2) and, with ``e5``, the e5 model's logit for the
    predicted category and whether its top category agrees."""
    predicted = p.argmax(1)
    top = np.sort(p, axis=1)
    columns = [_logit(top[:, -1]), np.log(top[:, -1] + EPS) - np.log(top[:, -2] + EPS)]
    if e5:
        columns += [_logit(q[np.arange(len(q)), predicted]), q.argmax(1) == predicted]
    return np.column_stack(columns).astype(float)


def _e5_model() -> LogisticRegression:
    return LogisticRegression(C=E5_C, max_iter=3000)


def train_scores(
    texts: list[str],
    labels: np.ndarray,
    y: np.ndarray,
    vectors: np.ndarray,
    make: Callable[[], MessageClassifier],
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Out-of-fold probabilities on the training file (classifier on raw-like text, e5 model)."""
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y))
    p = q = np.zeros(0)
    for k, (fit, test) in enumerate(folds):
        classifier = make().fit([texts[i] for i in fit], labels[fit])
        if not p.size:
            p, q = (np.zeros((len(texts), len(classifier.classes_))) for _ in range(2))
        p[test] = classifier.predict_proba([despaced(texts[i]) for i in test])
        q[test] = _e5_model().fit(vectors[fit], y[fit]).predict_proba(vectors[test])
        note(f"  fold {k}: classifier accuracy {np.mean(p[test].argmax(1) == y[test]):.4f}")
    return p, q, folds


def report(name: str, score: np.ndarray, predicted: np.ndarray, gold: np.ndarray) -> None:
    """Cross-fitted figures at 0.97 (z 0 and 0.5, 5 fold seeds) and the in-sample coverage
    at which the ranking reaches 0.97."""
    cells = []
    for z in (0.0, 0.5):
        rule = ThresholdRule(0.97, z, 50)
        runs = [cross_fit(score, predicted, gold, rule, seed=s).figures for s in range(5)]
        accuracy = [f.accuracy or 0.0 for f in runs]
        share = np.mean([f.review_share for f in runs])
        cells.append(
            f"{np.mean(accuracy):.4f} ({min(accuracy):.4f}-{max(accuracy):.4f}), {share:.1%}"
        )
    coverage, accuracy = coverage_curve(score, predicted == gold)
    reached = np.flatnonzero(accuracy >= 0.97)
    best = coverage[reached.max()] if reached.size else 0.0
    say(f"| {name} | {cells[0]} | {cells[1]} | {best:.1%} |")


def table(title: str, p: np.ndarray, scores: dict[str, np.ndarray], gold: np.ndarray) -> None:
    say(f"### {title}")
    say("| review score | z 0: accuracy (min-max), review | z 0.5 | in-sample coverage at 0.97 |")
    say("|---|---|---|---:|")
    predicted = np.asarray(p.argmax(1))
    for name, score in scores.items():
        report(name, score, predicted, gold)
    say()


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--max-length", type=int, default=32, help="e5 sub-words per message")
    parser.add_argument("--encoder-dir", type=Path, default=default_encoder_dir())
    args = parser.parse_args(argv)
    data_dir = data_dir_with(args.data_dir, (TRAIN_FILE, DEV_FILE))
    if data_dir is None:
        return 2
    frame = pd.read_csv(data_dir / TRAIN_FILE)
    texts = [str(t) for t in frame["tokens"]]
    labels = np.asarray(frame[LABEL_COLUMN].astype(str), dtype=object)
    dev = load_messages(data_dir / DEV_FILE, require_label=True)
    dev_texts = [m.text for m in file_messages(dev, locations=False)]
    encoder = SentenceEncoder(args.encoder_dir, max_length=args.max_length)
    started = time.perf_counter()
    dev_vectors = encoder.encode(dev_texts)
    note(f"e5 on dev: {(time.perf_counter() - started) / len(dev_texts) * 1000:.1f} ms/message")
    vectors = encoder.encode([despaced(t) for t in texts])
    tokenizer = TrainConfig(data=data_dir / TRAIN_FILE, model_dir=Path("unused")).tokenizer()

    def make() -> MessageClassifier:
        return MessageClassifier(tokenizer=tokenizer, **ClassifierConfig().parameters())

    classes, y = np.unique(labels, return_inverse=True)
    p, q, folds = train_scores(texts, labels, y, vectors, make)
    scores = {"p1": p.max(1)}
    models = {}
    for e5 in (False, True):
        x, right = features(p, q, e5=e5), p.argmax(1) == y
        oof = np.zeros(len(y))
        for fit, test in folds:
            model = LogisticRegression(max_iter=2000).fit(x[fit], right[fit])
            oof[test] = model.predict_proba(x[test])[:, 1]
        name = "correctness + e5" if e5 else "correctness, no e5"
        scores[name] = oof
        models[name] = (e5, LogisticRegression(max_iter=2000).fit(x, right))
    table("train_tokenized.csv, 5-fold, raw-like (the choice)", p, scores, y)

    p_dev = make().fit(texts, labels).predict_proba(dev_texts)
    q_dev = _e5_model().fit(vectors, y).predict_proba(dev_vectors)
    gold = np.searchsorted(classes, np.asarray([str(g) for g in dev.labels or []]))
    dev_scores = {"p1": p_dev.max(1)} | {
        name: model.predict_proba(features(p_dev, q_dev, e5=e5))[:, 1]
        for name, (e5, model) in models.items()
    }
    table(f"{DEV_FILE}, thresholds cross-fitted (measured once)", p_dev, dev_scores, gold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
