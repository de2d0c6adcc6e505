"""Benchmark of routing: location accuracy, messages per second, load time and memory.

Run from the repository root::

    .venv/bin/python benchmarks/bench_routing.py [--repeat 25]

a. accuracy on the two hand-written 萧山区 sets in ``tests/fixtures`` (street, community,
   out-of-area, leaks into a community, per kind of message), with the errors listed;
b. routing load time (registry, gazetteer with jionlp's national list, routing table);
c. throughput in process, with and without LAC tagging of doubtful locations, on both sets
   repeated ``--repeat`` times, and on the raw Teddy Cup dev messages (anonymised places, so
   nearly every message is doubtful and LAC runs on all: the worst case) when the data is there;
d. end to end: ``wangge route`` on the repeated sets, wall time and peak memory.

Needs no ``../shared`` data except for the Teddy Cup line of (c).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import DEV_FILE, REPO_ROOT, argument_parser, note, say, wangge_command

from wangge.batch.files import load_messages
from wangge.batch.messages import file_messages
from wangge.models.router import MessageRouter
from wangge.training.evaluate_files import evaluate_routing

FIXTURES = REPO_ROOT / "tests" / "fixtures"
SETS = ["routing_eval_xiaoshan.csv", "routing_heldout_xiaoshan.csv"]


def throughput(router: MessageRouter, messages: list[dict], label: str) -> None:
    router.route_many(messages[:20])  # warm up (LAC loads on first use)
    started = time.perf_counter()
    router.route_many(messages)
    seconds = time.perf_counter() - started
    say(f"| {label} | {len(messages)} | {len(messages) / seconds:,.0f} |")


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=25, help="copies of the sets for speed")
    args = parser.parse_args()

    say("# Routing benchmark\n")
    started = time.perf_counter()
    router = MessageRouter.load(ner=True)
    say(f"Routing loaded in {time.perf_counter() - started:.2f} s (in a warm process; "
        "the CLI line below includes Python start-up and imports).\n")  # fmt: skip

    say("| set | messages | street acc. | community acc. | out-of-area acc. | leaks |")
    say("|---|---|---|---|---|---|")
    all_messages: list[dict] = []
    frames = []
    evaluations = {}
    for name in SETS:
        data = load_messages(FIXTURES / name, text_columns=["title", "content"])
        messages = [message.routing_fields() for message in file_messages(data)]
        all_messages += messages
        frames.append(data.frame)
        result = evaluate_routing(data, router.route_many(messages, normalized=True))
        evaluations[name] = result
        say(
            f"| {name} | {result.messages} | {result.street_accuracy:.3f} | "
            f"{result.community_accuracy:.3f} | {result.out_of_area_accuracy:.3f} | "
            f"{result.leaks} |"
        )
    for name, result in evaluations.items():
        kinds = ", ".join(f"{kind} {c}/{n}" for kind, (c, n) in sorted(result.by_kind.items()))
        say(f"\n{name}, all three right by kind: {kinds}")
        for error in result.errors:
            say(f"- {error}")

    say("\n| throughput (in process) | messages | messages/s |")
    say("|---|---|---|")
    repeated = all_messages * args.repeat
    throughput(router, repeated, "fixture sets, LAC on doubtful locations")
    throughput(MessageRouter.load(ner=False), repeated, "fixture sets, no LAC")
    dev = REPO_ROOT / args.data_dir / DEV_FILE if not args.data_dir.is_absolute() else None
    dev = dev if dev is not None else args.data_dir / DEV_FILE
    if dev.is_file():
        dev_messages = [m.routing_fields() for m in file_messages(load_messages(dev))]
        throughput(router, dev_messages, "Teddy Cup dev (LAC on ~all: worst case)")
    else:
        note(f"{dev} not found: Teddy Cup line skipped")

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "messages.csv"
        pd.concat(frames * args.repeat).to_csv(source, index=False, encoding="utf-8")
        command = [wangge_command(), "route", str(source), "--output", str(Path(scratch) / "o.csv")]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    say(
        f"\n`wangge route` on {len(repeated)} messages: {seconds:.1f} s wall, "
        f"{len(repeated) / seconds:,.0f} messages/s including start-up; peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
