"""Load test of ``POST /v1/messages``: concurrent clients for a while, then a SIGKILL mid-load.

Run from the repository root with a model written by ``wangge train`` (``scripts/demo.sh``
writes ``model_store/demo``)::

    .venv/bin/python benchmarks/load_ingest.py --model-dir model_store/demo [--clients 20]
        [--seconds 60] [--database-url URL]

1. starts ``wangge serve`` on a free loopback port with a fresh database (a temporary SQLite
   file unless ``--database-url``; the sentence encoder of ``WANGGE_ENCODER_DIR`` or
   ``$WANGGE_HOME/e5-small`` when it exists), and ``--clients`` threads each post single
   messages (the shipped demo messages, each with a new id) for ``--seconds``: prints the
   requests, failures, messages/s and latency percentiles;
2. starts the server again on the same database, loads it the same way and kills it with
   SIGKILL halfway through; then reads the database and prints how many of the messages the
   server acknowledged (HTTP 200) are stored: every one must be.

Exits 1 when a request fails in part 1 or an acknowledged message is missing in part 2.
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_api import HOST, free_port, milliseconds, start_server, stop, wait_healthy
from common import REPO_ROOT, argument_parser, note, say
from sqlalchemy import create_engine, text

from wangge.batch.files import read_table
from wangge.serve.auth import create_key
from wangge.serve.storage import Store

DEMO_MESSAGES = REPO_ROOT / "data" / "demo" / "messages.csv"


def demo_bodies() -> list[dict[str, Any]]:
    frame = read_table(DEMO_MESSAGES)
    return [
        {"title": str(row["留言主题"]), "content": str(row["留言详情"])}
        for _, row in frame.iterrows()
    ]


class Load:
    """``clients`` threads posting messages until :meth:`stop`; each keeps what it saw."""

    def __init__(self, base_url: str, clients: int, run: str, headers: dict[str, str]) -> None:
        self.base_url, self.clients, self.run, self.headers = base_url, clients, run, headers
        self.bodies = demo_bodies()
        self.latencies: list[float] = []
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(t,)) for t in range(clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self, thread: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=120.0, headers=self.headers) as client:
            sent = 0
            while not self._stop.is_set():
                id_ = f"{self.run}-{thread}-{sent}"
                body = self.bodies[(thread * 7919 + sent) % len(self.bodies)] | {"id": id_}
                sent += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/messages", json=body)
                except httpx.TransportError as error:
                    with self._lock:
                        self.failures.append(f"{id_}: {error!r}")
                    continue
                latency = time.perf_counter() - started
                with self._lock:
                    if response.status_code == 200:
                        self.acknowledged.append(id_)
                        self.latencies.append(latency)
                    else:
                        failure = f"{id_}: HTTP {response.status_code} {response.text[:200]}"
                        self.failures.append(failure)


def serve(
    model_dir: Path, env: dict[str, str], log_path: Path, headers: dict[str, str]
) -> tuple[Any, str]:
    port = free_port()
    log = log_path.open("ab")
    server = start_server(model_dir, port, log, env)
    base_url = f"http://{HOST}:{port}"
    if wait_healthy(server, base_url) is None:
        stop(server)
        raise SystemExit(f"the server did not start; see {log_path}")
    warmup = {"id": f"warmup-{port}", "content": "路灯坏了"}
    httpx.post(f"{base_url}/v1/messages", json=warmup, headers=headers, timeout=300)
    return server, base_url


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "model_store" / "demo")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if not args.model_dir.is_dir():
        note(f"no model at {args.model_dir}: run `bash scripts/demo.sh` or pass --model-dir")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="wangge-load-"))
    url = args.database_url or f"sqlite:///{scratch / 'load.sqlite3'}"
    env = {"WANGGE_DATABASE_URL": url, "WANGGE_LOG_LEVEL": "warning"}
    log_path = scratch / "server.log"
    headers = {"X-API-Key": create_key(Store(url), f"load-test-{scratch.name}")}
    say(f"# Ingest load test: {args.clients} clients, {args.seconds:.0f} s, {url}\n")

    server, base_url = serve(args.model_dir, env, log_path, headers)
    load = Load(base_url, args.clients, "steady", headers).start()
    time.sleep(args.seconds)
    load.stop()
    stop(server)
    done = len(load.acknowledged)
    say(f"1. steady load: {done} messages stored in {args.seconds:.0f} s "
        f"({done / args.seconds:.1f}/s), {len(load.failures)} failed requests; latency "
        f"{milliseconds(np.array(load.latencies))}")  # fmt: skip
    for failure in load.failures[:5]:
        say(f"   - {failure}")

    server, base_url = serve(args.model_dir, env, log_path, headers)
    crash = Load(base_url, args.clients, "crash", headers).start()
    time.sleep(args.seconds / 2)
    server.send_signal(signal.SIGKILL)
    server.wait()
    crash.stop()
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = {row[0] for row in connection.execute(text("SELECT external_id FROM messages"))}
    missing = [id_ for id_ in crash.acknowledged if id_ not in stored]
    say(f"2. SIGKILL after {args.seconds / 2:.0f} s: {len(crash.acknowledged)} messages "
        f"acknowledged, {len(crash.acknowledged) - len(missing)} of them in the database, "
        f"{len(missing)} missing; {len(crash.failures)} requests cut off or refused once "
        "it died")  # fmt: skip
    say(f"\nserver log: {log_path}")
    return 1 if load.failures or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
