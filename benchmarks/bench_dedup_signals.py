"""Whether more pair signals separate same-case pairs better: category agreement, time gap,
the embeddings' products.

Run from the repository root (about 5 minutes with cached features)::

    .venv/bin/python benchmarks/bench_dedup_signals.py --data-dir /path/to/tipdm2020c \\
        [--model-dir MODEL_DIR] [--cache /tmp/casework_cache]

On the design pairs (``benchmarks/data/hot_issue_pairs*.csv``) with the sentence encoder: the
pair features ``wangge dedup fit`` weighs, then those plus one
signal more, each a logistic regression judged by 10-fold cross-validation of the pairs
themselves (not of the cases built; five fold seeds averaged): ROC AUC, log loss and the best
F1 over thresholds, with folds drawn at random and grouped (the connected components of the
pairs' messages kept in one fold, so that no message is in two folds and nothing learnt of a
message's topic reaches its test pairs). The signals: ``category_agreement`` (the probability
that both messages fall in the same category, the dot product of the category probabilities
of ``MODEL_DIR``, a model of ``wangge train``, e.g. on the data dir's ``train_tokenized.csv``
with ``--text-column tokens``), ``categories_differ`` (both above 0.8, different categories),
``log_days``, ``title_lexical_cosine``, ``body_cosine`` (of the bodies' embeddings, their
first 160 characters) and the products of the two title embeddings dimension by
dimension (a learnt cosine; standardised and scaled down, which penalises their weights more
than the features'). A signal worth a case-level test (``wangge dedup fit``'s protocol) is one
that moves these beyond the spread of the seeds; the products did, and lost at case level
(docs/benchmarks.md, commit 0509e5e).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO_ROOT, argument_parser, design_pair_files, note, say
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict

from wangge.batch.dedup import messages_in_time_order
from wangge.batch.files import load_messages
from wangge.home import default_encoder_dir
from wangge.pipeline.directory import load_pipeline
from wangge.pipeline.triage import load_encoder
from wangge.training.dedup_fit import FEATURES, REGULARISATION, Mode, prepare_modes, read_pairs

MESSAGES_FILE = "unlabeled_hot_issue_messages.csv"
CONFIDENT = 0.8
SEEDS = 5
EMBEDDING_SCALES = (0.01, 0.02, 0.03)
BODY_CHARS = 160


def category_signals(model_dir: Path, messages: list, pairs: pd.DataFrame) -> pd.DataFrame:
    """``category_agreement`` and ``categories_differ`` of each pair (see the docstring)."""
    classifier = load_pipeline(model_dir).classifier
    texts = [f"{m.title}\n{m.content}" for m in messages]
    predicted = classifier.predict_proba(texts)
    probabilities = dict(zip((m.id for m in messages), predicted, strict=True))
    a = np.stack([probabilities[str(i)] for i in pairs["id_a"]])
    b = np.stack([probabilities[str(i)] for i in pairs["id_b"]])
    differ = (a.max(1) > CONFIDENT) & (b.max(1) > CONFIDENT) & (a.argmax(1) != b.argmax(1))
    return pd.DataFrame({"category_agreement": (a * b).sum(1), "categories_differ": differ * 1.0})


def embedding_products(mode: Mode, pairs: pd.DataFrame) -> np.ndarray:
    """The products of each pair's two embeddings, dimension by dimension (pairs × dim)."""
    vectors = {m.id: f.vector for m, f in zip(mode.messages, mode.features, strict=True)}
    return np.stack(
        [vectors[str(a)] * vectors[str(b)] for a, b in pairs[["id_a", "id_b"]].values]
    ).astype(np.float64)


def body_cosines(mode: Mode, pairs: pd.DataFrame) -> pd.DataFrame:
    """``body_cosine``: the cosine of the embeddings of the two bodies' first
    :data:`BODY_CHARS` characters (the detector embeds the titles)."""
    assert mode.encoder is not None
    texts = [m.content[:BODY_CHARS] for m in mode.messages]
    vectors = dict(zip((m.id for m in mode.messages), mode.encoder.encode(texts), strict=True))
    cosines = [float(vectors[str(a)] @ vectors[str(b)]) for a, b in pairs[["id_a", "id_b"]].values]
    return pd.DataFrame({"body_cosine": cosines})


def message_groups(pairs: pd.DataFrame) -> np.ndarray:
    """Each pair's connected component in the graph of the pairs' messages."""
    ids = {i: k for k, i in enumerate(sorted({*pairs["id_a"], *pairs["id_b"]}))}
    a, b = pairs["id_a"].map(ids).to_numpy(), pairs["id_b"].map(ids).to_numpy()
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    return connected_components(graph, directed=False)[1][a]


def scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """ROC AUC, log loss and best F1 of a cross-validated logistic regression, a row a seed."""
    results = []
    for seed in range(SEEDS):
        folds = (StratifiedKFold if groups is None else GroupKFold)(
            10, shuffle=True, random_state=seed
        )
        model = LogisticRegression(C=REGULARISATION, max_iter=5000)
        p = cross_val_predict(model, x, y, cv=folds, groups=groups, method="predict_proba")[:, 1]
        best_f1 = max(f1_score(y, p >= t) for t in np.arange(0.3, 0.8, 0.05))
        results.append((roc_auc_score(y, p), log_loss(y, p), best_f1))
    return np.array(results)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, help="a category model directory")
    parser.add_argument("--encoder", type=Path, default=default_encoder_dir())
    parser.add_argument("--cache", type=Path, default=Path("/tmp/casework_cache"))
    args = parser.parse_args()
    data_dir = args.data_dir if args.data_dir.is_absolute() else REPO_ROOT / args.data_dir
    pairs = read_pairs(design_pair_files())
    _positions, messages = messages_in_time_order(load_messages(data_dir / MESSAGES_FILE))
    note("preparing the messages' features")
    mode = prepare_modes(messages, pairs, load_encoder(args.encoder), cache=args.cache)[-1]
    x = pd.concat([mode.x, body_cosines(mode, pairs)], axis=1)
    if args.model_dir is not None:
        x = pd.concat([x, category_signals(args.model_dir, mode.messages, pairs)], axis=1)
    y = pairs["same_case"].to_numpy()
    say(f"{len(pairs)} design pairs ({int(y.sum())} same case), mode {mode.name}; "
        f"10-fold CV of the pairs, {SEEDS} seeds: mean (spread over seeds)")  # fmt: skip
    base = x[FEATURES[mode.name]].to_numpy()
    products = embedding_products(mode, pairs)
    products = (products - products.mean(0)) / (products.std(0) + 1e-12)
    variants = {"fitted features": base}
    for extra in ("category_agreement", "categories_differ", "log_days", "title_lexical_cosine",
                  "body_cosine"):  # fmt: skip
        if extra in x:
            variants[f"+ {extra}"] = np.hstack([base, x[[extra]].to_numpy()])
    for scale in EMBEDDING_SCALES:
        variants[f"+ products × {scale}"] = np.hstack([base, products * scale])
    for folds, groups in (("random", None), ("grouped", message_groups(pairs))):
        for name, features in variants.items():
            result = scores(features, y, groups)
            mean, spread = result.mean(0), result.max(0) - result.min(0)
            say(
                f"{folds:8} {name:24} AUC {mean[0]:.4f} ({spread[0]:.4f})  "
                f"log loss {mean[1]:.4f} ({spread[1]:.4f})  best F1 {mean[2]:.4f} ({spread[2]:.4f})"
            )


if __name__ == "__main__":
    main()
