"""Hostile and heavy requests against the HTTP API: every one must answer in time, 2xx or a
clear 4xx, and the server's memory must stay bounded (issue 16).

Run from the repository root with a model written by ``wangge train`` (``scripts/demo.sh``
writes ``model_store/demo``)::

    .venv/bin/python benchmarks/bench_limits.py --model-dir model_store/demo \\
        [--data-dir ../shared/data/tipdm2020c] [--max-seconds 2] [--max-rss-mib 1024]

It starts ``wangge serve`` on a free loopback port with a temporary SQLite database and an API
key (the sentence encoder of ``WANGGE_ENCODER_DIR`` or ``$WANGGE_HOME/e5-small`` is loaded when
it exists, as the server does), sends one small unmeasured message to each endpoint (the
server's first request), then sends each of these to ``POST /v1/classify`` and to
``POST /v1/messages`` (ingest), one at a time:

1. ``address``: a short message whose ``address`` is 200 KiB of place names (UTF-8);
2. ``place names``: one message of ``--max-chars`` characters of place names (城厢 repeated,
   with the shipped district's street and community names mixed in: the worst case known for
   location);
3. ``dev messages``: a batch of ``--batch-size`` dev messages as they are (the usual case,
   printed with its messages/s: a throughput figure, not held to ``--max-seconds``; a full
   batch of ordinary messages is no attack, and ingest scores about 90 to 130 a second);
4. ``budget``: as many maximal messages (below) as fit in ``--max-request-chars`` (the
   server's ``max_request_chars``, the characters it accepts in one request): the largest
   request it must answer;
5. ``all title``: the same messages with all their text in the title, which the location
   tagger (LAC), dedup's title 3-grams and the sentence encoder read (once took 54 s);
6. ``batch``: ``--batch-size`` messages of ``--max-chars`` characters each, realistic text
   (the dev messages of ``dev_raw_labeled.csv`` one after another, each message starting at
   another one);
7. ``batch + 1 char``: the same batch with one character more in its last message, which
   must be refused (too long) rather than scored.

For each request it prints the status, the latency and, for a 4xx, the server's message; then
the server's peak resident memory (``VmHWM`` from ``/proc``) after start-up and after all of
them. ``--max-chars``
and ``--batch-size`` default to the server's own limits (``max_text_chars`` and
``max_batch_size``), read from the environment (``WANGGE_*``) as the server reads them; a
batch refused for its total size (``max_request_chars``) passes as a clear 4xx.

Exits 1 when an answer (but the usual case's) took more than ``--max-seconds``, or any was a
5xx (or no answer), or when the peak RSS is above ``--max-rss-mib``; 2 when the server or the
data is missing.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_api import StartupError, dev_messages, peak_rss_mib, running_server
from common import argument_parser, note, say

from wangge.nlp.registry import default_district_dir
from wangge.serve.config import Settings

REQUEST_TIMEOUT_S = 300.0  # long enough to measure a slow answer rather than give up on it
ADDRESS_BYTES = 200 * 1024
USUAL = "usual batch"  # the request held to no time bound
ENDPOINTS = ("/v1/classify", "/v1/messages")


@dataclass(frozen=True)
class Answer:
    """What the server answered to one request."""

    what: str
    endpoint: str
    status: int | None  # None: no answer (timeout, connection lost)
    seconds: float
    message: str  # a 4xx's detail, a 5xx's body or the transport error; "" for a 2xx


def place_names() -> list[str]:
    """The shipped district's street and community names (城厢街道, …)."""
    with (default_district_dir() / "units.csv").open(encoding="utf-8") as units:
        return [row["name"] for row in csv.DictReader(units) if row["level"] != "district"]


def place_text(chars: int) -> str:
    """``chars`` characters of place names: 城厢 runs with a real name after each."""
    parts = []
    for name in itertools.cycle(place_names()):
        parts.append("城厢" * 20 + name)
        if sum(map(len, parts)) >= chars:
            break
    return "".join(parts)[:chars]


def address_of(size: int) -> str:
    """Place names whose UTF-8 encoding is ``size`` bytes (a stray byte is padded with 'x')."""
    encoded = place_text(size).encode("utf-8")[:size].decode("utf-8", "ignore")
    return encoded + "x" * (size - len(encoded.encode("utf-8")))


def maximal_batch(dev: list[dict[str, str]], size: int, chars: int) -> list[dict[str, str]]:
    """``size`` messages of exactly ``chars`` characters (title and content), each a run of
    dev messages starting at another one."""
    texts = [f"{m['title']}\n{m['content']}" for m in dev]
    batch = []
    for index in range(size):
        start = index % len(texts)
        run = ""
        for text in itertools.islice(itertools.cycle(texts), start, None):
            run += text
            if len(run) >= chars:
                break
        title = dev[start]["title"][:100]
        batch.append({"title": title, "content": run[: chars - len(title)]})
    return batch


def requests(args: argparse.Namespace, dev: list[dict[str, str]]) -> list[tuple[str, dict]]:
    """The named request bodies, without ids (each endpoint's copy gets its own)."""
    size, chars = args.batch_size, args.max_chars
    batch = maximal_batch(dev, size, chars)
    longer = [*batch[:-1], {**batch[-1], "content": batch[-1]["content"] + "。"}]
    fitting = min(size, args.max_request_chars // chars)
    return [
        ("address", {"title": "路灯不亮", "address": address_of(ADDRESS_BYTES)}),
        ("place names", {"content": place_text(chars)}),
        (f"{USUAL} {size} dev messages", {"messages": [_as_sent(m) for m in dev[:size]]}),
        (f"batch {fitting} x {chars} (budget)", {"messages": batch[:fitting]}),
        ("the same, all title", {"messages": [_all_title(m) for m in batch[:fitting]]}),
        (f"batch {size} x {chars}", {"messages": batch}),
        ("batch + 1 char", {"messages": longer}),
    ]


def _as_sent(message: dict[str, str]) -> dict[str, str]:
    """A dev message without its id (:func:`with_ids` gives a fresh one)."""
    return {"title": message["title"], "content": message["content"]}


def _all_title(message: dict[str, str]) -> dict[str, str]:
    """``message`` with its text all in the title, which LAC, dedup's title 3-grams and the
    sentence encoder read (its start only, since the title is unbounded)."""
    return {"title": message["title"] + message["content"]}


def with_ids(body: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``body`` with fresh message ids (ingest stores every new id)."""
    if "messages" in body:
        return {"messages": [{**m, "id": f"{prefix}-{i}"} for i, m in enumerate(body["messages"])]}
    return {**body, "id": prefix}


def detail(response: httpx.Response) -> str:
    """A refusal's message: the ``detail`` string, or the ``msg`` of the first error."""
    try:
        found = response.json().get("detail", response.text)
    except ValueError:
        return response.text[:300]
    if isinstance(found, list) and found:
        more = f" (and {len(found) - 1} more errors)" if len(found) > 1 else ""
        return f"{found[0].get('msg', found[0])} at {found[0].get('loc')}{more}"
    return str(found)[:300]


def send(client: httpx.Client, what: str, endpoint: str, body: dict[str, Any]) -> Answer:
    started = time.perf_counter()
    try:
        response = client.post(endpoint, json=body)
    except httpx.HTTPError as error:
        return Answer(what, endpoint, None, time.perf_counter() - started, repr(error))
    seconds = time.perf_counter() - started
    message = "" if response.is_success else detail(response)
    return Answer(what, endpoint, response.status_code, seconds, message)


def failed(answer: Answer, max_seconds: float) -> bool:
    too_slow = answer.seconds > max_seconds and not answer.what.startswith(USUAL)
    return too_slow or answer.status is None or not 200 <= answer.status < 500


def warm(base_url: str, headers: dict[str, str]) -> None:
    """One small message to each endpoint: the server's first requests, unmeasured."""
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=headers) as client:
        for endpoint in ENDPOINTS:
            client.post(endpoint, json={"id": "warm-up", "title": "城厢街道路灯不亮"})


def run(base_url: str, headers: dict[str, str], args: argparse.Namespace, dev: list) -> list:
    """Send every request to both endpoints, one at a time; the answers in order."""
    answers = []
    bodies = requests(args, dev)
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=headers) as client:
        for (what, body), endpoint in itertools.product(bodies, ENDPOINTS):
            answer = send(client, what, endpoint, with_ids(body, f"{what}-{time.time_ns()}"))
            verdict = "FAIL" if failed(answer, args.max_seconds) else "ok"
            rate = len(body["messages"]) / answer.seconds if what.startswith(USUAL) else None
            say(
                f"{verdict:4} {endpoint:13} {what:28} {answer.status or '-'} "
                f"{answer.seconds:6.2f} s  {answer.message}"
                + (f" {rate:.0f} messages/s" if rate else "")
            )
            answers.append(answer)
    return answers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = Settings()  # the server's limits, as its environment sets them
    parser = argument_parser(__doc__)
    add = parser.add_argument
    add("--model-dir", type=Path, required=True, help="model written by `wangge train`")
    add("--max-chars", type=int, default=settings.max_text_chars, help="characters a message")
    add("--batch-size", type=int, default=settings.max_batch_size, help="messages a batch")
    add(
        "--max-request-chars",
        type=int,
        default=settings.max_request_chars,
        help="characters a request (the server's max_request_chars): a batch of the most "
        "maximal messages within it is sent too",
    )
    add("--max-seconds", type=float, default=2.0, help="slowest acceptable answer")
    add("--max-rss-mib", type=float, default=1024.0, help="highest acceptable VmHWM")
    args = parser.parse_args(argv)
    if args.max_chars < 100 or args.batch_size < 1:
        parser.error("--max-chars must be at least 100 and --batch-size at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dev = dev_messages(args.data_dir)
    if dev is None:
        return 2
    try:
        with running_server(args.model_dir, "wangge-bench-limits-") as running:
            server, base_url, headers = running.server, running.base_url, running.headers
            say(running.describe())
            warm(base_url, headers)
            started = peak_rss_mib(server.pid) or 0.0
            say(f"peak RSS (VmHWM) after start-up and a message to each endpoint {started:.0f} MiB")
            answers = run(base_url, headers, args, dev)
            peak = peak_rss_mib(server.pid)  # before stopping: /proc goes with the process
    except StartupError as error:
        note(f"error: {error}")
        return 2
    say(f"\nserver peak RSS (VmHWM) {peak:.0f} MiB" if peak is not None else "VmHWM unavailable")
    failures = [a for a in answers if failed(a, args.max_seconds)]
    too_big = peak is None or peak > args.max_rss_mib
    say(
        f"{len(failures)} of {len(answers)} answers slower than {args.max_seconds:g} s or not "
        f"2xx/4xx; peak RSS {'above' if too_big else 'within'} {args.max_rss_mib:.0f} MiB"
    )
    return 1 if failures or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
