"""Case-level rules compared by cross-validation of the cases they build (issue 18, item 2).

Run from the repository root (both modes; ~10 minutes a rule on 2 cores)::

    .venv/bin/python benchmarks/bench_cases.py --data-dir /path/to/tipdm2020c \\
        [--encoder ~/.cache/wangge/e5-small] [--cache /tmp/casework_cache]

The cross-validation of ``wangge dedup fit`` (:func:`wangge.training.dedup_fit.cross_validate`)
with the case-level rule as one more choice: for each of the 10 folds of the labelled design
pairs (every ``benchmarks/data/hot_issue_pairs*.csv`` but the final file), logistic weights
fitted on the other nine build the cases of all 4,326 hot-issue messages under each rule
(:class:`wangge.models.cases.CaseRule`) and threshold, and the fold's pairs are judged by
whether both messages got one case (after any automatic merge). The former rule (the case of the
single best candidate) runs in the same folds. With weights fitted on all pairs, at each rule's
best threshold, the cases built over all messages: how many, the largest, and how many automatic
merges.

The embeddings and tagged names are kept in ``--cache`` (as ``wangge dedup fit``'s
:func:`~wangge.training.dedup_fit.prepare_modes` keeps them): a second run skips the encoder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from common import argument_parser, data_dir_with, design_pair_files, note, say

from wangge.batch.dedup import messages_in_time_order
from wangge.batch.files import load_messages
from wangge.home import default_encoder_dir, has_encoder
from wangge.models.cases import BEST_MEMBER, CaseRule
from wangge.models.dedup import DuplicateDetector, PairWeights
from wangge.pipeline.triage import load_encoder
from wangge.training.dedup_fit import FOLD_SEED, FOLDS, Mode, fit_weights, prepare_modes, prf
from wangge.training.dedup_fit import read_pairs as read_pair_files

MESSAGES_FILE = "unlabeled_hot_issue_messages.csv"
PAIR_FILES = design_pair_files()
THRESHOLDS = (0.4, 0.45, 0.5)
RULES = (
    BEST_MEMBER,  # the former rule: the case of the single best candidate
    CaseRule(support=0.34, first=True),
)
# Built with the weights fitted on all pairs only (no CV: each build takes ~10 s on 2 cores).
IN_SAMPLE_RULES = (
    *RULES,
    CaseRule(support=0.5, first=True, merge=False),
    CaseRule(support=1.0, first=True),
    CaseRule(support=0.5, first=True, centroid=0.93),
)
LARGEST_SHOWN = 5


def build(
    mode: Mode, weights: PairWeights, threshold: float, rule: CaseRule
) -> tuple[dict[str, str], int]:
    """The final case of every message under ``rule``, and how many automatic merges."""
    detector = DuplicateDetector(mode.encoder, weights=weights, threshold=threshold,
                                 case_rule=rule)  # fmt: skip
    decisions = detector.add_many(mode.messages, mode.features)
    merges = sum(len(d.merged) for d in decisions)
    return {m.id: detector.case_of(m.id) for m in mode.messages}, merges


def together(case_of: dict[str, str], pairs: pd.DataFrame) -> np.ndarray:
    return np.array([case_of[str(a)] == case_of[str(b)] for a, b in pairs[["id_a", "id_b"]].values])


def cross_validate(mode: Mode, pairs: pd.DataFrame) -> dict[tuple[CaseRule, float], np.ndarray]:
    """Per rule and threshold, whether each pair got one case, weights fitted without its fold
    (the folds of :func:`wangge.training.dedup_fit.cross_validate`)."""
    from sklearn.model_selection import StratifiedKFold

    y = pairs["same_case"].to_numpy() == 1
    predicted = {(r, t): np.zeros(len(y), dtype=bool) for r in RULES for t in THRESHOLDS}
    splits = StratifiedKFold(FOLDS, shuffle=True, random_state=FOLD_SEED).split(mode.x, y)
    for fold, (train, test) in enumerate(splits, 1):
        note(f"{mode.name}: fold {fold} of {FOLDS}")
        weights = fit_weights(mode, train, y)
        for rule in RULES:
            for threshold in THRESHOLDS:
                case_of, _merges = build(mode, weights, threshold, rule)
                predicted[rule, threshold][test] = together(case_of, pairs)[test]
    return predicted


def report(mode: Mode, pairs: pd.DataFrame) -> None:
    y = pairs["same_case"].to_numpy() == 1
    cv = cross_validate(mode, pairs)
    say(f"\n## {mode.name}: {FOLDS}-fold CV of the cases, per rule and threshold\n")
    say("| rule | " + " | ".join(f"F1 at {t}" for t in THRESHOLDS) + " | best: P / R / F1 |")
    say("|---|" + "---|" * (len(THRESHOLDS) + 1))
    best: dict[CaseRule, float] = {}
    for rule in RULES:
        figures = {t: prf(cv[rule, t], y) for t in THRESHOLDS}
        best[rule] = max(THRESHOLDS, key=lambda t: figures[t][2])
        p, r, f = figures[best[rule]]
        cells = " | ".join(f"{figures[t][2]:.3f}" for t in THRESHOLDS)
        say(f"| {rule.describe()} | {cells} | {best[rule]}: {p:.3f} / {r:.3f} / **{f:.3f}** |")
    weights = fit_weights(mode, np.arange(len(y)), y)
    say(f"\n### {mode.name}: cases over all {len(mode.messages)} messages, weights fitted on "
        f"all pairs, each rule at its best CV threshold\n")  # fmt: skip
    say("| rule | threshold | cases | automatic merges | largest cases | in-sample P / R / F1 |")
    say("|---|---|---|---|---|---|")
    for rule in IN_SAMPLE_RULES:
        threshold = best.get(rule, best[RULES[1]])
        case_of, merges = build(mode, weights, threshold, rule)
        sizes = Counter(case_of.values()).most_common(LARGEST_SHOWN)
        p, r, f = prf(together(case_of, pairs), y)
        say(f"| {rule.describe()} | {threshold} | {len(set(case_of.values()))} | {merges} | "
            f"{', '.join(str(n) for _, n in sizes)} | {p:.3f} / {r:.3f} / {f:.3f} |")  # fmt: skip


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--encoder", type=Path, default=default_encoder_dir())
    parser.add_argument("--cache", type=Path, default=Path("/tmp/casework_cache"))
    parser.add_argument("--mode", choices=("encoder", "lexical", "both"), default="both")
    args = parser.parse_args()
    data_dir = data_dir_with(args.data_dir, [MESSAGES_FILE])
    if data_dir is None:
        raise SystemExit(2)
    encoder_dir = args.encoder if has_encoder(args.encoder) else None
    pairs = read_pair_files(PAIR_FILES)
    _positions, messages = messages_in_time_order(load_messages(data_dir / MESSAGES_FILE))
    modes = prepare_modes(messages, pairs, load_encoder(encoder_dir), cache=args.cache)
    say("# Case-level rules")
    for mode in modes:
        if args.mode in (mode.name, "both"):
            report(mode, pairs)


if __name__ == "__main__":
    main()
