"""Ablation of the category classifier on the raw dev messages: what each part contributes.

Trains on ``train_tokenized.csv`` and reports macro-F1 on ``dev_raw_labeled.csv`` for:

- a plain baseline: scikit-learn TF-IDF of word unigrams and bigrams into a LinearSVC,
  on the same tokens (the usual published setup);
- the same baseline with class-balanced weights;
- wangge's classifier without the taxonomy keywords, and without class balancing;
- wangge's classifier as shipped.
"""

from __future__ import annotations

import sys
import time

from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, say
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from wangge.models.classifier import MessageClassifier
from wangge.training.evaluate import evaluate_predictions
from wangge.training.loaders import load_messages


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def baseline(class_weight: str | None) -> object:
    """Word unigram+bigram TF-IDF into a LinearSVC, on already tokenized texts."""
    words = TfidfVectorizer(
        tokenizer=_identity, preprocessor=_identity, token_pattern=None, lowercase=False,
        ngram_range=(1, 2), min_df=2, sublinear_tf=True,
    )  # fmt: skip
    return make_pipeline(words, LinearSVC(C=0.5, class_weight=class_weight))


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
