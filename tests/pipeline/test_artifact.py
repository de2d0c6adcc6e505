"""Tests for wangge.pipeline.artifact: saving a model directory and refusing bad ones."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wangge.errors import ModelLoadError
from wangge.models.classifier import MessageClassifier
from wangge.pipeline.artifact import (
    FORMAT_VERSION,
    META_FILE,
    MODEL_FILE,
    ModelMeta,
    file_sha256,
    library_versions,
    load_model,
    read_meta,
    save_model,
)

PROBE = ["工厂偷偷排放污水", "公交车太少了", "学校乱收费", "医院看病排队太久"]


@pytest.fixture(scope="module")
def model(corpus: tuple[list[str], list[str]]) -> MessageClassifier:
    return MessageClassifier(taxonomy_weight=0).fit(*corpus)


@pytest.fixture(scope="module")
def saved(
    model: MessageClassifier, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ModelMeta]:
    directory = tmp_path_factory.mktemp("store") / "nested" / "category"
    meta = save_model(
        model,
        directory,
        name="category",
        labels=[str(c) for c in model.classes_],
        training_data={"rows": 48, "sha256": "abc"},
        config={"seed": 42},
        metrics={"holdout": {"macro_f1": 0.9}},
    )
    return directory, meta


@pytest.fixture()
def copy_dir(saved: tuple[Path, ModelMeta], tmp_path: Path) -> Path:
    """A private copy of the saved model directory that a test may damage."""
    return Path(shutil.copytree(saved[0], tmp_path / "model"))


def edit_meta(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def load_error(directory: Path) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load_model(directory)
    assert caught.value.code == "W200"
    return caught.value


# -- saving and loading ---------------------------------------------------------------------
def test_save_model_writes_directory(saved: tuple[Path, ModelMeta]) -> None:
    directory, meta = saved
    assert sorted(p.name for p in directory.iterdir()) == [META_FILE, MODEL_FILE]
    assert meta.model_sha256 == file_sha256(directory / MODEL_FILE)
    assert meta.model_sha256 == hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
    assert meta.format_version == FORMAT_VERSION
    assert meta.name == "category"
    assert meta.labels == ["交通运输", "卫生计生", "教育文体", "环境保护"]
    assert meta.library_versions == library_versions()
    assert {"scikit-learn", "numpy", "scipy", "wangge"} <= set(meta.library_versions)
    on_disk = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    assert on_disk["labels"] == meta.labels  # Chinese written as is
    assert "交通运输" in (directory / META_FILE).read_text(encoding="utf-8")


def test_save_load_round_trip(saved: tuple[Path, ModelMeta], model: MessageClassifier) -> None:
    directory, meta = saved
    loaded, loaded_meta = load_model(directory)
    assert isinstance(loaded, MessageClassifier)
    assert loaded_meta == meta
    assert loaded_meta.training_data == {"rows": 48, "sha256": "abc"}
    assert loaded_meta.config == {"seed": 42}
    assert loaded_meta.metrics == {"holdout": {"macro_f1": 0.9}}
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), model.predict_proba(PROBE))
    assert list(loaded.predict(PROBE)) == list(model.predict(PROBE))
    assert loaded.predict_explained(PROBE) == model.predict_explained(PROBE)


def test_load_model_accepts_str_path(saved: tuple[Path, ModelMeta]) -> None:
    loaded, meta = load_model(str(saved[0]))
    assert meta.name == "category"


def test_read_meta(saved: tuple[Path, ModelMeta]) -> None:
    assert read_meta(saved[0]) == saved[1]


def test_save_model_overwrites_previous(
    saved: tuple[Path, ModelMeta], model: MessageClassifier, copy_dir: Path
) -> None:
    meta = save_model(
        model,
        copy_dir,
        name="again",
        labels=saved[1].labels,
        training_data={},
        config={},
        metrics={},
    )
    assert not list(copy_dir.glob("*.tmp"))
    assert load_model(copy_dir)[1] == meta


# -- refusals -------------------------------------------------------------------------------
def test_load_model_missing_directory(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nowhere")
    assert "does not exist" in str(error)


def test_load_model_path_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"x")
    load_error(path)


def test_load_model_directory_without_meta(tmp_path: Path, saved: tuple[Path, ModelMeta]) -> None:
    shutil.copy(saved[0] / MODEL_FILE, tmp_path / MODEL_FILE)
    error = load_error(tmp_path)
    assert META_FILE in str(error) and "wangge train" in str(error)


def test_load_model_empty_directory(tmp_path: Path) -> None:
    load_error(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"name": "category"}',
        b"\xff\xfe\x00garbage",
        json.dumps({"format_version": "one"}).encode(),
    ],
    ids=["syntax", "empty", "list", "fields-missing", "not-utf8", "bad-type"],
)
def test_load_model_corrupt_meta(copy_dir: Path, content: bytes) -> None:
    (copy_dir / META_FILE).write_bytes(content)
    error = load_error(copy_dir)
    assert "corrupt" in str(error) and META_FILE in str(error)


def test_load_model_missing_model_file(copy_dir: Path) -> None:
    (copy_dir / MODEL_FILE).unlink()
    assert MODEL_FILE in str(load_error(copy_dir))


def test_load_model_modified_model_file(copy_dir: Path) -> None:
    data = bytearray((copy_dir / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy_dir / MODEL_FILE).write_bytes(bytes(data))
    assert "checksum" in str(load_error(copy_dir))


class _Tripwire:
    """Unpickling this writes a file: shows whether a replaced model was ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "unpickled"))


def test_load_model_replaced_model_file_is_never_unpickled(copy_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "tripwire"
    (copy_dir / MODEL_FILE).write_bytes(pickle.dumps(_Tripwire(marker)))
    assert "checksum" in str(load_error(copy_dir))
    assert not marker.exists()


def test_load_model_wrong_format_version(copy_dir: Path) -> None:
    edit_meta(copy_dir, lambda meta: meta.update(format_version=FORMAT_VERSION + 1))
    error = load_error(copy_dir)
    assert f"format {FORMAT_VERSION + 1}" in str(error) and "retrain" in str(error)


@pytest.mark.parametrize("package", ["scikit-learn", "numpy", "scipy"])
def test_load_model_library_minor_version_mismatch(copy_dir: Path, package: str) -> None:
    installed = library_versions()[package]
    major, minor = installed.split(".")[:2]
    other = f"{major}.{int(minor) + 1}.0"
    edit_meta(copy_dir, lambda meta: meta["library_versions"].update({package: other}))
    error = load_error(copy_dir)
    assert package in str(error) and other in str(error) and installed in str(error)


def test_load_model_sklearn_major_version_mismatch(copy_dir: Path) -> None:
    edit_meta(copy_dir, lambda meta: meta["library_versions"].update({"scikit-learn": "0.24.2"}))
    assert "scikit-learn 0.24.2" in str(load_error(copy_dir))


def test_load_model_library_version_missing_from_meta(copy_dir: Path) -> None:
    edit_meta(copy_dir, lambda meta: meta["library_versions"].pop("scikit-learn"))
    assert "scikit-learn unknown" in str(load_error(copy_dir))


def test_load_model_accepts_other_patch_version(copy_dir: Path) -> None:
    installed = library_versions()["scikit-learn"]
    major, minor = installed.split(".")[:2]
    edit_meta(
        copy_dir,
        lambda meta: meta["library_versions"].update({"scikit-learn": f"{major}.{minor}.999"}),
    )
    model, meta = load_model(copy_dir)
    assert meta.library_versions["scikit-learn"] == f"{major}.{minor}.999"


def test_load_model_ignores_rjieba_and_wangge_versions(copy_dir: Path) -> None:
    edit_meta(
        copy_dir, lambda meta: meta["library_versions"].update({"rjieba": "9.9", "wangge": "0.0"})
    )
    load_model(copy_dir)


@pytest.mark.parametrize("keep", [0, 10, 1000, -1])
def test_load_model_truncated_file_with_matching_checksum(copy_dir: Path, keep: int) -> None:
    model_path = copy_dir / MODEL_FILE
    data = model_path.read_bytes()
    model_path.write_bytes(data[:keep] if keep >= 0 else data[: len(data) // 2])
    edit_meta(copy_dir, lambda meta: meta.update(model_sha256=file_sha256(model_path)))
    error = load_error(copy_dir)
    assert "could not be loaded" in str(error)


def test_load_model_foreign_file_with_matching_checksum(copy_dir: Path) -> None:
    model_path = copy_dir / MODEL_FILE
    model_path.write_text("this is not a pickle", encoding="utf-8")
    edit_meta(copy_dir, lambda meta: meta.update(model_sha256=file_sha256(model_path)))
    load_error(copy_dir)
