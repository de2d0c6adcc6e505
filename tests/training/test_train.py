"""Tests for wangge.training.train: the training pipeline on the shipped demo data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_LABELS
from pydantic import ValidationError

from wangge.batch.classify import classify_file
from wangge.batch.files import load_messages
from wangge.errors import DataError, TrainingError
from wangge.models.router import MessageRouter
from wangge.pipeline.artifact import file_sha256, load_model
from wangge.training.config import TrainConfig
from wangge.training.train import (
    CONFUSION_PNG,
    REPORT_JSON,
    REPORT_MARKDOWN,
    TrainResult,
    fingerprint,
    train,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(
    demo_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path, list[str]]:
    model_dir = tmp_path_factory.mktemp("train") / "category"
    messages: list[str] = []
    result = train(TrainConfig(data=demo_csv, model_dir=model_dir), progress=messages.append)
    return result, model_dir, messages


def write_small_csv(path: Path, corpus: tuple[list[str], list[str]], **overrides: str) -> Path:
    """The test corpus as a CSV with the usual Chinese column names."""
    texts, labels = corpus
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["留言编号", "留言详情", "一级标签"])
        for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
            writer.writerow([str(i), overrides.get(str(i), text), label])
    return path


def test_train_writes_model_directory(trained: tuple[TrainResult, Path, list[str]]) -> None:
    _result, model_dir, _ = trained
    names = {path.name for path in model_dir.iterdir()}
    assert {"model.joblib", "meta.json", REPORT_MARKDOWN, REPORT_JSON, CONFUSION_PNG} <= names
    assert (model_dir / CONFUSION_PNG).read_bytes().startswith(PNG_SIGNATURE)


def test_train_meta_json(trained: tuple[TrainResult, Path, list[str]], demo_csv: Path) -> None:
    result, model_dir, _ = trained
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["name"] == "category"
    assert meta["labels"] == DEMO_LABELS
    assert meta["model_sha256"] == file_sha256(model_dir / "model.joblib")

    holdout = meta["metrics"]["holdout"]
    assert holdout["n"] == 42  # 15 % of 280, stratified
    assert 0.7 <= holdout["macro_f1"] <= 1.0
    assert holdout["macro_f1"] == round(result.holdout.macro_f1, 4)

    data = load_messages(demo_csv, require_label=True)
    training = meta["training_data"]
    assert training["rows"] == 280
    assert training["sha256"] == fingerprint(data.texts, data.labels)
    assert training["label_counts"] == {label: 40 for label in DEMO_LABELS}
    assert training["text_columns"] == ["留言主题", "留言详情"]
    assert training["label_column"] == "一级标签"

    threshold = meta["metrics"]["review_threshold"]
    assert 0.0 < threshold <= 1.0
    assert threshold == result.review_threshold
    assert meta["metrics"]["review_coverage"] == result.review_coverage
    assert meta["metrics"]["review_target_accuracy"] == 0.97
    assert meta["config"]["seed"] == 42 and meta["config"]["holdout"] == 0.15
    assert meta["config"]["classifier_params"]["review_threshold"] == threshold


def test_train_saved_model_loads_and_carries_threshold(
    trained: tuple[TrainResult, Path, list[str]], demo_csv: Path
) -> None:
    result, model_dir, _ = trained
    model, meta = load_model(model_dir)
    # (compared as JSON: the in-memory meta holds tuples where meta.json has lists)
    assert json.loads(meta.model_dump_json()) == json.loads(result.meta.model_dump_json())
    assert model.review_threshold == result.review_threshold
    data = load_messages(demo_csv, require_label=True)
    # Refitted on all rows: the training data is recognised almost perfectly.
    assert np.mean(model.predict(data.texts[:70]) == np.asarray(data.labels[:70])) >= 0.95


def test_train_reports(trained: tuple[TrainResult, Path, list[str]]) -> None:
    result, model_dir, _ = trained
    markdown = (model_dir / REPORT_MARKDOWN).read_text(encoding="utf-8")
    assert f"macro-F1: {result.holdout.macro_f1:.4f}" in markdown
    assert all(label in markdown for label in DEMO_LABELS)
    report = json.loads((model_dir / REPORT_JSON).read_text(encoding="utf-8"))
    assert report["labels"] == DEMO_LABELS
    assert report["n"] == 42
    assert sum(map(sum, report["confusion"])) == 42
    assert report["training"]["review_threshold"] == result.review_threshold


def test_train_result_and_progress(trained: tuple[TrainResult, Path, list[str]]) -> None:
    result, _, messages = trained
    assert result.holdout.n == 42
    assert 0 <= result.review_coverage <= 1
    assert result.seconds > 0
    assert any("280 messages" in message and "7 categories" in message for message in messages)
    assert any("saved category model" in message for message in messages)


def test_train_without_refit_on_small_corpus(
    tmp_path: Path, corpus: tuple[list[str], list[str]]
) -> None:
    data = write_small_csv(tmp_path / "small.csv", corpus)
    result = train(
        TrainConfig(
            data=data,
            model_dir=tmp_path / "model",
            refit=False,
            holdout=0.25,
            review={"accuracy": 0.8},
            classifier={"taxonomy_weight": 0},
        ),
        progress=lambda _message: None,
    )
    assert result.holdout.n == 12
    meta = json.loads((tmp_path / "model" / "meta.json").read_text(encoding="utf-8"))
    assert meta["config"]["refit"] is False
    assert meta["config"]["classifier"]["taxonomy_weight"] == 0
    assert meta["config"]["review"]["accuracy"] == 0.8
    assert meta["metrics"]["review_target_accuracy"] == 0.8
    assert meta["training_data"]["text_columns"] == ["留言详情"]
    model, _ = load_model(tmp_path / "model")
    assert model.taxonomy_weight == 0


def test_train_same_data_same_fingerprint() -> None:
    assert fingerprint(["甲", "乙"], ["a", "b"]) == fingerprint(["甲", "乙"], ["a", "b"])
    assert fingerprint(["甲", "乙"], ["a", "b"]) != fingerprint(["乙", "甲"], ["a", "b"])
    # The separators keep text and label apart.
    assert fingerprint(["ab"], ["c"]) != fingerprint(["a"], ["bc"])


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.1, 1.5])
def test_train_invalid_holdout(tmp_path: Path, holdout: float) -> None:
    with pytest.raises(ValidationError, match="holdout"):
        TrainConfig(data=tmp_path / "d.csv", model_dir=tmp_path / "m", holdout=holdout)


def test_train_category_with_single_example(
    tmp_path: Path, corpus: tuple[list[str], list[str]]
) -> None:
    texts, labels = corpus
    data = write_small_csv(tmp_path / "small.csv", ([*texts, "低保申请被拒"], [*labels, "民政"]))
    with pytest.raises(TrainingError, match="民政"):
        train(TrainConfig(data=data, model_dir=tmp_path / "m"), progress=lambda _m: None)


def test_train_holdout_too_small_for_every_category(
    tmp_path: Path, corpus: tuple[list[str], list[str]]
) -> None:
    data = write_small_csv(tmp_path / "small.csv", corpus)
    with pytest.raises(TrainingError, match="stratified"):
        train(
            TrainConfig(data=data, model_dir=tmp_path / "m", holdout=0.05), progress=lambda _m: None
        )


def test_train_empty_label_names_row(tmp_path: Path, corpus: tuple[list[str], list[str]]) -> None:
    texts, labels = corpus
    labels = list(labels)
    labels[4] = " "
    data = write_small_csv(tmp_path / "small.csv", (texts, labels))
    with pytest.raises(DataError) as caught:
        train(TrainConfig(data=data, model_dir=tmp_path / "m"), progress=lambda _m: None)
    assert caught.value.row == 6 and caught.value.column == "一级标签"


def test_train_config_as_json(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "d.csv", model_dir=tmp_path / "m", text_columns=["标题"])
    values = config.model_dump(mode="json")
    assert values["data"] == str(tmp_path / "d.csv")
    assert values["model_dir"] == str(tmp_path / "m")
    assert values["text_columns"] == ["标题"]
    json.dumps(values)
    default = TrainConfig(data=Path("x"), model_dir=Path("y")).model_dump(mode="json")
    assert default["text_columns"] is None


def test_train_config_tokenizer_reads_word_lists(tmp_path: Path) -> None:
    user_dict = tmp_path / "places.txt"
    user_dict.write_text("# compounds\n回澜南苑\n", encoding="utf-8")
    stopwords = tmp_path / "stop.txt"
    stopwords.write_text("门口\n", encoding="utf-8")
    config = TrainConfig(
        data=tmp_path / "unused.csv", model_dir=tmp_path / "m", user_dict=user_dict,
        stopwords=stopwords,
    )  # fmt: skip
    assert config.tokenizer()("回澜南苑门口垃圾成堆") == ["回澜南苑", "垃圾", "成堆"]
    assert config.model_dump(mode="json")["user_dict"] == str(user_dict)


def test_train_config_missing_word_list(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "x.csv", model_dir=tmp_path, user_dict=tmp_path / "no.txt")
    with pytest.raises(DataError, match="no.txt"):
        config.tokenizer()


DEPARTMENT_OF = {
    "城乡建设": "区住建局", "环境保护": "区生态环境分局", "交通运输": "区交通运输局",
    "教育文体": "区教育局", "劳动和社会保障": "区人力社保局", "商贸旅游": "区市场监管局",
    "卫生计生": "区卫生健康局",
}  # fmt: skip


def test_department_column_trains_a_department_classifier_used_by_routing(
    tmp_path: Path, demo_csv: Path
) -> None:
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    frame["部门"] = frame["一级标签"].map(DEPARTMENT_OF)
    frame.loc[::5, "部门"] = ""  # rows naming no department are left out of its training
    data = tmp_path / "with_departments.csv"
    frame.to_csv(data, index=False)
    messages: list[str] = []
    train(
        TrainConfig(data=data, model_dir=tmp_path / "model", department_column="部门"),
        progress=messages.append,
    )
    department_dir = tmp_path / "model" / "department"
    meta = json.loads((department_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["name"] == "department" and sorted(meta["labels"]) == sorted(DEPARTMENT_OF.values())
    assert meta["training_data"]["rows"] == len(frame) - len(frame[::5])
    assert any("224 messages, 7 departments" in message for message in messages)

    scored = tmp_path / "scored.jsonl"
    classify_file(tmp_path / "model", data, scored, router=MessageRouter.load(ner=False))
    records = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    reasons = [r for record in records for d in record["departments"] for r in d["reasons"]]
    assert any(reason.startswith("部门模型") for reason in reasons)


def test_reviewers_reassignments_train_the_department_classifier(
    tmp_path: Path, demo_csv: Path
) -> None:
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    # an export-reviews file: the department column holds where a reviewer moved a message
    reviews = frame.iloc[:120].copy()
    reviews["department"] = reviews["一级标签"].map(DEPARTMENT_OF)
    reviews.loc[reviews["一级标签"] == "环境保护", "department"] = "区城管局"  # moved there
    reviews.loc[::4, "department"] = ""  # accepted as routed: no reassignment
    exported = tmp_path / "reviews.csv"
    reviews.to_csv(exported, index=False)
    messages: list[str] = []
    train(
        TrainConfig(data=demo_csv, model_dir=tmp_path / "model", reviews=exported),
        progress=messages.append,
    )
    meta = json.loads((tmp_path / "model" / "department" / "meta.json").read_text("utf-8"))
    moved = reviews[reviews["department"] != ""]
    assert sorted(meta["labels"]) == sorted(set(moved["department"]))
    assert "区生态环境分局" not in meta["labels"]  # every such message was moved to 区城管局
    assert meta["training_data"]["rows"] == len(moved)
    assert any(f"{len(moved)} of 120 messages of {exported} name one" in m for m in messages)
