"""Pair models of the duplicate detector compared by cross-validation of the cases they build.

Run from the repository root (about 15 minutes on 2 cores with the encoder)::

    .venv/bin/python benchmarks/compare_dedup_models.py --data-dir /path/to/tipdm2020c \\
        [--pairs benchmarks/data/hot_issue_pairs.csv ...] [--cache /tmp/evidence_cache]

On the 4,326 hot-issue messages with the sentence encoder: for each of 10 folds of the
labelled pairs, each model (:data:`wangge.training.dedup_compare.MODELS`: the logistic
regression of the features before broad places were told apart, the logistic regression
``wangge dedup fit`` fits, gradient boosting) is fitted on the other folds and builds the cases
of all messages; the fold's pairs are judged by whether both messages got one case. Prints the
pairwise precision, recall and F1 at each threshold, and each model's F1 at its best
threshold minus the others' with a 95 % paired-bootstrap interval over the pairs. The
embeddings and tagged names are cached in ``--cache`` (computed once).
"""

from __future__ import annotations

from pathlib import Path

from common import REPO_ROOT, argument_parser, note, say

from wangge.batch.dedup import messages_in_time_order
from wangge.batch.files import load_messages
from wangge.home import default_encoder_dir
from wangge.pipeline.triage import load_encoder
from wangge.training.dedup_compare import MODELS, bootstrap_difference, compare
from wangge.training.dedup_fit import THRESHOLDS, prepare_modes, prf, read_pairs

MESSAGES_FILE = "unlabeled_hot_issue_messages.csv"
DEFAULT_PAIRS = [REPO_ROOT / "benchmarks" / "data" / name
                 for name in ("hot_issue_pairs.csv", "hot_issue_pairs_heldout.csv")]  # fmt: skip


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--encoder", type=Path, default=default_encoder_dir())
    parser.add_argument("--pairs", type=Path, action="append", help="labelled pairs (repeat)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/evidence_cache"))
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    data_dir = args.data_dir if args.data_dir.is_absolute() else REPO_ROOT / args.data_dir
    pairs = read_pairs(args.pairs or DEFAULT_PAIRS)
    data = load_messages(data_dir / MESSAGES_FILE)
    _positions, messages = messages_in_time_order(data)
    modes = prepare_modes(messages, pairs, load_encoder(args.encoder), cache=args.cache)
    mode = modes[-1]
    say(f"{len(pairs)} pairs ({int(pairs['same_case'].sum())} same case), "
        f"{len(messages)} messages, mode {mode.name}, {args.folds} folds")  # fmt: skip
    models = tuple(args.models.split(","))
    predicted = compare(mode, pairs, models=models, folds=args.folds, progress=note)
    gold = pairs["same_case"].to_numpy() == 1
    best = {}
    for name in models:
        for threshold in THRESHOLDS:
            p, r, f = prf(predicted[name][threshold], gold)
            say(f"{name:9} {threshold:.2f}  precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}")
        best[name] = max(THRESHOLDS, key=lambda t: prf(predicted[name][t], gold)[2])
    for name in models:
        for other in models:
            if other == name:
                continue
            a, b = predicted[name][best[name]], predicted[other][best[other]]
            difference, low, high = bootstrap_difference(a, b, gold)
            say(f"F1 {name}@{best[name]} − {other}@{best[other]}: {difference:+.3f} "
                f"[{low:+.3f}, {high:+.3f}]")  # fmt: skip


if __name__ == "__main__":
    main()
