"""Run the service under uvicorn (what ``wangge serve`` calls)."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

from wangge.nlp.pii import PiiMaskingFilter
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.migrate import open_store
from wangge.serve.service import prepare_model


def run(settings: Settings) -> None:
    """Serve until interrupted, in this process; raises ModelLoadError for an unusable model.

    One uvicorn worker: each worker process would load its own copy of the model (TF-IDF
    vocabularies and weights, the bulk of the memory), so memory would grow with the worker
    count while a container's limit is sized for one model. A worker scores on about one core
    (the GIL); for more throughput run more instances behind a load balancer. Within the
    worker, scoring runs in the threadpool (see :mod:`wangge.serve.routes.classify`).
    """
    # Loaded here rather than in the app's lifespan so that a bad model directory raises
    # ModelLoadError to the caller instead of ending in uvicorn's startup traceback and exit 3;
    # likewise a database the migrations cannot bring up to date raises SchemaError (the
    # lifespan's upgrade then finds nothing to do).
    loaded = prepare_model(settings)
    open_store(settings.database_url, upgrade=True).engine.dispose()
    uvicorn.run(
        create_app(
            settings, model=loaded.model, meta=loaded.meta, department_model=loaded.department_model
        ),
        host=settings.host,
        port=settings.port,
        workers=1,
        **proxy_options(settings),
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
    )


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
