"""The errors wangge raises on purpose, each with a stable code and a hint.

Messages are written for the person who has to fix the problem: a data scientist with a bad
file, an operator with a broken model directory. Codes let logs and tests refer to an error
without matching its wording.
"""

from __future__ import annotations

from pathlib import Path


class WanggeError(Exception):
    """Base class: ``code`` is stable, ``str(error)`` is the full human message."""

    code = "W000"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.code}] {message}")
        self.message = message


class DataError(WanggeError):
    """An input file cannot be used: unreadable, empty, a column missing, a bad row.

    ``path``, ``row`` (1-based, as a spreadsheet shows it, header = row 1) and ``column`` say
    where, when known.
    """

    code = "W100"

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ModelLoadError(WanggeError):
    """A model directory is missing, corrupt, tampered with or from an incompatible version."""

    code = "W200"


class TrainingError(WanggeError):
    """Training cannot proceed with the data or settings given (e.g. a single class)."""

    code = "W300"
