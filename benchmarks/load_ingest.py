"""Load test of ``POST /v1/messages``: concurrent clients, one long message among them, then a
SIGKILL mid-load.

Run from the repository root with a model written by ``wangge train`` (``scripts/demo.sh``
writes ``model_store/demo``)::

    .venv/bin/python benchmarks/load_ingest.py --model-dir model_store/demo [--clients 20]
        [--seconds 60] [--database-url URL]

Each part starts ``wangge serve`` on a free loopback port (a fresh temporary SQLite database
per part unless ``--database-url``; the sentence encoder of ``WANGGE_ENCODER_DIR`` or
``$WANGGE_HOME/e5-small`` when it exists), and ``--clients`` threads each post single messages
(the shipped demo messages, each with a new id):

1. steady load for ``--seconds``: prints the requests, failures, messages/s, latency
   percentiles and how long the server held its ingest lock (p50, p99 and max of every hold,
   which the server logs when it stops);
2. the same with one more message of ``--long-chars`` characters (place names: 城厢城厢…, the
   worst case known for location) sent in the middle: prints the others' latency over the
   whole run and over the requests in flight with it, and their difference from part 1 (the
   acceptance: one such message raises the others' p95 by less than 50 ms);
3. starts the server again on the database of part 2, loads it the same way and kills it with
   SIGKILL halfway through; then reads the database and prints how many of the messages the
   server acknowledged (HTTP 200) are stored: every one must be.

Exits 1 when a request fails in parts 1 and 2 or an acknowledged message is missing in part 3.
"""

from __future__ import annotations

import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_api import HOST, free_port, milliseconds, start_server, stop, wait_healthy
from common import REPO_ROOT, argument_parser, note, say
from sqlalchemy import create_engine, text

from wangge.batch.files import read_table
from wangge.serve.auth import create_key
from wangge.serve.migrate import open_store

DEMO_MESSAGES = REPO_ROOT / "data" / "demo" / "messages.csv"
ACCEPTED_P95_RISE_MS = 50.0
LOCK_LOG = re.compile(
    r"ingest lock held (\d+) times: p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms"
)


def demo_bodies() -> list[dict[str, Any]]:
    frame = read_table(DEMO_MESSAGES)
    return [
        {"title": str(row["留言主题"]), "content": str(row["留言详情"])}
        for _, row in frame.iterrows()
    ]


@dataclass(frozen=True)
class Request:
    """One acknowledged request: when it was sent and how long it took (seconds)."""

    started: float
    latency: float


class Load:
    """``clients`` threads posting messages until :meth:`stop`; each keeps what it saw."""

    def __init__(self, base_url: str, clients: int, run: str, headers: dict[str, str]) -> None:
        self.base_url, self.clients, self.run, self.headers = base_url, clients, run, headers
        self.bodies = demo_bodies()
        self.requests: list[Request] = []
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

    def latencies(self, during: tuple[float, float] | None = None) -> np.ndarray:
        """The latencies of all requests, or of those in flight at some time ``during``."""
        return np.array(
            [
                r.latency
                for r in self.requests
                if during is None or (r.started < during[1] and r.started + r.latency > during[0])
            ]
        )

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
                        self.requests.append(Request(started, latency))
                    else:
                        failure = f"{id_}: HTTP {response.status_code} {response.text[:200]}"
                        self.failures.append(failure)


class Service:
    """``wangge serve`` on one database, with an API key for it; its log in ``log_path``."""

    def __init__(self, model_dir: Path, url: str, log_path: Path) -> None:
        self.model_dir, self.url, self.log_path = model_dir, url, log_path
        store = open_store(url, upgrade=True)
        self.headers = {"X-API-Key": create_key(store, f"load-test-{log_path.stem}")}
        store.engine.dispose()
        self.env = {"WANGGE_DATABASE_URL": url, "WANGGE_LOG_LEVEL": "info"}

    def start(self) -> tuple[Any, str]:
        port = free_port()
        with self.log_path.open("ab") as log:
            server = start_server(self.model_dir, port, log, self.env)
        base_url = f"http://{HOST}:{port}"
        if wait_healthy(server, base_url) is None:
            stop(server)
            raise SystemExit(f"the server did not start; see {self.log_path}")
        warmup = {"id": f"warmup-{port}", "content": "路灯坏了"}
        httpx.post(f"{base_url}/v1/messages", json=warmup, headers=self.headers, timeout=300)
        return server, base_url

    def lock_holds(self) -> str:
        """The ingest lock's hold times the server logged when it stopped last."""
        found = LOCK_LOG.findall(self.log_path.read_text(encoding="utf-8", errors="replace"))
        if not found:
            return "ingest lock hold times not logged (did the server stop cleanly?)"
        holds, p50, p99, longest = found[-1]
        return f"ingest lock held {holds} times: p50 {p50} ms, p99 {p99} ms, max {longest} ms"


def run_load(
    service: Service, clients: int, seconds: float, long_body: dict[str, Any] | None
) -> tuple[Load, tuple[float, float, int] | None]:
    """``clients`` posting for ``seconds`` (and ``long_body`` posted once in the middle):
    the load, and the long message's (sent, answered, HTTP status)."""
    server, base_url = service.start()
    load = Load(base_url, clients, service.log_path.stem, service.headers).start()
    long_request = None
    if long_body is None:
        time.sleep(seconds)
    else:
        time.sleep(seconds / 2)
        started = time.perf_counter()
        response = httpx.post(f"{base_url}/v1/messages", json=long_body,
                              headers=service.headers, timeout=300)  # fmt: skip
        long_request = (started, time.perf_counter(), response.status_code)
        time.sleep(max(0.0, seconds / 2 - (long_request[1] - started)))
    load.stop()
    stop(server)
    return load, long_request


def report_load(name: str, load: Load, seconds: float, service: Service) -> None:
    done = len(load.acknowledged)
    say(f"{name}: {done} messages stored in {seconds:.0f} s ({done / seconds:.1f}/s), "
        f"{len(load.failures)} failed requests; latency {milliseconds(load.latencies())}; "
        f"{service.lock_holds()}")  # fmt: skip
    for failure in load.failures[:5]:
        say(f"   - {failure}")


def report_long_message(
    steady: Load, loaded: Load, long_request: tuple[float, float, int], chars: int
) -> None:
    sent, answered, status = long_request
    say(f"   the {chars}-character message: HTTP {status} in {(answered - sent) * 1000:.0f} ms")
    during = loaded.latencies((sent, answered))
    base_p50, base_p95 = np.percentile(steady.latencies(), [50, 95]) * 1000
    for what, latencies in (("the whole run", loaded.latencies()), ("in flight with it", during)):
        if len(latencies) == 0:
            say(f"   others' latency, {what}: no request")
            continue
        p50, p95 = np.percentile(latencies, [50, 95]) * 1000
        percentiles = f"p50 {p50:.1f} ms ({p50 - base_p50:+.1f}), p95 {p95:.1f} ms"
        say(f"   others' latency, {what} ({len(latencies)} requests): {percentiles} "
            f"({p95 - base_p95:+.1f}); in brackets: the change from part 1")  # fmt: skip
    rise = np.percentile(loaded.latencies(), 95) * 1000 - base_p95
    verdict = "met" if rise < ACCEPTED_P95_RISE_MS else "NOT met"
    say(f"   acceptance (p95 raised by < {ACCEPTED_P95_RISE_MS:.0f} ms): {verdict}")


def crash_test(service: Service, clients: int, seconds: float) -> list[str]:
    """Load the server and SIGKILL it halfway; the acknowledged messages it did not store."""
    server, base_url = service.start()
    crash = Load(base_url, clients, "crash", service.headers).start()
    time.sleep(seconds / 2)
    server.send_signal(signal.SIGKILL)
    server.wait()
    crash.stop()
    engine = create_engine(service.url)
    with engine.connect() as connection:
        stored = {row[0] for row in connection.execute(text("SELECT external_id FROM messages"))}
    engine.dispose()
    missing = [id_ for id_ in crash.acknowledged if id_ not in stored]
    say(f"3. SIGKILL after {seconds / 2:.0f} s: {len(crash.acknowledged)} messages "
        f"acknowledged, {len(crash.acknowledged) - len(missing)} of them in the database, "
        f"{len(missing)} missing; {len(crash.failures)} requests cut off or refused once "
        "it died")  # fmt: skip
    return missing


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "model_store" / "demo")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--long-chars", type=int, default=20_000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file per part")
    args = parser.parse_args()
    if not args.model_dir.is_dir():
        note(f"no model at {args.model_dir}: run `bash scripts/demo.sh` or pass --model-dir")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="wangge-load-"))

    def service(name: str) -> Service:
        url = args.database_url or f"sqlite:///{scratch / f'{name}.sqlite3'}"
        return Service(args.model_dir, url, scratch / f"{name}.log")

    say(f"# Ingest load test: {args.clients} clients, {args.seconds:.0f} s a part\n")
    steady_service, long_service = service("steady"), service("long")
    steady, _ = run_load(steady_service, args.clients, args.seconds, None)
    report_load("1. steady load", steady, args.seconds, steady_service)
    long_body = {"id": "long-message", "content": ("城厢" * args.long_chars)[: args.long_chars]}
    loaded, long_request = run_load(long_service, args.clients, args.seconds, long_body)
    report_load("2. with one long message", loaded, args.seconds, long_service)
    assert long_request is not None
    report_long_message(steady, loaded, long_request, args.long_chars)
    missing = crash_test(long_service, args.clients, args.seconds)
    say(f"\nserver logs: {scratch}/*.log")
    return 1 if steady.failures or loaded.failures or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
