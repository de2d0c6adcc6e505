"""Benchmark of the HTTP API: latency of single-message requests and batch throughput.

Run from the repository root with a model written by ``wangge train``::

    .venv/bin/python benchmarks/bench_api.py --model-dir /tmp/bench_model [--concurrency 4]

Starts ``wangge serve`` on a free loopback port, waits for ``/healthz``, then

1. sends ``--requests`` single-message ``POST /v1/classify`` requests (after ``--warmup``
   unmeasured ones) over keep-alive connections, one per thread (``--concurrency``), and prints
   the latency percentiles and requests/s;
2. sends ``--batches`` requests of ``--batch-size`` messages each and prints messages/s;
3. reads the server's peak resident memory (``VmHWM``) from ``/proc`` and stops the server.

Messages are taken round-robin from ``dev_raw_labeled.csv`` (title 留言主题, content 留言详情).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
from common import DEV_FILE, argument_parser, data_dir_with, note, say, wangge_command

from wangge.batch.files import read_table

HOST = "127.0.0.1"  # loopback only: the benchmark never exposes the server
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 64

Message = dict[str, str]


def load_dev_messages(data_dir: Path) -> list[Message]:
    """The dev messages as API request bodies: ``{"id", "title", "content"}``."""
    frame = read_table(data_dir / DEV_FILE)
    return [
        {"id": str(row_id), "title": title, "content": content}
        for row_id, title, content in zip(
            frame["留言编号"], frame["留言主题"], frame["留言详情"], strict=True
        )
    ]


def dev_messages(data_dir: Path) -> list[Message] | None:
    """:func:`load_dev_messages` of the data folder, or None when it lacks the dev file (said
    on stderr: the caller exits with 2)."""
    found = data_dir_with(data_dir, (DEV_FILE,))
    return None if found is None else load_dev_messages(found)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(
    model_dir: Path, port: int, log: IO[bytes], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``wangge serve`` in a subprocess; its output goes to ``log`` (a pipe could fill up).
    ``env`` adds environment variables (``WANGGE_*`` settings)."""
    argv = [
        wangge_command(),
        "serve",
        "--model-dir",
        str(model_dir),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )


def wait_healthy(server: subprocess.Popen[bytes], base_url: str) -> dict[str, Any] | None:
    """The ``/healthz`` body once the server answers; ``None`` if it exits or times out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=2.0)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return None


def post(client: httpx.Client, body: dict[str, Any], expected: int) -> None:
    """``POST /v1/classify``; raises unless it succeeds with ``expected`` results."""
    response = client.post("/v1/classify", json=body)
    response.raise_for_status()
    if len(response.json()["results"]) != expected:
        raise RuntimeError(f"expected {expected} results, got {response.text[:200]}")


def run_singles(
    base_url: str, messages: Sequence[Message], n: int, concurrency: int, headers: dict[str, str]
) -> tuple[np.ndarray, float]:
    """Latencies (seconds) of ``n`` single-message requests over ``concurrency`` threads, and
    the wall-clock time of the whole run. Thread ``t`` sends requests ``t, t + K, t + 2K, ...``
    on its own keep-alive client."""

    def worker(thread: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=headers) as client:
            for i in range(thread, n, concurrency):
                started = time.perf_counter()
                post(client, messages[i % len(messages)], 1)
                latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(worker, range(concurrency)))
    wall = time.perf_counter() - started
    return np.array([latency for chunk in results for latency in chunk]), wall


def run_batches(
    base_url: str, messages: Sequence[Message], batches: int, size: int, headers: dict[str, str]
) -> tuple[np.ndarray, float]:
    """Latencies of ``batches`` requests of ``size`` messages (after one warm-up batch)."""
    bodies = [
        {"messages": [messages[(b * size + j) % len(messages)] for j in range(size)]}
        for b in range(batches)
    ]
    latencies = []
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=headers) as client:
        post(client, bodies[0], size)  # warm-up
        started = time.perf_counter()
        for body in bodies:
            begun = time.perf_counter()
            post(client, body, size)
            latencies.append(time.perf_counter() - begun)
        wall = time.perf_counter() - started
    return np.array(latencies), wall


def peak_rss_mib(pid: int) -> float | None:
    """``VmHWM`` (peak resident set) of a live process from ``/proc``, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    return None


def stop(server: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it does not exit within 10 s."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def milliseconds(latencies: np.ndarray) -> str:
    """Percentiles and maximum of latencies given in seconds, formatted in milliseconds."""
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000
    return (
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {latencies.max() * 1000:.1f} ms"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    add = parser.add_argument
    add("--model-dir", type=Path, required=True, help="model written by `wangge train`")
    add("--requests", type=int, default=1000, help="measured single-message requests")
    add("--warmup", type=int, default=50, help="unmeasured single-message requests first")
    add("--concurrency", type=int, default=1, help="client threads, one connection each")
    add("--batches", type=int, default=20, help="batch requests")
    add("--batch-size", type=int, default=256, help="messages per batch request")
    args = parser.parse_args(argv)
    for name, value, low, high in [
        ("--requests", args.requests, 1, MAX_REQUESTS),
        ("--warmup", args.warmup, 0, MAX_REQUESTS),
        ("--concurrency", args.concurrency, 1, MAX_CONCURRENCY),
        ("--batches", args.batches, 1, MAX_REQUESTS),
        ("--batch-size", args.batch_size, 1, 256),  # the server's default max_batch_size
    ]:
        if not low <= value <= high:
            parser.error(f"{name} must be between {low} and {high}")
    return args


def api_key(scratch: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh SQLite database with one API key: the server's environment and the headers."""
    from wangge.serve.auth import create_key
    from wangge.serve.migrate import open_store

    url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    key = create_key(open_store(url, upgrade=True), "benchmark")
    return {"WANGGE_DATABASE_URL": url}, {"X-API-Key": key}


def measure(
    base_url: str, messages: Sequence[Message], args: argparse.Namespace, headers: dict[str, str]
) -> None:
    """Run and print the single-message and the batch benchmarks against a healthy server."""
    say(
        f"\n## single-message requests: {args.requests} after {args.warmup} warm-up, "
        f"concurrency {args.concurrency}"
    )
    if args.warmup:
        run_singles(base_url, messages, args.warmup, 1, headers)
    latencies, wall = run_singles(base_url, messages, args.requests, args.concurrency, headers)
    say(f"latency {milliseconds(latencies)}")
    say(f"throughput {args.requests / wall:,.1f} requests/s ({wall:.2f} s)")

    say(f"\n## batch requests: {args.batches} x {args.batch_size} messages")
    latencies, wall = run_batches(base_url, messages, args.batches, args.batch_size, headers)
    total = args.batches * args.batch_size
    say(f"latency per batch {milliseconds(latencies)}")
    say(f"throughput {total / wall:,.0f} messages/s ({total} messages in {wall:.2f} s)")


class StartupError(RuntimeError):
    """The server exited or did not answer ``/healthz`` in time (the message ends with its
    output)."""


@dataclass(frozen=True)
class Running:
    """A healthy ``wangge serve`` with an API key: where it listens and how long it took."""

    server: subprocess.Popen[bytes]
    base_url: str
    headers: dict[str, str]
    health: dict[str, Any]
    startup_s: float

    def describe(self) -> str:
        """The report's first line: the server, its model and its start-up time."""
        version = self.health["model_version"]
        return (f"server pid {self.server.pid} on {self.base_url}, model {version}, "
                f"healthy after {self.startup_s:.1f} s")  # fmt: skip


@contextmanager
def running_server(model_dir: Path, prefix: str) -> Iterator[Running]:
    """``wangge serve`` of ``model_dir`` on a free loopback port, with a fresh SQLite database
    in a temporary folder named ``prefix...``, healthy; stopped on exit. Raises
    :class:`StartupError` when it does not become healthy."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    env, headers = api_key(Path(tempfile.mkdtemp(prefix=prefix)))
    with tempfile.TemporaryFile() as log:
        server = start_server(model_dir, port, log, env)
        try:
            started = time.perf_counter()
            health = wait_healthy(server, base_url)
            if health is None:
                exited = server.poll()
                stop(server)
                log.seek(0)
                tail = log.read().decode("utf-8", "replace").splitlines()[-20:]
                problem = (
                    f"exited with code {exited}"
                    if exited is not None
                    else f"did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s"
                )
                raise StartupError(
                    f"the server {problem}; its output ends with:\n" + "\n".join(tail)
                )
            yield Running(server, base_url, headers, health, time.perf_counter() - started)
        finally:
            stop(server)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    messages = dev_messages(args.data_dir)
    if messages is None:
        return 2
    try:
        with running_server(args.model_dir, "wangge-bench-api-") as running:
            server, base_url = running.server, running.base_url
            say(running.describe())
            try:
                measure(base_url, messages, args, running.headers)
            except (httpx.HTTPError, RuntimeError) as error:
                note(f"error: a request failed: {error}")
                return 1
            peak = peak_rss_mib(server.pid)  # read before stopping: /proc goes with the process
    except StartupError as error:
        note(f"error: {error}")
        return 2
    say("\n## server memory")
    say(f"peak RSS (VmHWM) {peak:.0f} MiB" if peak is not None else "VmHWM unavailable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
