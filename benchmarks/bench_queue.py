"""How much of an ingest the review queue takes, per reason, and whether every task has
evidence a reviewer can act on (issue 17).

Run from the repository root with a model written by ``wangge train``::

    .venv/bin/python benchmarks/bench_queue.py --model-dir model_store/demo \\
        --data data/demo/messages.csv
    .venv/bin/python benchmarks/bench_queue.py --model-dir M \\
        --data ../shared/data/tipdm2020c/unlabeled_hot_issue_messages.csv [--flag-share 0.25]

It ingests the file's messages (留言编号, 留言主题, 留言详情, and 留言时间 / 留言用户 when
present) through the service in process, in batches of 64, into a temporary SQLite database,
then prints the dashboard's queue figures (``queued`` of ``GET /review/api/stats``): tasks and
their share of the messages, per reason, the messages that joined their case's open task, the
待定位 list; and the tasks whose reasons lack the evidence a person decides on (category: the
top categories; a place doubt: the route's evidence; a duplicate: the message it joined and the
score's parts). ``--flag-share S`` replaces the model's review threshold by the quantile of
these messages' confidences that flags a share S for category review (to see the queue under
a stricter threshold).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import say
from fastapi.testclient import TestClient
from sqlalchemy import select

from wangge.pipeline.artifact import load_model
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.migrate import open_store
from wangge.serve.review import queue_stats
from wangge.serve.storage import MessageRow, ReviewTaskRow

PLACE_REASONS = ("ambiguous_place", "conflicting_places", "out_of_area", "location")


def messages(path: Path) -> list[dict[str, Any]]:
    frame = pd.read_csv(path, dtype=str).fillna("")
    rows = []
    for _, row in frame.iterrows():
        message = {"id": row["留言编号"], "title": row.get("留言主题", ""),
                   "content": row.get("留言详情", "")}  # fmt: skip
        at = pd.to_datetime(row.get("留言时间", "").strip(), errors="coerce")
        if not pd.isna(at):
            message["created_at"] = at.isoformat()
        if row.get("留言用户", "").strip():
            message["reporter"] = row["留言用户"].strip()
        rows.append(message)
    return rows


def actionable(task: ReviewTaskRow, message: MessageRow) -> bool:
    result = message.result or {}
    for reason in task.reasons:
        if reason == "category" and not result.get("top_k"):
            return False
        if reason in PLACE_REASONS and not result.get("route_evidence"):
            return False
        if reason == "duplicate" and not (message.duplicate_of and result.get("dup_evidence")):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="the first N messages only")
    parser.add_argument("--flag-share", type=float, default=None)
    args = parser.parse_args()
    rows = messages(args.data)[: args.limit]
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'queue.sqlite3'}"
    open_store(url, upgrade=True)
    model, meta = load_model(args.model_dir)
    if args.flag_share is not None:
        texts = [f"{m['title']}\n{m['content']}" for m in rows]
        confidences = [p.confidence for p in model.predict_explained(texts)]
        model.review_threshold = float(np.quantile(confidences, args.flag_share))
        model.review_thresholds = None
        say(f"review threshold {model.review_threshold:.4f} for {args.flag_share:.0%} flagged")
    settings = Settings(database_url=url, model_dir=args.model_dir, api_keys=False)
    with TestClient(create_app(settings, model=model, meta=meta)) as client:
        for start in range(0, len(rows), 64):
            answer = client.post("/v1/messages", json={"messages": rows[start : start + 64]})
            assert answer.status_code == 200, answer.text[:500]
    with open_store(url).session() as session:
        queued = queue_stats(session)["queued"]
        tasks = session.execute(
            select(ReviewTaskRow, MessageRow).join(
                MessageRow, MessageRow.id == ReviewTaskRow.message_id
            )
        ).all()
        lacking = [task.id for task, message in tasks if not actionable(task, message)]
        sets = Counter(",".join(task.reasons) for task, _ in tasks)
    say(f"{len(rows)} messages: {queued['tasks']} tasks ({queued['task_share']:.1%}), "
          f"{queued['linked']} more messages joined their case's task, "
          f"{queued['unlocated']['listed']} on the 待定位 lists "
          f"({queued['unlocated']['share']:.1%})")  # fmt: skip
    say("per reason: " + json.dumps(queued["by_reason"], ensure_ascii=False))
    say(f"reason sets: {dict(sets.most_common())}")
    say(f"tasks without evidence a reviewer can act on: {len(lacking)} {lacking[:20]}")


if __name__ == "__main__":
    main()
