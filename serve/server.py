"""Run the service under uvicorn (what ``wangge serve`` calls), and stop it in bounded time.

On SIGTERM or SIGINT the listening socket closes (new connections are refused) and requests in
flight finish, except a batch still being scored: it is refused with 503 at its next chunk,
before anything of it is stored (:func:`wangge.serve.service.triage_in_chunks`). Then the app
shuts down (the duplicate index is saved) and the process exits with status 0, a few seconds
after the signal under load. A request still running ``shutdown_timeout`` seconds after the
signal is cancelled, and if its thread is still busy a second later the process exits with
status 1 without it: what it committed is stored, and it was never acknowledged.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

from wangge.nlp.pii import PiiMaskingFilter
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.migrate import open_store
from wangge.serve.service import prepare_model

logger = logging.getLogger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit status when the app cannot start
# How long threads of cancelled requests may still run once uvicorn has shut down.
BUSY_THREAD_GRACE = 1.0


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, in this process; raises ModelLoadError for an unusable
    model.

    One uvicorn worker: each worker process would load its own copy of the model (TF-IDF
    vocabularies and weights, the bulk of the memory), so memory would grow with the worker
    count while a container's limit is sized for one model. A worker scores on about one core
    (the GIL); for more throughput run more instances behind a load balancer. Within the
    worker, scoring runs in the threadpool (see :mod:`wangge.serve.routes.classify`).
    """
    # A fatal signal (SIGSEGV, SIGBUS …) in native code writes the Python stacks to stderr
    # rather than ending the process without a line.
    with contextlib.suppress(OSError, ValueError):  # a stderr without a file descriptor
        faulthandler.enable()
    # SIGTERM before uvicorn handles it (while the model loads) ends the process cleanly too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server = _serve(settings)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
    _leave_busy_threads(BUSY_THREAD_GRACE)


def _serve(settings: Settings) -> GracefulServer:
    """Load the model, bring the database up to date, serve until a signal; the server."""
    # Loaded here rather than in the app's lifespan so that a bad model directory raises
    # ModelLoadError to the caller instead of ending in uvicorn's startup traceback and exit 3;
    # likewise a database the migrations cannot bring up to date raises SchemaError (the
    # lifespan's upgrade then finds nothing to do).
    loaded = prepare_model(settings)
    open_store(settings.database_url, upgrade=True).engine.dispose()
    app = create_app(
        settings, model=loaded.model, meta=loaded.meta, department_model=loaded.department_model
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        **proxy_options(settings),
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = GracefulServer(config, app.state.stopping)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass  # uvicorn raises the SIGTERM or SIGINT it caught again once it has shut down
    return server


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which also sets ``stopping`` as soon as a signal asks it to stop, so
    that long requests stop scoring and answer 503 instead of holding up the shutdown."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _leave_busy_threads(timeout: float) -> None:
    """Wait up to ``timeout`` seconds for request threads still running (cancelled requests
    whose work goes on in the threadpool), then exit without them: Python would otherwise
    wait for each to finish before the process ends."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    busy = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon
            and t is not threading.main_thread()]  # fmt: skip
    if busy:
        logger.error("exiting with %d request thread(s) still running: %s", len(busy), busy)
        logging.shutdown()
        os._exit(1)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the ``wangge`` loggers, at ``level``, with
    personal data (phone, ID-card and plate numbers, e-mail) masked by every handler.

    Without it, messages from wangge's own loggers (the model loaded, a failed request's
    traceback) would reach no handler when wangge runs under uvicorn.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"mask_pii": {"()": PiiMaskingFilter}}
    for handler in config["handlers"].values():
        handler["filters"] = ["mask_pii"]
    config["loggers"]["wangge"] = {
        "handlers": ["default"],
        "level": LOG_LEVELS[level],
        "propagate": False,
    }
    return config


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's reading of X-Forwarded-For/-Proto: only from the proxies of
    ``settings.forwarded_allow_ips``, and not at all when there are none."""
    trusted = settings.trusted_proxies()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}
