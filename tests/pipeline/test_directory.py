"""The saved pipeline directory: ``meta.json`` records what it was built with, and loading it
with other district tables or another sentence encoder is refused, saying what differs."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from fastapi.testclient import TestClient

from wangge.errors import DataError, ModelLoadError
from wangge.models.dedup import SHIPPED_WEIGHTS, DedupWeights, DuplicateDetector, ModeWeights
from wangge.models.router import MessageRouter
from wangge.pipeline import Triage
from wangge.pipeline.artifact import FORMAT_VERSION, META_FILE, file_sha256, read_meta
from wangge.pipeline.directory import (
    DEDUP_WEIGHTS_FILE,
    load_pipeline,
    read_dedup_weights,
    shipped_weights_path,
)
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.service import prepare_model
from wangge.training.config import DedupConfig, TrainConfig
from wangge.training.train import git_commit, train

BINJIANG = REPO_ROOT / "tests" / "fixtures" / "district_binjiang"
XIAOSHAN = REPO_ROOT / "data" / "districts" / "xiaoshan"


def fake_encoder_dir(directory: Path, graph: bytes) -> Path:
    """The files a sentence encoder runs from; only their bytes matter here."""
    directory.mkdir(parents=True)
    (directory / "encoder.onnx").write_bytes(graph)
    (directory / "tokenizer.json").write_text("{}", encoding="utf-8")
    (directory / "config.json").write_text('{"hidden_size": 4}', encoding="utf-8")
    return directory


@dataclass(frozen=True)
class Built:
    model_dir: Path
    district: Path
    encoder: Path


@pytest.fixture(scope="module")
def built(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("pipeline")
    district = Path(shutil.copytree(BINJIANG, root / "district"))
    encoder = fake_encoder_dir(root / "encoder", b"graph A")
    config = TrainConfig(
        data=demo_csv, model_dir=root / "model", district_dir=district, encoder_dir=encoder
    )
    train(config, progress=lambda line: None)
    return Built(root / "model", district, encoder)


def test_meta_records_what_the_pipeline_was_built_with(built: Built) -> None:
    meta = read_meta(built.model_dir)
    assert meta.format_version == FORMAT_VERSION == 2
    record = meta.pipeline
    assert record is not None
    tables = ("units.csv", "grids.geojson", "departments.csv", "routing.csv")
    assert record.district.tables == {name: file_sha256(built.district / name) for name in tables}
    assert record.encoder is not None and record.encoder.id == "encoder"
    assert record.encoder.sha256 == {
        name: file_sha256(built.encoder / name)
        for name in ("encoder.onnx", "tokenizer.json", "config.json")
    }
    copied = built.model_dir / DEDUP_WEIGHTS_FILE
    assert read_dedup_weights(copied) == SHIPPED_WEIGHTS
    assert meta.files[DEDUP_WEIGHTS_FILE] == file_sha256(copied)  # checked when loaded
    assert record.dedup_weights.sha256 == file_sha256(shipped_weights_path())
    assert record.git_commit == git_commit()
    assert meta.config["district_dir"] == str(built.district)
    assert meta.config["encoder_dir"] == str(built.encoder)
    assert meta.config["dedup"]["window_days"] == DedupConfig().window_days


def test_git_commit_is_the_checkout_head_or_none_without_git(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        pytest.skip("the tests do not run from a git checkout")
    assert git_commit() == head.stdout.strip()
    monkeypatch.setenv("PATH", str(tmp_path))  # no git to run
    assert git_commit() is None


def test_same_tables_elsewhere_and_same_encoder_load(built: Built, tmp_path: Path) -> None:
    district = Path(shutil.copytree(built.district, tmp_path / "district"))
    encoder = fake_encoder_dir(tmp_path / "encoder", b"graph A")
    saved = load_pipeline(built.model_dir, district_dir=district, encoder_dir=encoder)
    assert saved.dedup_weights == SHIPPED_WEIGHTS
    triage = Triage.load(built.model_dir, router=MessageRouter.load(district, ner=False))
    assert triage.router is not None and triage.classifier is not None


def add_elsewhere(district: Path) -> None:
    (district / "elsewhere.csv").write_text("name,level,belongs_to\n余杭区,district,杭州市\n")


def replace_grids(district: Path) -> None:
    (district / "grids.geojson").unlink()
    (district / "grids.csv").write_text("id,name,community,aliases\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "difference"),
    [
        (lambda d: (d / "routing.csv").write_text((d / "routing.csv").read_text() + "\n"),
         "routing.csv changed"),
        (add_elsewhere, "elsewhere.csv not there before"),
        (replace_grids, "grids.geojson missing; grids.csv not there before"),
    ],
)  # fmt: skip
def test_other_district_tables_are_refused(
    built: Built, tmp_path: Path, edit: Callable[[Path], object], difference: str
) -> None:
    district = Path(shutil.copytree(built.district, tmp_path / "district"))
    edit(district)
    with pytest.raises(ModelLoadError) as error:
        load_pipeline(built.model_dir, district_dir=district)
    message = str(error.value)
    assert difference in message and "retrain" in message
    assert f"--district {district}" in message and str(built.district) in message


def test_triage_load_refuses_a_router_of_changed_tables(built: Built, tmp_path: Path) -> None:
    district = Path(shutil.copytree(built.district, tmp_path / "district"))
    (district / "routing.csv").write_text((district / "routing.csv").read_text() + "\n")
    router = MessageRouter.load(district, ner=False)
    with pytest.raises(ModelLoadError, match="routing.csv changed"):
        Triage.load(built.model_dir, router=router)


class DirectoryEncoder:
    """A sentence encoder read from ``directory`` (the check reads its files only)."""

    dim = 4

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))


def test_another_encoder_is_refused(built: Built, tmp_path: Path) -> None:
    other = fake_encoder_dir(tmp_path / "other", b"graph B")
    with pytest.raises(ModelLoadError) as error:
        load_pipeline(built.model_dir, encoder_dir=other)
    message = str(error.value)
    assert "expects the sentence encoder encoder" in message
    assert "encoder.onnx changed" in message and str(built.encoder) in message
    assert "WANGGE_ENCODER_DIR" in message and f"--encoder {other}" in message
    detector = DuplicateDetector(DirectoryEncoder(other), entities=False)
    with pytest.raises(ModelLoadError, match="encoder.onnx changed"):
        Triage.load(built.model_dir, detector=detector)
    same = DuplicateDetector(DirectoryEncoder(built.encoder), entities=False)
    assert Triage.load(built.model_dir, detector=same).detector is same


def test_the_service_refuses_other_tables_or_encoder(built: Built, tmp_path: Path) -> None:
    district = Path(shutil.copytree(built.district, tmp_path / "district"))
    settings = Settings(model_dir=built.model_dir, district_dir=district, encoder_dir=built.encoder)
    assert prepare_model(settings).meta == read_meta(built.model_dir)
    (district / "routing.csv").write_text((district / "routing.csv").read_text() + "\n")
    with pytest.raises(ModelLoadError, match="routing.csv changed"):
        prepare_model(settings)
    other = fake_encoder_dir(tmp_path / "other", b"graph B")
    unrouted = Settings(model_dir=built.model_dir, route=False, encoder_dir=other)
    with pytest.raises(ModelLoadError, match="expects the sentence encoder"):
        prepare_model(unrouted)
    # no encoder where the service looks: the lexical mode, which the weights cover
    lexical = Settings(model_dir=built.model_dir, route=False, encoder_dir=tmp_path / "none")
    assert prepare_model(lexical).meta.pipeline is not None


def test_tampered_dedup_weights_are_refused(built: Built, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(built.model_dir, tmp_path / "model"))
    weights = copy / DEDUP_WEIGHTS_FILE
    weights.write_text(weights.read_text().replace('"threshold": 0.', '"threshold": 0.1'))
    with pytest.raises(ModelLoadError, match="dedup_weights.json is missing or does not match"):
        load_pipeline(copy)


def test_a_directory_without_the_record_loads_unchecked(
    built: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Written before the record (format 1): nothing to check, the shipped weights apply."""
    copy = Path(shutil.copytree(built.model_dir, tmp_path / "model"))
    meta = json.loads((copy / META_FILE).read_text(encoding="utf-8"))
    del meta["pipeline"], meta["files"][DEDUP_WEIGHTS_FILE]
    meta["format_version"] = 1
    (copy / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    (copy / DEDUP_WEIGHTS_FILE).unlink()
    other = fake_encoder_dir(tmp_path / "other", b"graph B")
    with caplog.at_level(logging.WARNING):
        saved = load_pipeline(copy, district_dir=XIAOSHAN, encoder_dir=other)
    assert saved.dedup_weights == SHIPPED_WEIGHTS
    assert "no pipeline record (model format 1" in caplog.text and "retrain" in caplog.text


def test_train_copies_the_dedup_weights_given_with_thresholds_replaced(
    demo_csv: Path, tmp_path: Path
) -> None:
    fitted = tmp_path / "weights.json"
    lexical = replace(SHIPPED_WEIGHTS.lexical, threshold=0.6)
    given = DedupWeights(encoder=SHIPPED_WEIGHTS.encoder, lexical=lexical)
    fitted.write_text(json.dumps(given.as_dict() | {"fitted": {"pairs": []}}), encoding="utf-8")
    config = TrainConfig(
        data=demo_csv,
        model_dir=tmp_path / "model",
        dedup=DedupConfig(weights=fitted, encoder_threshold=0.5),
    )
    train(config, progress=lambda line: None)
    saved = load_pipeline(tmp_path / "model")
    assert saved.dedup_weights == replace(given, encoder=replace(given.encoder, threshold=0.5))
    copied = json.loads((tmp_path / "model" / DEDUP_WEIGHTS_FILE).read_text(encoding="utf-8"))
    assert copied["fitted"] == {"pairs": []}
    record = saved.meta.pipeline
    assert record is not None and record.dedup_weights.source == str(fitted)
    assert record.encoder is None  # no encoder in the test's WANGGE_HOME


def test_the_service_compares_duplicates_with_the_weights_of_its_model(
    demo_csv: Path, tmp_path: Path
) -> None:
    """POST /v1/messages decides with the dedup weights saved in the served directory."""
    fitted = tmp_path / "weights.json"
    lexical = ModeWeights(replace(SHIPPED_WEIGHTS.lexical.weights, bias=-1.5), threshold=0.9)
    given = DedupWeights(encoder=SHIPPED_WEIGHTS.encoder, lexical=lexical)
    fitted.write_text(json.dumps(given.as_dict()), encoding="utf-8")
    config = TrainConfig(
        data=demo_csv, model_dir=tmp_path / "model", dedup=DedupConfig(weights=fitted)
    )
    train(config, progress=lambda line: None)
    database = f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    settings = Settings(model_dir=tmp_path / "model", route=False, encoder_dir=None,
                        database_url=database)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        detector = client.app.state.ingestor.detector  # type: ignore[attr-defined]
        assert (detector.weights, detector.threshold) == (lexical.weights, 0.9)
    explicit = settings.model_copy(update={"dedup_threshold": 0.7})
    with TestClient(create_app(explicit)) as client:
        assert client.app.state.ingestor.detector.threshold == 0.7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "make", "expected"),
    [
        ("district_dir", lambda p: p, "no units.csv"),
        ("encoder_dir", lambda p: p, "no encoder.onnx"),
        ("dedup", lambda p: DedupConfig(weights=p / "w.json"), "dedup weights file not found"),
    ],
)
def test_train_refuses_what_it_cannot_record_before_writing(
    demo_csv: Path, tmp_path: Path, key: str, make: Callable[[Path], object], expected: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = TrainConfig(data=demo_csv, model_dir=tmp_path / "model", **{key: make(empty)})
    with pytest.raises(DataError, match=expected):
        train(config, progress=lambda line: None)
    assert not (tmp_path / "model").exists()
