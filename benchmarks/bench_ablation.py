"""Ablation of the category classifier on the raw dev messages: what each part contributes.

Trains on ``train_tokenized.csv`` and reports macro-F1 on ``dev_raw_labeled.csv`` for:

- a plain baseline: scikit-learn TF-IDF of word unigrams and bigrams into a LinearSVC,
  on the same tokens (the usual published setup);
- the same baseline with class-balanced weights;
- wangge's classifier without the taxonomy keywords, and without class balancing;
- wangge's classifier as shipped.

Then two checks of how much any model trained on this data can still gain on dev:

- **in-domain ceiling**: wangge's classifier trained on the training file plus four fifths of
  the raw dev messages, scoring the remaining fifth (5 folds, so every dev message is scored
  once by a model that did not see it). If the gap to the segmented cross-validation were the
  raw-versus-segmented mismatch, raw labelled messages in training would close it;
- **label consistency**: pairs of near-identical messages (word TF-IDF cosine >= 0.9) whose
  labels differ, between dev and training and within training.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, say
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from wangge.batch.files import load_messages
from wangge.models.classifier import MessageClassifier
from wangge.models.features import WordNgramVectorizer
from wangge.training.evaluate import evaluate_predictions


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def baseline(class_weight: str | None) -> object:
    """Word unigram+bigram TF-IDF into a LinearSVC, on already tokenized texts."""
    words = TfidfVectorizer(
        tokenizer=_identity, preprocessor=_identity, token_pattern=None, lowercase=False,
        ngram_range=(1, 2), min_df=2, sublinear_tf=True,
    )  # fmt: skip
    return make_pipeline(words, LinearSVC(C=0.5, class_weight=class_weight))


class Labelled(NamedTuple):
    """Tokenized messages and their labels."""

    tokens: list[list[str]]
    labels: Sequence[str]


def in_domain_ceiling(train: Labelled, dev: Labelled, folds: int = 5) -> list[str]:
    """Dev predictions of models trained on the training file plus the other dev folds."""
    train_tokens, train_labels = train
    dev_tokens, dev_labels = dev
    predicted = np.empty(len(dev_labels), dtype=object)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for seen, unseen in splitter.split(np.zeros(len(dev_labels)), dev_labels):
        model = MessageClassifier().fit_tokens(
            train_tokens + [dev_tokens[i] for i in seen],
            list(train_labels) + [dev_labels[i] for i in seen],
        )
        scores = model.predict_proba_tokens([dev_tokens[i] for i in unseen])
        predicted[unseen] = model.classes_[scores.argmax(1)]
    return list(predicted)


def near_duplicate_disagreement(
    train: Labelled, dev: Labelled, threshold: float = 0.9
) -> tuple[int, int, int, int]:
    """(dev messages with a training near-duplicate, how many of them carry another label,
    near-duplicate pairs within training, how many of them disagree)."""
    words = WordNgramVectorizer(max_n=1, min_df=1).fit(train.tokens)
    train_vectors = normalize(words.transform(train.tokens))
    dev_vectors = normalize(words.transform(dev.tokens))
    train_y, dev_y = np.asarray(train.labels), np.asarray(dev.labels)
    similarity = (dev_vectors @ train_vectors.T).toarray()
    nearest, close = similarity.argmax(1), similarity.max(1) >= threshold
    dev_differs = int((train_y[nearest[close]] != dev_y[close]).sum())
    pairs = train_differs = 0
    for start in range(0, train_vectors.shape[0], 1000):  # the whole product is dense-ish
        within = (train_vectors[start : start + 1000] @ train_vectors.T).tocoo()
        rows = within.row + start
        pair = (rows < within.col) & (within.data >= threshold)
        pairs += int(pair.sum())
        train_differs += int((train_y[rows[pair]] != train_y[within.col[pair]]).sum())
    return int(close.sum()), dev_differs, pairs, train_differs


def main(argv: list[str] | None = None) -> int:
    args = argument_parser(__doc__).parse_args(argv)
    data_dir = data_dir_with(args.data_dir, (TRAIN_FILE, DEV_FILE))
    if data_dir is None:
        return 2
    train = load_messages(data_dir / TRAIN_FILE, text_columns=["tokens"], label_column="一级标签")
    dev = load_messages(data_dir / DEV_FILE, require_label=True)
    assert train.labels is not None and dev.labels is not None
    tokenize = MessageClassifier().tokenize  # the shipped text pipeline, shared by all variants
    train_tokens, dev_tokens = tokenize(train.texts), tokenize(dev.texts)

    variants: dict[str, object] = {
        "baseline: word TF-IDF + LinearSVC": baseline(None),
        "baseline + class balancing": baseline("balanced"),
        "wangge without taxonomy keywords": MessageClassifier(taxonomy_weight=0),
        "wangge without class balancing": MessageClassifier(class_weight=None),
        "wangge as shipped": MessageClassifier(),
    }
    say("| variant | dev macro-F1 | dev accuracy | fit seconds |")
    say("|---|---:|---:|---:|")
    for name, model in variants.items():
        started = time.perf_counter()
        if isinstance(model, MessageClassifier):
            model.fit_tokens(train_tokens, train.labels)
            predicted = list(model.classes_[model.predict_proba_tokens(dev_tokens).argmax(1)])
        else:
            model.fit(train_tokens, train.labels)  # type: ignore[attr-defined]
            predicted = list(model.predict(dev_tokens))  # type: ignore[attr-defined]
        seconds = time.perf_counter() - started
        report = evaluate_predictions(dev.labels, predicted)
        say(f"| {name} | {report.macro_f1:.4f} | {report.accuracy:.4f} | {seconds:.1f} |")

    started = time.perf_counter()
    labelled_train = Labelled(train_tokens, train.labels)
    labelled_dev = Labelled(dev_tokens, dev.labels)
    ceiling = in_domain_ceiling(labelled_train, labelled_dev)
    report = evaluate_predictions(dev.labels, ceiling)
    say(
        f"| wangge + 4/5 of the raw dev messages in training (5 folds) | {report.macro_f1:.4f} "
        f"| {report.accuracy:.4f} | {time.perf_counter() - started:.1f} |"
    )
    dev_close, dev_differs, train_pairs, train_differs = near_duplicate_disagreement(
        labelled_train, labelled_dev
    )
    say()
    say(
        f"label consistency: {dev_differs} of the {dev_close} dev messages with a near-identical "
        f"training message (word cosine >= 0.9) carry another label; within training, "
        f"{train_differs} of {train_pairs} near-identical pairs disagree"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
