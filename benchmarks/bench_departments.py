"""Benchmark of department routing against the offices named in real government replies.

Run from the repository root::

    .venv/bin/python benchmarks/bench_departments.py [--model-dir M]

``unlabeled_messages_with_replies.csv`` holds 2,816 messages with the reply of the office that
handled them. The reply often names that office (…教育局, 街道办事处 …); the routing table's
``office_patterns`` map such names to a function (教育, 属地 …), so that an office of this
anonymised city and a department of 萧山区 compare. The gold of a message is the first
function its reply names; messages whose reply names none (我局 …) are left out.

Reported: coverage, top-1 and top-3 agreement of the routed departments' functions, the same
with keyword rules only (no classifier), and with a learned department classifier added: the
reply-derived departments of one half train it (``wangge train --department-column`` runs
the same code) and the other half is scored, then the halves swap (2-fold). Then the most
frequent disagreements. With ``--model-dir`` the category probabilities come from that
model; otherwise a model is trained on ``train_tokenized.csv`` first (about 30 s).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from common import TRAIN_FILE, argument_parser, data_dir_with, note, say

from wangge.batch.files import load_messages
from wangge.models.departments import STREET_PLACEHOLDER, UNKNOWN_STREET, RoutingTable
from wangge.models.router import MessageRouter
from wangge.nlp.fields import message_text
from wangge.pipeline import Message, Triage
from wangge.pipeline.artifact import load_model
from wangge.training.config import TrainConfig
from wangge.training.train import train

REPLIES_FILE = "unlabeled_messages_with_replies.csv"


def local_routes(
    router: MessageRouter,
    messages: list[dict[str, str]],
    categories: Sequence[Mapping[str, float] | None] | None = None,
    learned: Sequence[Mapping[str, float] | None] | None = None,
) -> tuple[list[list[str]], int]:
    """The functions of each message's departments, as if every message were the district's,
    and how many the router forwards elsewhere.

    The replies come from the one city that answered the messages (A市), so every message is
    local there; the router forwards some (a place elsewhere mentioned in passing, an
    anonymised name that reads as one), and those are routed by the table as local messages.
    """
    routes = router.route_many(messages, categories=categories, learned=learned)
    functions, forwarded = [], 0
    for index, route in enumerate(routes):
        departments = route.departments
        if route.location.out_of_area:
            forwarded += 1
            message = router.extractor.normalized(messages[index])
            departments = router.table.route(
                message_text((message.get("title"), message.get("content"))),
                categories=categories[index] if categories is not None else None,
                learned=learned[index] if learned is not None else None,
            )
        functions.append([d.function for d in departments])
    return functions, forwarded


def agreement(routes: list[list[str]], gold: list[str]) -> tuple[float, float]:
    top1 = sum(bool(r) and r[0] == g for r, g in zip(routes, gold, strict=True)) / len(gold)
    top3 = sum(g in r[:3] for r, g in zip(routes, gold, strict=True)) / len(gold)
    return top1, top3


def cross_fitted_departments(
    texts: list[str], gold: list[str], table: RoutingTable
) -> list[dict[str, float]]:
    """Department probabilities of each message from a classifier trained on the other half.

    The gold function becomes the table's department of that function (属地 the unknown
    street's office), so that the classifier's labels are departments the router knows.
    """
    name_of = {}
    for department in table.departments.values():
        name = UNKNOWN_STREET if department.name == STREET_PLACEHOLDER else department.name
        name_of.setdefault(department.function, name)
    labels = [name_of[function] for function in gold]
    halves = [list(range(0, len(texts), 2)), list(range(1, len(texts), 2))]
    learned: list[dict[str, float]] = [{} for _ in texts]
    with tempfile.TemporaryDirectory() as scratch:
        for fold, (fit, score) in enumerate([(halves[0], halves[1]), (halves[1], halves[0])]):
            source = Path(scratch) / f"fold{fold}.csv"
            pd.DataFrame(
                {"text": [texts[i] for i in fit], "部门": [labels[i] for i in fit]}
            ).to_csv(source, index=False)
            counts = pd.Series([labels[i] for i in fit]).value_counts()
            keep = set(counts[counts >= 4].index)  # the hold-out split needs a few per class
            frame = pd.read_csv(source)
            frame[frame["部门"].isin(keep)].to_csv(source, index=False)
            note(f"fold {fold}: training a department classifier on {len(fit)} replies …")
            directory = Path(scratch) / f"model{fold}"
            train(
                TrainConfig(data=source, model_dir=directory, label_column="部门"),
                progress=lambda _line: None,
            )
            model, _meta = load_model(directory)
            results = Triage(model).pipe([Message(content=texts[i]) for i in score])
            for index, result in zip(score, results, strict=True):
                assert result.prediction is not None
                learned[index] = dict(result.prediction.top)
    return learned


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, help="category model (default: train one)")
    args = parser.parse_args()
    data_dir = data_dir_with(args.data_dir, [REPLIES_FILE, TRAIN_FILE])
    if data_dir is None:
        raise SystemExit(2)
    router = MessageRouter.load(ner=False)
    table = router.table
    replies = load_messages(data_dir / REPLIES_FILE, text_columns=["留言主题", "留言详情"])
    frame = replies.frame
    kept = []
    gold = []
    named_counts = Counter()
    for index, reply in enumerate(frame["答复意见"]):
        functions = table.functions_named(reply)
        named_counts[min(len(functions), 3)] += 1
        if functions:
            kept.append(index)
            gold.append(functions[0])
    say(f"# Department routing vs. offices named in {REPLIES_FILE}")
    say(
        f"{len(frame)} messages; the reply names an office of a known function for {len(kept)} "
        f"({len(kept) / len(frame):.0%}); it names 1 / 2 / 3+ functions for "
        f"{named_counts[1]} / {named_counts[2]} / {named_counts[3]} messages"
    )
    model_dir = args.model_dir
    with tempfile.TemporaryDirectory() as scratch:
        if model_dir is None:
            note("training a category model on train_tokenized.csv …")
            model_dir = Path(scratch) / "model"
            train(
                TrainConfig(
                    data=data_dir / TRAIN_FILE,
                    model_dir=model_dir,
                    text_columns=["tokens"],
                    label_column="一级标签",
                ),
                progress=note,
            )
        model, _meta = load_model(model_dir)
        texts = [replies.texts[i] for i in kept]
        results = Triage(model).pipe([Message(content=text) for text in texts])
        predictions = [r.prediction for r in results if r.prediction is not None]
    messages = [{"title": frame["留言主题"][i], "content": frame["留言详情"][i]} for i in kept]
    started = time.perf_counter()
    categories = [dict(p.top) for p in predictions]
    with_category, forwarded = local_routes(router, messages, categories)
    seconds = time.perf_counter() - started
    keywords_only, _ = local_routes(router, messages)
    learned = cross_fitted_departments(texts, gold, table)
    with_learned, _ = local_routes(router, messages, categories, learned)
    say()
    say("| routing | top-1 agreement | top-3 agreement |")
    say("|---|---|---|")
    for label, functions in [
        ("routing table, keywords only", keywords_only),
        ("routing table + category model", with_category),
        ("… + department classifier (2-fold on replies)", with_learned),
    ]:
        top1, top3 = agreement(functions, gold)
        say(f"| {label} | {top1:.3f} | {top3:.3f} |")
    functions = with_category
    say(
        f"\nrouted {len(messages)} messages in {seconds:.2f}s; {forwarded} read as out of area "
        "(A市's anonymised places, cities named in passing) are scored as routed locally"
    )
    say("\nGold functions: " + ", ".join(f"{f} {n}" for f, n in Counter(gold).most_common()))
    misses = Counter(
        (g, r[0] if r else "(none)")
        for r, g in zip(functions, gold, strict=True)
        if not r or r[0] != g
    )
    say("Most frequent disagreements (reply's office → routed top-1):")
    for (g, r), n in misses.most_common(12):
        say(f"- {g} → {r}: {n}")


if __name__ == "__main__":
    main()
