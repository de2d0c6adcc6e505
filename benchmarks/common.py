"""What the benchmark commands share: where the data is, the `wangge` command, report output."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path("../shared/data/tipdm2020c")
DEV_FILE = "dev_raw_labeled.csv"


def say(text: str = "") -> None:
    """Print one line of the report (the benchmark's output is its report)."""
    print(text, flush=True)  # noqa: T201


def note(text: str) -> None:
    """Print a progress or error line to stderr, out of the report."""
    print(text, file=sys.stderr, flush=True)  # noqa: T201


def resolve_data_dir(path: Path) -> Path:
    """``path`` as given if absolute, else relative to the repository root."""
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def wangge_command() -> str:
    """The ``wangge`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "wangge"
    found = str(script) if script.is_file() else shutil.which("wangge")
    if found is None:
        raise SystemExit("error: the `wangge` command is not installed (pip install -e .)")
    return found
