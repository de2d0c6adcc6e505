"""The once-only score of deduplication on pairs no design decision looked at.

Run from the repository root (about 2 minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_dedup_final.py --data-dir /path/to/tipdm2020c \\
        [--pairs benchmarks/data/final_pairs.csv] [--encoder DIR]

``wangge dedup`` with the shipped weights builds the cases of all 4,326 hot-issue messages,
with the sentence encoder (when ``--encoder`` or the default one exists) and without it; in
the same run a plain baseline builds cases the usual way: MinHash LSH over the character
3-grams of title and body (128 permutations, rensa's LSH at Jaccard 0.5), each candidate
pair whose estimated Jaccard reaches 0.5 linked, cases the connected components (union-find).
Each is judged on the labelled pairs: pairwise precision, recall and F1 of "same case" (both
messages of a pair in one case), also per level of the pairs (how many hard negatives were
kept apart).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from bench_dedup import MESSAGES_FILE, run_cli
from common import FINAL_PAIRS_FILE, argument_parser, data_dir_with, note, say
from rensa import RMinHash, RMinHashLSH

from wangge.home import default_encoder_dir, has_encoder
from wangge.models.dedup import dedup_text, shingles
from wangge.training.dedup_fit import prf

BASELINE_PERMUTATIONS = 128
BASELINE_JACCARD = 0.5
HARD_NEGATIVES = ("same_template_other_place", "same_place_other_problem")


def minhash_baseline(messages: pd.DataFrame) -> dict[str, str]:
    """Cases of plain MinHash LSH with union-find (see the module's docstring)."""
    ids = messages["留言编号"].astype(str).tolist()
    texts = [
        dedup_text(title, body)
        for title, body in zip(messages["留言主题"], messages["留言详情"], strict=True)
    ]
    hashes = []
    for text in texts:
        minhash = RMinHash(BASELINE_PERMUTATIONS, 0)
        minhash.update(sorted(shingles(text)) or [text])
        hashes.append(minhash)
    lsh = RMinHashLSH(BASELINE_JACCARD, BASELINE_PERMUTATIONS, 32)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row, minhash in enumerate(hashes):
        for other in lsh.query(minhash):
            if minhash.jaccard(hashes[other]) >= BASELINE_JACCARD:
                parent[root(row)] = root(other)
        lsh.insert(row, minhash)
    return {ids[i]: ids[root(i)] for i in range(len(ids))}


def judge(label: str, pairs: pd.DataFrame, case_of: dict[str, str]) -> None:
    """One row of the table: precision, recall and F1 of ``case_of`` on ``pairs``, and the
    share of the hard negatives kept apart."""
    gold = pairs["same_case"].to_numpy() == 1
    joined = np.array(
        [case_of[str(a)] == case_of[str(b)] for a, b in pairs[["id_a", "id_b"]].values]
    )
    sure = pairs["unsure"].to_numpy() == 0
    hard = pairs["level"].isin(HARD_NEGATIVES).to_numpy() & ~gold
    p, r, f = prf(joined, gold)
    ps, rs, fs = prf(joined[sure], gold[sure])
    apart = f"{int((~joined[hard]).sum())} of {int(hard.sum())}"
    say(f"| {label} | {p:.3f} | {r:.3f} | {f:.3f} | {ps:.3f} / {rs:.3f} / {fs:.3f} | {apart} |")


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--pairs", type=Path, default=FINAL_PAIRS_FILE, help="labelled pairs to judge"
    )
    parser.add_argument("--encoder", type=Path, default=None, help="sentence encoder directory")
    args = parser.parse_args()
    data_dir = data_dir_with(args.data_dir, [MESSAGES_FILE])
    if data_dir is None:
        return 2
    pairs = pd.read_csv(args.pairs)
    source = data_dir / MESSAGES_FILE
    messages = pd.read_csv(source, dtype=str, keep_default_na=False)
    counts = pairs["level"].value_counts().to_dict()
    say(f"{len(pairs)} pairs of {args.pairs.name}: {int(pairs['same_case'].sum())} same case; "
        f"levels {counts}\n")  # fmt: skip
    encoder = args.encoder or default_encoder_dir()
    runs = [("wangge dedup, lexical (no encoder)", None)]
    if has_encoder(encoder):
        runs.append(("wangge dedup, encoder", encoder))
    else:
        note(f"no encoder at {encoder}: the encoder mode is skipped")
    cases = {}
    for label, path in runs:
        frame = run_cli(source, path)
        cases[label] = dict(zip(frame["留言编号"], frame["case_id"], strict=True))
    say("\n| cases | precision | recall | F1 | sure pairs P / R / F1 | hard negatives apart |")
    say("|---|---|---|---|---|---|")
    judge("plain MinHash LSH + union-find (baseline)", pairs, minhash_baseline(messages))
    for label, case_of in cases.items():
        judge(label, pairs, case_of)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
