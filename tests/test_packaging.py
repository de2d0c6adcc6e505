"""The wheel that ``pip install .`` builds holds every file of the package's folders (code,
shipped data, Alembic migrations, the staff page's static files), and building it prints no
warning: a folder missing from ``packages`` in pyproject.toml fails here, not on a user's
machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from conftest import REPO_ROOT


def test_the_wheel_holds_every_package_file_and_builds_without_warnings(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp_path = tmp_path_factory.mktemp("wheel")  # a path with no "warning" in it
    package_dir = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-dir"]
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    expected = set()
    for package, folder in package_dir.items():
        shutil.copytree(
            REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
        prefix = package.replace(".", "/")
        expected |= {
            f"{prefix}/{path.relative_to(source / folder).as_posix()}"
            for path in (source / folder).rglob("*")
            if path.is_file()
        }

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(tmp_path / "dist")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = build.stdout + build.stderr
    assert build.returncode == 0, output
    assert "warning" not in output.lower(), output

    (wheel,) = (tmp_path / "dist").glob("wangge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert expected - shipped == set()
    assert {"wangge/serve/static/review.js", "wangge/data/demo/messages.csv",
            "wangge/serve/migrations/script.py.mako"} <= shipped  # fmt: skip
    assert any(name.startswith("wangge/serve/migrations/versions/0001_") for name in shipped)
