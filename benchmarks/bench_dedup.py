"""Benchmark of deduplication on the 4,326 hot-issue messages, against hand-labelled pairs.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dedup.py [--encoder ~/.cache/wangge/e5-small] [--fit]
    .venv/bin/python benchmarks/bench_dedup.py --scale 100000,1000000

a. ``wangge dedup`` on ``unlabeled_hot_issue_messages.csv`` (a subprocess: wall time and peak
   memory, sentence encoder included);
b. pairwise precision, recall and F1 of "same case" on ``benchmarks/data/hot_issue_pairs.csv``
   (437 pairs labelled by hand, see its README) and ``hot_issue_pairs_heldout.csv`` (252
   pairs labelled later, blind to the detector; the weights are now fitted on both):
   by case (both messages got the same ``case_id``), and for the silver clustering
   ``silver_hot_issue_clusters_birch.json``;
c. ``--fit``: the pair features of the labelled pairs of both files, 10-fold cross-validated
   logistic regression at several thresholds, and the weights fitted on all pairs
   (:class:`wangge.models.dedup.PairWeights`), with and without the encoder;
d. ``--scale N,...``: lookup time when N synthetic messages are indexed (random texts, so the
   LSH holds real signatures, and random unit vectors), with the time to load them in bulk and
   the peak memory of the process;
e. ``--restart N``: start-up of the duplicate index from a SQLite store of N synthetic
   messages, rebuilding the HNSW graph and then restoring the graph saved at shutdown.
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO_ROOT, argument_parser, data_dir_with, note, say, wangge_command

from wangge.home import default_encoder_dir
from wangge.models.dedup import (
    CLOSE_COSINE,
    DEFAULT_THRESHOLD,
    DedupMessage,
    DuplicateDetector,
    Encoder,
    PairWeights,
)
from wangge.training.dedup import dedup_messages, load_encoder, message_times
from wangge.training.loaders import load_messages

MESSAGES_FILE = "unlabeled_hot_issue_messages.csv"
SILVER_FILE = "silver_hot_issue_clusters_birch.json"
PAIRS_FILE = REPO_ROOT / "benchmarks" / "data" / "hot_issue_pairs.csv"
# Labelled after the detector was first tuned, blind to it, by another annotator (see its README).
HELDOUT_FILE = REPO_ROOT / "benchmarks" / "data" / "hot_issue_pairs_heldout.csv"


def prf(predicted: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    tp = int((predicted & gold).sum())
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(gold.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run_cli(source: Path, encoder: Path | None) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "cases.csv"
        command = [wangge_command(), "dedup", str(source), "--output", str(output)]
        if encoder is not None:
            command += ["--encoder", str(encoder)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    say(f"`wangge dedup` on {len(frame)} messages: {seconds:.1f} s wall, peak RSS {peak:.0f} MiB, "
        f"{frame['case_id'].nunique()} cases")  # fmt: skip
    return frame


def evaluate(pairs: pd.DataFrame, case_of: dict[str, str], silver: dict[str, int]) -> None:
    gold = pairs["same_case"].to_numpy() == 1
    ours = np.array([case_of[str(a)] == case_of[str(b)] for a, b in pairs[["id_a", "id_b"]].values])
    theirs = np.array(
        [
            silver.get(str(a), -1) == silver.get(str(b), -2)
            for a, b in pairs[["id_a", "id_b"]].values
        ]
    )
    say("\n| clustering | pairs | precision | recall | F1 |")
    say("|---|---|---|---|---|")
    sure = pairs["unsure"].to_numpy() == 0
    for label, predicted, mask in [
        ("wangge", ours, np.ones(len(pairs), bool)),
        ("wangge, pairs the annotators were sure of", ours, sure),
        ("silver BIRCH clustering", theirs, np.ones(len(pairs), bool)),
    ]:
        p, r, f = prf(predicted[mask], gold[mask])
        say(f"| {label} | {int(mask.sum())} | {p:.3f} | {r:.3f} | {f:.3f} |")
    say("\nRecall by level (share of the pairs put in one case):")
    for level, group in pairs.groupby("level"):
        together = np.array(
            [case_of[str(a)] == case_of[str(b)] for a, b in group[["id_a", "id_b"]].values]
        )
        say(f"- {level}: {together.mean():.2f} of {len(group)}")


ENCODER_FEATURES = ["jaccard", "cosine", "close_cosine", "same_reporter", "entities_conflict",
                    "entities_overlap"]  # fmt: skip
LEXICAL_FEATURES = ["jaccard", "title_jaccard", "same_reporter", "entities_conflict",
                    "entities_overlap"]  # fmt: skip


def pair_rows(detector: DuplicateDetector, messages: list[DedupMessage], pairs: pd.DataFrame
              ) -> pd.DataFrame:  # fmt: skip
    """Every pair's features, as :class:`PairWeights` weighs them."""
    by_id = {m.id: m for m in messages}
    needed = sorted({str(i) for i in pairs["id_a"]} | {str(i) for i in pairs["id_b"]})
    features = dict(zip(needed, detector.features([by_id[i] for i in needed]), strict=True))
    rows = []
    for a, b in pairs[["id_a", "id_b"]].values:
        a, b = str(a), str(b)
        f = detector.pair_features(by_id[a], features[a], by_id[b], features[b])
        cosine = f.cosine or 0.0
        rows.append({"jaccard": f.jaccard, "title_jaccard": f.title_jaccard, "cosine": cosine,
                     "close_cosine": max(0.0, cosine - CLOSE_COSINE) / (1 - CLOSE_COSINE),
                     "same_reporter": f.same_reporter, "entities_conflict": f.entities == -1,
                     "entities_overlap": f.entities == 1})  # fmt: skip
    return pd.DataFrame(rows).astype(float)


def fit(detector: DuplicateDetector, messages: list[DedupMessage], pairs: pd.DataFrame) -> None:
    """Cross-validate and fit the pair weights on all labelled pairs (both files)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x_all, y = pair_rows(detector, messages, pairs), pairs["same_case"].to_numpy() == 1
    thresholds = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
    for label, names in [("with the encoder", ENCODER_FEATURES), ("lexical", LEXICAL_FEATURES)]:
        x = x_all[names].to_numpy()
        model = LogisticRegression(C=10, max_iter=1000)
        scores = np.zeros((3, len(thresholds), 3))
        for seed in range(3):
            cv = StratifiedKFold(10, shuffle=True, random_state=seed)
            probability = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
            for t, threshold in enumerate(thresholds):
                scores[seed, t] = prf(probability >= threshold, y)
        say(f"\n10-fold cross-validated pair classifier, {label} (mean of 3 shuffles; direct "
            f"pairs, not clusters), {len(y)} pairs:")  # fmt: skip
        say("| threshold | precision | recall | F1 |\n|---|---|---|---|")
        for t, threshold in enumerate(thresholds):
            p, r, f = scores[:, t].mean(axis=0)
            say(f"| {threshold} | {p:.3f} | {r:.3f} | {f:.3f} |")
        model.fit(x, y)
        weights = dict(zip(names, np.round(model.coef_[0], 2).tolist(), strict=True))
        say(f"\nweights fitted on all pairs: {weights}, bias {model.intercept_[0]:.2f}")
    case_cv(detector.encoder, messages, pairs, x_all)


def case_cv(
    encoder: Encoder | None, messages: list[DedupMessage], pairs: pd.DataFrame, x: pd.DataFrame
) -> None:
    """Out-of-sample figures of the whole detector: for each of 5 folds of the pairs, weights
    fitted on the other folds build the cases of all 4,326 messages, judged on the fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    ordered = sorted(messages, key=lambda m: m.time)
    vectors = None
    if encoder is not None:
        vectors = np.stack([f.vector for f in DuplicateDetector(encoder).features(ordered)])
    names = ENCODER_FEATURES if encoder is not None else LEXICAL_FEATURES
    y = pairs["same_case"].to_numpy() == 1
    together = np.zeros(len(pairs), dtype=bool)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(x, y)
    for train, test in folds:
        model = LogisticRegression(C=10, max_iter=1000).fit(x[names].to_numpy()[train], y[train])
        weights = PairWeights(**{  # features the fit leaves out weigh 0
            **dict.fromkeys(PairWeights.__dataclass_fields__, 0.0),
            **dict(zip(names, model.coef_[0].tolist(), strict=True)),
            "bias": float(model.intercept_[0]),
        })  # fmt: skip
        detector = DuplicateDetector(encoder, weights=weights)
        decisions = detector.add_many(ordered, detector.features(ordered, vectors=vectors))
        case_of = {d.message_id: d.case_id for d in decisions}
        for i in test:
            together[i] = case_of[str(pairs["id_a"].iloc[i])] == case_of[str(pairs["id_b"].iloc[i])]
    p, r, f = prf(together, y)
    say(f"\nCases built with weights fitted on the other 4 of 5 folds, threshold "
        f"{DEFAULT_THRESHOLD}: precision {p:.3f}, recall {r:.3f}, F1 {f:.3f} "
        f"({len(y)} pairs)")  # fmt: skip


def scale(sizes: list[int], dim: int = 384) -> None:
    """Lookup time with ``size`` synthetic messages indexed: random 60-character texts (so
    the LSH holds real signatures) and random unit vectors (so the HNSW index is full). The
    index is loaded in bulk, as a restart loads a store (each message its own case)."""
    rng = np.random.default_rng(0)

    class RandomEncoder:
        def __init__(self) -> None:
            self.dim = dim

        def encode(self, texts: list[str]) -> np.ndarray:
            vectors = rng.standard_normal((len(texts), dim)).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def messages(count: int, start: int) -> list[DedupMessage]:
        codes = rng.integers(0x4E00, 0x4E00 + 3000, size=(count, 60))
        texts = ["".join(map(chr, row)) for row in codes]
        when = datetime(2020, 1, 1)
        return [DedupMessage(f"m{start + i}", t[:12], t, when) for i, t in enumerate(texts)]

    say("\n| indexed messages | lookup p50 ms | lookup p95 ms | lookup p99 ms | load s | RSS GiB |")
    say("|---|---|---|---|---|---|")
    for size in sizes:
        detector = DuplicateDetector(RandomEncoder(), entities=False, capacity=size + 1000)
        started = time.perf_counter()
        for start in range(0, size, 10_000):
            batch = messages(min(10_000, size - start), start)
            detector.index(batch, [m.id for m in batch], detector.features(batch))
        built = time.perf_counter() - started
        # 200 new texts and 100 near copies of indexed ones (their candidates get scored)
        near = [
            replace(m, id=f"near-{m.id}", content=m.content[:-4] + "路灯坏了") for m in batch[:100]
        ]
        queries = messages(200, size) + near
        timings = []
        for message in queries:
            started = time.perf_counter()
            detector.query(message)
            timings.append((time.perf_counter() - started) * 1000)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        p50, p95, p99 = np.percentile(timings, [50, 95, 99])
        say(f"| {size:,} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {built:.0f} | {rss:.1f} |")


def restart(size: int, dim: int = 384) -> None:
    """Start-up of the duplicate index from a store of ``size`` synthetic messages (random
    texts and unit vectors, each its own case), without and then with the saved HNSW graph."""
    from wangge.serve.storage import CaseRow, MessageRow, Store, load_detector

    rng = np.random.default_rng(0)

    class StoredOnly:  # every stored message has its embedding: the encoder must not run
        def __init__(self) -> None:
            self.dim = dim

        def encode(self, texts: list[str]) -> np.ndarray:
            raise AssertionError("a stored embedding was missing")

    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{scratch}/restart.sqlite3")
        when = datetime(2020, 1, 1)
        for start in range(0, size, 10_000):
            count = min(10_000, size - start)
            codes = rng.integers(0x4E00, 0x4E00 + 3000, size=(count, 60))
            vectors = rng.standard_normal((count, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with store.session() as session:
                for i, (row, vector) in enumerate(zip(codes, vectors, strict=True)):
                    text, id_ = "".join(map(chr, row)), start + i + 1
                    session.add(CaseRow(id=id_, title=text[:12], first_at=when, last_at=when))
                    session.add(MessageRow(id=id_, title=text[:12], content=text, created_at=when,
                                           case_id=id_, embedding=vector.tobytes()))  # fmt: skip
        snapshot = Path(scratch) / "restart.hnsw"
        say("\n| start-up from a store | messages | from the saved graph | seconds |")
        say("|---|---|---|---|")
        for label in ("rebuilding the HNSW graph", "with the graph saved at shutdown"):
            detector = DuplicateDetector(StoredOnly(), entities=False)
            started = time.perf_counter()
            count, restored = load_detector(store, detector, snapshot)
            say(f"| {label} | {count:,} | {restored:,} | {time.perf_counter() - started:.1f} |")
            detector.save_ann(snapshot)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--encoder", type=Path, default=default_encoder_dir())
    parser.add_argument("--fit", action="store_true", help="fit the pair weights (c)")
    parser.add_argument("--scale", help="comma-separated index sizes for lookup timing (d)")
    parser.add_argument("--restart", type=int, help="start-up time from a store of N (e)")
    parser.add_argument("--no-cli", action="store_true", help="skip (a), dedup in process")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="with --no-cli")
    args = parser.parse_args()
    if args.scale:
        scale([int(size) for size in args.scale.split(",")])
        return
    if args.restart:
        restart(args.restart)
        return
    data_dir = data_dir_with(args.data_dir, [MESSAGES_FILE, SILVER_FILE])
    if data_dir is None:
        raise SystemExit(2)
    encoder_dir = args.encoder if args.encoder.is_dir() else None
    if encoder_dir is None:
        note(f"{args.encoder} not found: lexical signals only")
    pairs = pd.read_csv(PAIRS_FILE)
    silver_clusters = json.loads((data_dir / SILVER_FILE).read_text(encoding="utf-8"))
    silver = {str(i): n for n, cluster in enumerate(silver_clusters) for i in cluster["留言编号"]}
    say("# Deduplication benchmark\n")
    if args.fit:
        data = load_messages(data_dir / MESSAGES_FILE)
        messages = dedup_messages(data, message_times(data))
        labelled = pd.concat([pairs, pd.read_csv(HELDOUT_FILE)], ignore_index=True)
        fit(DuplicateDetector(load_encoder(encoder_dir)), messages, labelled)
        return
    if args.no_cli:
        data = load_messages(data_dir / MESSAGES_FILE)
        messages = sorted(dedup_messages(data, message_times(data)), key=lambda m: m.time)
        detector = DuplicateDetector(load_encoder(encoder_dir), threshold=args.threshold)
        started = time.perf_counter()
        decisions = detector.add_many(messages)
        say(f"in process: {len(messages)} messages in {time.perf_counter() - started:.1f} s")
        case_of = {d.message_id: d.case_id for d in decisions}
    else:
        frame = run_cli(data_dir / MESSAGES_FILE, encoder_dir)
        case_of = dict(zip(frame["留言编号"], frame["case_id"], strict=True))
    say("\n## `hot_issue_pairs.csv` (batches 1-3)")
    evaluate(pairs, case_of, silver)
    say("\n## `hot_issue_pairs_heldout.csv` (batch 4)")
    evaluate(pd.read_csv(HELDOUT_FILE), case_of, silver)


if __name__ == "__main__":
    main()
