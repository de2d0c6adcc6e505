"""What the benchmark commands share: where the data is, the `wangge` command, report output."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path("../shared/data/tipdm2020c")
DEV_FILE = "dev_raw_labeled.csv"
TRAIN_FILE = "train_tokenized.csv"
PAIRS_DIR = REPO_ROOT / "benchmarks" / "data"
# Labelled duplicate pairs scored once at the end, never used to design or fit anything.
FINAL_PAIRS_FILE = PAIRS_DIR / "final_pairs.csv"


def design_pair_files() -> list[Path]:
    """The labelled duplicate pairs for fitting and choosing: ``hot_issue_pairs*.csv`` (the
    final pairs, :data:`FINAL_PAIRS_FILE`, are named otherwise so that no glob takes them)."""
    return sorted(PAIRS_DIR.glob("hot_issue_pairs*.csv"))


def say(text: str = "") -> None:
    """Print one line of the report (the benchmark's output is its report)."""
    print(text, flush=True)  # noqa: T201


def note(text: str) -> None:
    """Print a progress or error line to stderr, out of the report."""
    print(text, file=sys.stderr, flush=True)  # noqa: T201


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc``, with ``--data-dir``."""
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="tipdm2020c folder (repo-relative)"
    )
    return parser


def data_dir_with(path: Path, files: Sequence[str]) -> Path | None:
    """The data folder (relative paths from the repository root) if it holds ``files``.

    Otherwise says what is missing on stderr and returns None (the caller exits with 2).
    """
    data_dir = path if path.is_absolute() else (REPO_ROOT / path).resolve()
    missing = [name for name in files if not (data_dir / name).is_file()]
    if missing:
        problem = "does not exist" if not data_dir.is_dir() else f"lacks {', '.join(missing)}"
        note(f"error: data folder {data_dir} {problem}; pass --data-dir")
        return None
    return data_dir


def wangge_command() -> str:
    """The ``wangge`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "wangge"
    found = str(script) if script.is_file() else shutil.which("wangge")
    if found is None:
        raise SystemExit("error: the `wangge` command is not installed (pip install -e .)")
    return found
