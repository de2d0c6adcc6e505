"""Settings of the HTTP service, read from ``WANGGE_*`` environment variables.

Every field can be set as ``WANGGE_<FIELD>`` (case-insensitive), e.g.
``WANGGE_MODEL_DIR=/srv/models/current WANGGE_PORT=9000``; unknown ``WANGGE_*`` variables are
ignored so that other parts of wangge can use the same prefix.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wangge.home import default_encoder_dir
from wangge.models.dedup import DEFAULT_WINDOW_DAYS, ENCODER_THRESHOLD, LEXICAL_THRESHOLD
from wangge.nlp.locate import DEFAULT_REVIEW_THRESHOLD as DEFAULT_LOCATION_REVIEW_THRESHOLD

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(BaseSettings):
    """What the service needs to start and the limits it enforces on requests."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_", extra="ignore")

    model_dir: Path | None = Field(
        default=None,
        description=(
            "Model directory written by `wangge train`. Required to serve: the app refuses to "
            "start without it unless a model object is passed to `create_app`."
        ),
    )
    host: str = "127.0.0.1"
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed "
        "(IP addresses or networks, comma-separated): a request from one of them counts as from "
        "the client the header names (login throttling per address, the access log). A request "
        "from any other peer keeps the peer's address, whatever its headers say. Empty: believe "
        "no one; `*`: every peer (only when nothing but the proxy can reach the service).",
    )
    port: int = Field(default=8000, ge=1, le=65535)
    max_batch_size: int = Field(
        default=256, ge=1, description="Most messages accepted in one request."
    )
    max_text_chars: int = Field(
        default=20_000,
        ge=1,
        description=(
            "Most characters (Unicode code points) of one message's title and content together. "
            "Longer messages are refused with 422 rather than truncated: a truncated complaint "
            "could be classified on its preamble alone without anyone noticing."
        ),
    )
    max_request_chars: int = Field(
        default=300_000,
        ge=1,
        description=(
            "Most characters of title and content in one request, all its messages together; "
            "a larger request is refused with 422 (`request_too_large`) before any model runs: "
            "split it into several. It bounds the time and memory one request takes: on 2 "
            "shared cores, 256 messages of 20,000 characters took 8 s on /v1/classify and 13 s "
            "on /v1/messages; 15 of them (300,000 characters) 0.4 s and 0.9 s, 20 of them up "
            "to 0.8 s and 1.9 s (benchmarks/bench_limits.py). At least max_text_chars."
        ),
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body; a larger one is refused with 413 before it is read "
        "whole. The default holds a full batch of the longest messages, even \\u-escaped.",
    )
    top_k: int = Field(default=3, ge=1, description="Categories listed per message, best first.")
    route: bool = Field(
        default=True, description="Add routing (place, grid, departments) to every result."
    )
    district_dir: Path | None = Field(
        default=None,
        description="District directory (units.csv, grids.csv, routing.csv …); "
        "unset means the shipped 萧山区.",
    )
    grid_file: Path | None = Field(
        default=None, description="Grid file (CSV or GeoJSON) replacing the district's grids."
    )
    location_ner: bool = Field(
        default=True,
        description="Tag places the registry does not know (LAC) in the evidence of doubtful "
        "locations.",
    )
    location_review_threshold: float = Field(
        default=DEFAULT_LOCATION_REVIEW_THRESHOLD,
        ge=0,
        le=1,
        description="Locations less confident than this need review (reason `location`).",
    )
    log_level: LogLevel = "info"
    shutdown_timeout: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Seconds that requests in flight at SIGTERM or SIGINT get to finish "
        "(uvicorn's graceful shutdown timeout); those still running then are cancelled. A "
        "batch still being scored is refused with 503 at once, before anything of it is "
        "stored. The process exits about a second after this at the latest.",
    )
    database_url: str = Field(
        default="sqlite:///wangge.sqlite3",
        description="Where POST /v1/messages stores messages and cases (SQLAlchemy URL).",
    )
    encoder_dir: Path | None = Field(
        default_factory=default_encoder_dir,
        description="Sentence encoder for duplicate detection (`wangge models fetch-e5`). "
        "Default: $WANGGE_HOME/e5-small (~/.cache/wangge/e5-small); without one duplicates "
        "are found by lexical similarity only.",
    )
    dedup_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Same-case probability from which a message joins. Default: "
        f"{ENCODER_THRESHOLD} with the encoder, {LEXICAL_THRESHOLD} without.",
    )
    dedup_window_days: int = Field(
        default=DEFAULT_WINDOW_DAYS,
        ge=1,
        description="A case silent for longer takes no new messages.",
    )
    model_store: Path | None = Field(
        default=None,
        description="Model store (`wangge models promote`): serve its promoted version instead "
        "of model_dir, and swap to a newly promoted one without restarting.",
    )
    api_keys: bool = Field(
        default=True,
        description="Require an API key (`wangge keys create NAME`) on /v1/ endpoints.",
    )
    ann_snapshot: Path | None = Field(
        default=None,
        description="File the duplicate index's HNSW graph is saved to at shutdown and "
        "restored from at start, so that a restart adds only the messages stored since. "
        "Default: beside a SQLite database (wangge.sqlite3.hnsw); none for other databases.",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        if items == ["*"]:
            return "*"
        for item in items:
            try:
                ipaddress.ip_network(item)  # an address is a network of one
            except ValueError as error:
                raise ValueError(
                    f"{item!r} is not an IP address or network ({error}): write one such as "
                    "10.0.0.2 or 10.0.0.0/24 (host names are not resolved; `*` stands alone)"
                ) from None
        return ",".join(items)

    def trusted_proxies(self) -> list[str]:
        """:attr:`forwarded_allow_ips` as a list; empty when no proxy is believed."""
        return [item for item in self.forwarded_allow_ips.split(",") if item]

    @model_validator(mode="after")
    def _one_message_fits(self) -> Settings:
        if self.max_request_chars < self.max_text_chars:
            raise ValueError(
                f"max_request_chars ({self.max_request_chars}) is below max_text_chars "
                f"({self.max_text_chars}): the longest message allowed could never be sent"
            )
        return self

    def ann_snapshot_path(self) -> Path | None:
        """:attr:`ann_snapshot`, or its default beside a SQLite database file."""
        if self.ann_snapshot is not None:
            return self.ann_snapshot
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and len(self.database_url) > len(prefix):
            database = self.database_url[len(prefix) :]
            if database != ":memory:":
                return Path(f"{database}.hnsw")
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once per process."""
    return Settings()
