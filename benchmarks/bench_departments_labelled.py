"""Department routing on hand-labelled messages: the responsible department or a co-handler.

Run from the repository root::

    .venv/bin/python benchmarks/bench_departments_labelled.py [--model-dir M] [--part P]

``tests/fixtures/department_messages.csv`` holds 740 messages of the 萧山 kind, each labelled
with its responsible department and the acceptable co-handlers (written blind to the system;
see docs/benchmarks.md). ``--part`` chooses which are routed: ``design`` (the default),
``heldout`` and ``final`` (each scored once, then spent) or ``final2`` (200 written after
those, to be scored once, at the end of the work it judges). A routed
department is right when it is the responsible one or a co-handler; the street office
(属地) counts as ``{street}``. Reported: top-1 and top-3 with keyword rules only and with the
category model, per department function the top-1 misses, and the most frequent confusions
by the ``kind`` of message. With ``--model-dir`` the category probabilities come from that
model; otherwise one is trained on the data dir's ``train_tokenized.csv`` first (about 30 s).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
from common import REPO_ROOT, TRAIN_FILE, argument_parser, data_dir_with, note, say

from wangge.models.departments import STREET_PLACEHOLDER
from wangge.models.router import MessageRouter, Route
from wangge.nlp.registry import split_names
from wangge.pipeline import Message, Triage
from wangge.pipeline.artifact import load_model
from wangge.training.config import TrainConfig
from wangge.training.train import train

LABELLED = REPO_ROOT / "tests" / "fixtures" / "department_messages.csv"
STREET_FUNCTION = "属地"


def routed(route: Route) -> list[str]:
    """The route's departments by name, the street office as ``{street}``."""
    return [
        STREET_PLACEHOLDER if d.function == STREET_FUNCTION else d.department
        for d in route.departments
    ]


def right(departments: list[str], row: dict[str, str], k: int) -> bool:
    acceptable = {row["department"], *split_names(row["co_handlers"])}
    return any(d in acceptable for d in departments[:k])


def category_model(model_dir: Path | None, data_dir: Path | None, scratch: Path) -> object:
    if model_dir is None:
        if data_dir is None:
            raise SystemExit(2)
        note("training a category model on train_tokenized.csv …")
        model_dir = scratch / "model"
        train(
            TrainConfig(data=data_dir / TRAIN_FILE, model_dir=model_dir,
                        text_columns=["tokens"], label_column="一级标签"),
            progress=note,
        )  # fmt: skip
    return load_model(model_dir)[0]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, help="category model (default: train one)")
    parser.add_argument(
        "--part",
        choices=("design", "heldout", "final", "final2"),
        default="design",
        help="which part",
    )
    args = parser.parse_args()
    part = args.part
    frame = pd.read_csv(LABELLED, dtype=str, keep_default_na=False)
    frame = frame[frame["split"] == part].reset_index(drop=True)
    data_dir = None if args.model_dir else data_dir_with(args.data_dir, [TRAIN_FILE])
    router = MessageRouter.load(ner=False)
    rows = frame.to_dict("records")
    messages = [{"title": row["title"], "content": row["content"]} for row in rows]
    with tempfile.TemporaryDirectory() as scratch:
        model = category_model(args.model_dir, data_dir, Path(scratch))
        texts = [f"{m['title']}\n{m['content']}" for m in messages]
        results = Triage(model).pipe([Message(content=text) for text in texts])
    categories = [dict(r.prediction.top) if r.prediction else None for r in results]
    runs = {
        "routing table, keywords only": router.route_many(messages),
        "routing table + category model": router.route_many(messages, categories=categories),
    }
    say(f"# Department routing on {len(frame)} labelled messages ({part} part of {LABELLED.name})")
    say("\n| routing | top-1 | top-3 |\n|---|---|---|")
    for label, routes in runs.items():
        names = [routed(route) for route in routes]
        top1 = sum(right(n, row, 1) for n, row in zip(names, rows, strict=True)) / len(rows)
        top3 = sum(right(n, row, 3) for n, row in zip(names, rows, strict=True)) / len(rows)
        say(f"| {label} | {top1:.3f} | {top3:.3f} |")
    names = [routed(route) for route in runs["routing table + category model"]]
    misses = [(row, n) for n, row in zip(names, rows, strict=True) if not right(n, row, 1)]
    say(f"\nTop-1 misses with the category model: {len(misses)}")
    confusions = Counter((row["department"], n[0] if n else "(none)") for row, n in misses)
    say("Most frequent (responsible → routed top-1):")
    for (gold, got), count in confusions.most_common(15):
        say(f"- {gold} → {got}: {count}")
    kinds = Counter(row["kind"].split()[0] for row, _ in misses)
    say("Misses by kind: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))


if __name__ == "__main__":
    main()
