"""Benchmark of calibrated auto-accept on raw messages (issue 17, item 1).

Run from the repository root::

    .venv/bin/python benchmarks/bench_autoaccept.py [--target 0.97]

Trains on ``train_tokenized.csv`` (the 7.8k labelled Teddy Cup set) with the real pipeline and
measures, on ``dev_raw_labeled.csv`` (667 raw messages), the accuracy of the auto-accepted
category predictions and the share sent to review:

a. the old method: one threshold chosen on the (segmented) hold-out at 0.95;
b. ``--calibration-data dev``: per-category thresholds at ``--target``, the figures
   cross-fitted out of fold (as recorded in meta.json), then as ``wangge evaluate`` prints them;
c. no calibration data: thresholds on the hold-out with its segmentation spaces removed,
   applied to dev, plainly and with the defaults (a global threshold, the error allowance
   divided by ``shift_factor``). Dev is unseen by the model and the thresholds, but the
   default ``shift_factor`` (2) was chosen after looking at dev: for it, dev is a consistency
   check, not an independent test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEV_FILE, TRAIN_FILE, argument_parser, data_dir_with, note, say, wangge_command

from wangge.batch.files import load_messages
from wangge.pipeline.artifact import load_model
from wangge.training.calibration import ThresholdRule, cross_fit
from wangge.training.config import ReviewConfig, TrainConfig
from wangge.training.evaluate_files import evaluate_file
from wangge.training.train import calibration_scores, train

LABEL_COLUMN = "一级标签"


def _train(data_dir: Path, model_dir: Path, review: ReviewConfig) -> dict:
    config = TrainConfig(
        data=data_dir / TRAIN_FILE,
        text_columns=["tokens"],
        label_column=LABEL_COLUMN,
        model_dir=model_dir,
        review=review,
    )
    result = train(config, progress=lambda message: note(f"  {message}"), overwrite=True)
    return result.meta.metrics["review"]


def _dev(model_dir: Path, dev: Path) -> str:
    return evaluate_file(model_dir, dev).auto_accept.describe()


def frontier(model_dir: Path, dev: Path, target: float) -> None:
    """Cross-fitted figures of other margins and of one global threshold, on the same scores
    (5 fold seeds: the mean, and the range of the accuracy)."""
    model, _ = load_model(model_dir)
    scored, _ = calibration_scores(model, load_messages(dev, require_label=True), note)
    say("| rule | z | accuracy (mean, min-max over 5 fold seeds) | review share |")
    say("|---|---:|---:|---:|")
    for z in (0.0, 0.25, 0.5, 1.0):
        for rule, minimum in (("per category (50)", 50), ("global only", None)):
            figures = [
                cross_fit(
                    scored.confidences, scored.predicted, scored.gold,
                    ThresholdRule(target, z, minimum), seed=seed,
                ).figures
                for seed in range(5)
            ]  # fmt: skip
            accuracy = [f.accuracy or 0.0 for f in figures]
            share = sum(f.review_share for f in figures) / len(figures)
            say(
                f"| {rule} | {z:g} | {sum(accuracy) / len(accuracy):.4f} "
                f"({min(accuracy):.4f}-{max(accuracy):.4f}) | {share:.1%} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--target", type=float, default=0.97, help="target accuracy")
    parser.add_argument("--z", type=float, default=ReviewConfig().z, help="Wilson margin")
    args = parser.parse_args(argv)
    data_dir = data_dir_with(args.data_dir, (TRAIN_FILE, DEV_FILE))
    if data_dir is None:
        return 2
    dev = data_dir / DEV_FILE
    with tempfile.TemporaryDirectory(prefix="bench_autoaccept_") as tmp:
        say("## a. old method: one threshold on the segmented hold-out, target 0.95")
        old = Path(tmp) / "old"
        review = ReviewConfig(accuracy=0.95, z=0, raw_holdout=False, shift_factor=1)
        recorded = _train(data_dir, old, review)
        say(f"hold-out estimate: {recorded['expected']}")
        say(f"on dev (raw): {_dev(old, dev)}")
        say()

        say(f"## b. --calibration-data {DEV_FILE}, target {args.target}, z {args.z}")
        calibrated = Path(tmp) / "calibrated"
        review = ReviewConfig(accuracy=args.target, z=args.z, calibration_data=dev)
        recorded = _train(data_dir, calibrated, review)
        say(f"thresholds: {recorded['thresholds']}")
        say(f"cross-fitted out of fold (meta.json): {recorded['expected']}")
        say(f"in-sample (not honest): {recorded['in_sample']}")
        say("other rules on the same dev scores, cross-fitted:")
        frontier(calibrated, dev, args.target)
        command = [wangge_command(), "evaluate", "--model-dir", str(calibrated), "--data", str(dev)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        tail = done.stdout.strip().splitlines()[-3:]
        say(f"`wangge evaluate --model-dir M --data {DEV_FILE}` says:")
        say("\n".join(f"    {line}" for line in tail))
        say()

        say(f"## c. no calibration data: hold-out without spaces, target {args.target}")
        for name, review in (
            ("as is (per category, no shift allowance)", ReviewConfig(
                accuracy=args.target, z=args.z, shift_factor=1, holdout_per_category=True
            )),
            ("default (global threshold, errors allowed / shift_factor)", ReviewConfig(
                accuracy=args.target, z=args.z
            )),
        ):  # fmt: skip
            raw_holdout = Path(tmp) / "raw_holdout"
            recorded = _train(data_dir, raw_holdout, review)
            say(f"### {name}, shift_factor {review.shift_factor:g}")
            say(
                f"thresholds: {recorded['thresholds']} (chosen at {recorded['chosen_at_accuracy']})"
            )
            say(f"cross-fitted on the despaced hold-out: {recorded['expected']}")
            say(
                f"meta.json expects on raw text: accuracy "
                f"{recorded['expected_auto_accept_accuracy']}, review share "
                f"{recorded['expected_review_share']:.1%}"
            )
            say(f"on dev (raw, unseen by the model and the thresholds): {_dev(raw_holdout, dev)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
