"""The saved pipeline directory: what it was built with, and loading it only with the same.

A pipeline directory is what ``wangge train`` writes: the category model
(:mod:`wangge.pipeline.artifact`), its department model in ``department/``, the dedup pair
weights in ``dedup_weights.json``, and in ``meta.json`` the configuration and the
:class:`~wangge.pipeline.artifact.PipelineRecord`: the SHA-256 of the district tables
(:data:`DISTRICT_TABLES`), the sentence encoder (:data:`ENCODER_FILES`), the dedup weights and
the git commit. :func:`load_pipeline` refuses, with what differs and what to do:

- district tables other than those it was built with (changed since training, or another
  district's): retrain, or route with the district it was built with;
- a sentence encoder other than the one it expects: use that one, or retrain with this one
  (a pipeline built where there was no encoder expects none in particular; without an encoder
  the detector runs in the lexical mode, whose weights the file holds too).

A directory without the record (model format 1, written before it) loads with a warning:
nothing is checked and the shipped dedup weights apply.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wangge.errors import DataError, ModelLoadError
from wangge.models.dedup import SHIPPED_WEIGHTS, WEIGHTS_FILE, DedupWeights
from wangge.nlp.embeddings import CONFIG_FILE, ENCODER_FILE, TOKENIZER_FILE
from wangge.nlp.registry import default_district_dir
from wangge.pipeline.artifact import (
    DistrictRecord,
    EncoderRecord,
    ModelMeta,
    department_model_dir,
    file_sha256,
    load_model,
)

logger = logging.getLogger(__name__)

#: The files of a district directory the router and the department model read.
DISTRICT_TABLES = (
    "units.csv", "grids.csv", "grids.geojson", "elsewhere.csv", "departments.csv", "routing.csv",
    "matters.csv", "matter_examples.csv",
)  # fmt: skip
#: The files of an encoder directory the sentence encoder runs from.
ENCODER_FILES = (ENCODER_FILE, TOKENIZER_FILE, CONFIG_FILE)
DEDUP_WEIGHTS_FILE = "dedup_weights.json"
SOURCES_FILE = "sources.json"  # what `wangge models fetch-e5` built the encoder from


def district_record(district_dir: str | Path | None) -> DistrictRecord:
    """The tables of a district directory (default: the shipped 萧山区) with their SHA-256."""
    directory = Path(district_dir) if district_dir is not None else default_district_dir()
    if not (directory / "units.csv").is_file():
        raise DataError("no units.csv: not a district directory", path=directory)
    tables = {
        name: file_sha256(directory / name)
        for name in DISTRICT_TABLES
        if (directory / name).is_file()
    }
    return DistrictRecord(directory=str(directory), tables=tables)


def encoder_record(encoder_dir: str | Path) -> EncoderRecord:
    """A sentence encoder directory's id and the SHA-256 of the files it runs from."""
    directory = Path(encoder_dir).expanduser()
    if not (directory / ENCODER_FILE).is_file():
        raise DataError(
            f"no {ENCODER_FILE} in this encoder directory (run `wangge models fetch-e5`)",
            path=directory,
        )
    return EncoderRecord(
        id=_encoder_id(directory),
        directory=str(directory.resolve()),
        sha256={
            name: file_sha256(directory / name)
            for name in ENCODER_FILES
            if (directory / name).is_file()
        },
    )


def _encoder_id(directory: Path) -> str:
    """The directory's name, with the package its graph was built from when ``sources.json``
    says (``wangge models fetch-e5`` writes it)."""
    try:
        source = json.loads((directory / SOURCES_FILE).read_text(encoding="utf-8"))[ENCODER_FILE]
        return f"{directory.name} ({source['package']} {source['version']})"
    except (OSError, ValueError, KeyError, TypeError):
        return directory.name


def shipped_weights_path() -> Path:
    """``data/dedup_weights.json``: the weights the detector uses unless given others."""
    return Path(str(resources.files("wangge.data") / WEIGHTS_FILE))


def dedup_weights_json(path: str | Path) -> dict[str, Any]:
    """The content of a dedup weights file (``wangge dedup fit`` writes them), checked to
    hold the weights of both modes."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        DedupWeights.from_dict(payload)
    except FileNotFoundError:
        raise DataError("dedup weights file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"dedup weights not readable: {error}", path=path) from None
    except (ValueError, TypeError, AttributeError) as error:
        raise DataError(f"not dedup weights (`wangge dedup fit` writes them): {error}",
                        path=path) from None  # fmt: skip
    return payload


def read_dedup_weights(path: str | Path) -> DedupWeights:
    """The dedup weights of a file written by ``wangge dedup fit``."""
    return DedupWeights.from_dict(dedup_weights_json(path))


def check_district(meta: ModelMeta, model_dir: Path, district_dir: str | Path) -> None:
    """Refuse district tables other than those the pipeline was built with."""
    if meta.pipeline is None:
        return
    built = meta.pipeline.district
    now = district_record(district_dir).tables
    differences = _differences(built.tables, now)
    if differences:
        raise ModelLoadError(
            f"{model_dir} was built with other district tables than those of {district_dir}: "
            f"{differences} (it was built with {built.directory}). The district changed since "
            f"training, or it is another district: retrain (`wangge train --district "
            f"{district_dir}`), or route with the district it was built with"
        )


def check_encoder(meta: ModelMeta, model_dir: Path, encoder_dir: str | Path) -> None:
    """Refuse a sentence encoder other than the one the pipeline expects."""
    expected = meta.pipeline.encoder if meta.pipeline is not None else None
    if expected is None:
        return
    found = encoder_record(encoder_dir)
    differences = _differences(expected.sha256, found.sha256)
    if differences:
        digest = expected.sha256.get(ENCODER_FILE, "")[:12]
        raise ModelLoadError(
            f"{model_dir} expects the sentence encoder {expected.id} ({ENCODER_FILE} sha256 "
            f"{digest}…, at {expected.directory} when it was trained), but the encoder at "
            f"{encoder_dir} ({found.id}) differs: {differences}. Use the expected encoder "
            f"(--encoder or WANGGE_ENCODER_DIR), or retrain with this one (`wangge train "
            f"--encoder {encoder_dir}`)"
        )


def _differences(built: dict[str, str], now: dict[str, str]) -> str:
    """What differs between two name -> SHA-256 maps, e.g. "routing.csv changed"; "" if
    nothing does."""
    changed = [name for name in built if name in now and now[name] != built[name]]
    gone = [name for name in built if name not in now]
    new = [name for name in now if name not in built]
    return "; ".join(
        f"{', '.join(names)} {what}"
        for names, what in ((changed, "changed"), (gone, "missing"), (new, "not there before"))
        if names
    )


@dataclass(frozen=True)
class SavedPipeline:
    """A pipeline directory, loaded and checked: its models, metadata and dedup weights."""

    classifier: Any
    meta: ModelMeta
    department_model: Any | None
    dedup_weights: DedupWeights


def load_pipeline(
    model_dir: str | Path,
    *,
    district_dir: str | Path | None = None,
    encoder_dir: str | Path | None = None,
    departments: bool = True,
) -> SavedPipeline:
    """Load a pipeline directory to run with the district tables of ``district_dir`` and the
    sentence encoder of ``encoder_dir`` (None: no routing, no encoder; nothing to check);
    :class:`~wangge.errors.ModelLoadError` when they are not those it was built with. The
    department model is loaded when there is one and ``departments``."""
    model_dir = Path(model_dir)
    classifier, meta = load_model(model_dir)
    if meta.pipeline is None:
        logger.warning(
            "%s has no pipeline record (model format %d, or saved without `wangge train`): its "
            "district tables and encoder are not checked and the shipped dedup weights apply; "
            "retrain to record them",
            model_dir,
            meta.format_version,
        )
    if district_dir is not None:
        check_district(meta, model_dir, district_dir)
    if encoder_dir is not None:
        check_encoder(meta, model_dir, encoder_dir)
    weights = SHIPPED_WEIGHTS
    if meta.pipeline is not None:  # its checksum was checked with the model's files
        weights = read_dedup_weights(model_dir / meta.pipeline.dedup_weights.file)
    department_dir = department_model_dir(model_dir)
    department = load_model(department_dir)[0] if departments and department_dir.is_dir() else None
    return SavedPipeline(classifier, meta, department, weights)
