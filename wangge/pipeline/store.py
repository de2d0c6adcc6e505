"""A model store: versions of a model side by side, one of them promoted to serve.

The store is a directory; each version is a model directory in it (``wangge train
--model-dir STORE/VERSION``), named as the data scientist likes (``2026-11-v2``). The file
``STORE/CURRENT`` names the version served, and ``STORE/HISTORY`` lists every promotion, one
JSON line each, so that :func:`rollback` can go back. Both are replaced atomically, so a
service reading them mid-promotion sees the old version or the new one, never half a file.
A service started with ``WANGGE_MODEL_STORE`` serves the current version and swaps to a newly
promoted one on its next request, without restarting (:mod:`wangge.serve.dependencies`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wangge.errors import ModelLoadError
from wangge.pipeline.artifact import META_FILE, ModelMeta, load_model, read_meta

CURRENT_FILE = "CURRENT"
HISTORY_FILE = "HISTORY"
# A version is the plain name of a directory in the store: letters (any script), digits,
# '.', '_' and '-', not starting with '.' or a separator, so never a path out of it.
VERSION_NAME = re.compile(r"[^\W_][\w.-]{0,127}")


class VersionError(ModelLoadError):
    """A version that is not in the store, or nothing to roll back to: its message names no
    server path, so the admin API can answer with it."""


@dataclass(frozen=True)
class Version:
    name: str
    meta: ModelMeta
    current: bool


def versions(store: str | Path) -> list[Version]:
    """The versions of the store, newest first (by creation time, then name)."""
    store = Path(store)
    current = current_version(store)
    found = [
        Version(path.name, read_meta(path), path.name == current)
        for path in store.iterdir()
        if _is_version(store, path)
    ]
    return sorted(found, key=lambda v: (v.meta.created_at, v.name), reverse=True)


def current_version(store: str | Path) -> str | None:
    path = Path(store) / CURRENT_FILE
    return path.read_text(encoding="utf-8").strip() or None if path.is_file() else None


def served_dir(store: str | Path) -> Path:
    """The directory of the promoted version; ModelLoadError when none is."""
    version = current_version(store)
    if version is None:
        raise ModelLoadError(f"no version promoted in {store}: `wangge models promote VERSION`")
    return version_dir(store, version)


def version_dir(store: str | Path, version: str) -> Path:
    """The directory of ``version``, a model directory right inside ``store``;
    :class:`VersionError` for anything else (a path, a name with a separator,
    a link out of the store), naming no server path."""
    if not VERSION_NAME.fullmatch(version):
        raise VersionError(
            "not a version name: a version is a directory of the store, named with letters, "
            "digits, '.', '_' and '-'"
        )
    path = Path(store) / version
    if not _is_version(Path(store), path):
        raise VersionError(
            f"version {version!r} does not exist in the store (`wangge models list`)"
        )
    return path


def _is_version(store: Path, path: Path) -> bool:
    """A model directory right inside the store (not a link out of it)."""
    return (path / META_FILE).is_file() and path.resolve().parent == store.resolve()


def promote(store: str | Path, version: str, *, by: str = "cli") -> None:
    """Serve ``version`` from now on; it must load (integrity and compatibility checked)."""
    store = Path(store)
    load_model(version_dir(store, version))  # ModelLoadError for a missing or broken version
    _write_atomically(store / CURRENT_FILE, version + "\n")
    entry = {"version": version, "at": datetime.now().isoformat(timespec="seconds"), "by": by}
    history = store / HISTORY_FILE
    previous = history.read_text(encoding="utf-8") if history.is_file() else ""
    _write_atomically(history, previous + json.dumps(entry) + "\n")


def rollback(store: str | Path, *, by: str = "cli") -> str:
    """Promote again the version served before the current one; returns its name."""
    store = Path(store)
    history_path = store / HISTORY_FILE
    lines = history_path.read_text(encoding="utf-8").splitlines() if history_path.is_file() else []
    promoted = [json.loads(line)["version"] for line in lines]
    current = current_version(store)
    earlier = [v for v in promoted if v != current]
    if not earlier:
        raise VersionError(f"nothing to roll back to: only {current} was promoted")
    promote(store, earlier[-1], by=by)
    return earlier[-1]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
