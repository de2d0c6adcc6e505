"""A trained model on disk: a directory with ``meta.json`` and the pickled estimator.

``meta.json`` is read and checked before anything is unpickled: the artefact format version,
the library versions the pickle depends on, and the SHA-256 of ``model.joblib``. A pickle can
execute code, so a file whose hash does not match what training wrote is refused, never loaded.
The category model's ``meta.json`` also holds the :class:`PipelineRecord`: what the pipeline
was built with, checked when it is loaded (:mod:`wangge.pipeline.directory`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from pydantic import BaseModel, ValidationError

from wangge.errors import ModelLoadError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
#: Formats read: 1 was written before the pipeline record (:attr:`ModelMeta.pipeline`).
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
# Libraries whose classes are inside the pickle: a different minor version may not unpickle
# correctly (scikit-learn says so itself), so loading insists on the same major.minor.
PICKLED_LIBRARIES = ("scikit-learn", "numpy", "scipy")


class DistrictRecord(BaseModel):
    """The district tables a pipeline was built with: file name -> SHA-256."""

    directory: str
    tables: dict[str, str]


class EncoderRecord(BaseModel):
    """A sentence encoder: a readable id and the SHA-256 of each file it runs from."""

    id: str
    directory: str
    sha256: dict[str, str]


class DedupWeightsRecord(BaseModel):
    """Where the dedup weights copied into the directory (``file``) came from."""

    file: str
    source: str
    sha256: str


class PipelineRecord(BaseModel):
    """What a pipeline directory was built with, beyond its models: the district tables, the
    sentence encoder it expects (None: none was there), the dedup weights and the git commit
    of wangge (None: not a git checkout)."""

    district: DistrictRecord
    encoder: EncoderRecord | None
    dedup_weights: DedupWeightsRecord
    git_commit: str | None


class ModelMeta(BaseModel):
    """What ``meta.json`` holds; ``pipeline`` in the category model's only."""

    name: str
    version: str
    format_version: int
    created_at: str
    model_sha256: str
    labels: list[str]
    library_versions: dict[str, str]
    training_data: dict[str, Any] = {}
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    # Other files the model reads (path relative to the directory -> SHA-256), e.g. the
    # ONNX graph of a transformer: checked like the pickle before the model is used.
    files: dict[str, str] = {}
    pipeline: PipelineRecord | None = None


def library_versions() -> dict[str, str]:
    """Installed versions of wangge and of the libraries a model depends on."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("wangge", *PICKLED_LIBRARIES, "rjieba"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, in hexadecimal."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DEPARTMENT_DIR = "department"


def department_model_dir(model_dir: str | Path) -> Path:
    """Where a model directory keeps its department classifier, if it has one."""
    return Path(model_dir) / DEPARTMENT_DIR


def save_model(
    model: Any,
    directory: str | Path,
    *,
    name: str,
    labels: list[str],
    training_data: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
    files: tuple[str, ...] = (),
    pipeline: PipelineRecord | None = None,
) -> ModelMeta:
    """Write ``model`` and its metadata into ``directory`` (created if needed); ``files`` are
    the other files of the directory the model reads, recorded with their SHA-256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    tmp_path = model_path.with_suffix(".tmp")
    joblib.dump(model, tmp_path, compress=3)
    os.replace(tmp_path, model_path)
    created = datetime.now(UTC)
    meta = ModelMeta(
        name=name,
        version=created.strftime("%Y%m%d-%H%M%S"),
        format_version=FORMAT_VERSION,
        created_at=created.isoformat(timespec="seconds"),
        model_sha256=file_sha256(model_path),
        labels=labels,
        library_versions=library_versions(),
        training_data=training_data,
        config=config,
        metrics=metrics,
        files={name: file_sha256(directory / name) for name in files},
        pipeline=pipeline,
    )
    (directory / META_FILE).write_text(
        json.dumps(meta.model_dump(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return meta


def read_meta(directory: str | Path) -> ModelMeta:
    """Read and validate ``meta.json`` of a model directory."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    if not meta_path.is_file():
        raise ModelLoadError(
            f"{directory} has no {META_FILE}: it is not a wangge model directory "
            "(create one with `wangge train`)"
        )
    try:
        return ModelMeta.model_validate(json.loads(meta_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ModelLoadError(f"{meta_path} is corrupt: {exc}") from exc


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_compatible(meta: ModelMeta, directory: Path) -> None:
    """Refuse a model whose format or pickled libraries differ from what is installed."""
    if meta.format_version not in READABLE_FORMATS:
        raise ModelLoadError(
            f"{directory} uses model format {meta.format_version}, this wangge reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}: retrain the model with this version"
        )
    installed = library_versions()
    for package in PICKLED_LIBRARIES:
        saved = meta.library_versions.get(package, "unknown")
        if _major_minor(saved) != _major_minor(installed[package]):
            raise ModelLoadError(
                f"{directory} was trained with {package} {saved} but {installed[package]} is "
                "installed; install the same version or retrain the model"
            )


def load_model(directory: str | Path) -> tuple[Any, ModelMeta]:
    """Load a model directory written by :func:`save_model`, after checking it."""
    directory = Path(directory)
    meta = read_meta(directory)
    check_compatible(meta, directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ModelLoadError(f"{directory} has no {MODEL_FILE}")
    if file_sha256(model_path) != meta.model_sha256:
        raise ModelLoadError(
            f"{model_path} does not match the checksum in {META_FILE}: the file is corrupt or "
            "was replaced; it was not loaded"
        )
    for name, digest in meta.files.items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != digest:
            raise ModelLoadError(
                f"{path} is missing or does not match the checksum in {META_FILE}; the model "
                "was not loaded"
            )
    try:
        model = joblib.load(model_path)
    except Exception as exc:  # a truncated or foreign file fails in many ways
        raise ModelLoadError(f"{model_path} could not be loaded: {exc}") from exc
    if hasattr(model, "attach"):  # a model with files beside the pickle (the transformer)
        model.attach(directory)
    logger.info("loaded model %s version %s from %s", meta.name, meta.version, directory)
    return model, meta
