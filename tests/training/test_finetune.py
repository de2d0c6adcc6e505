"""The transformer backend on a tiny, randomly initialised BERT made here (seconds, no
download): fine-tuning with class weights and early stopping, resuming, ONNX export and int8
quantisation with the agreement check, the ensemble with the linear model, loading with
checksums, and serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fastapi.testclient import TestClient  # noqa: E402

from wangge.errors import ModelLoadError  # noqa: E402
from wangge.models.transformer import EnsembleClassifier  # noqa: E402
from wangge.pipeline.artifact import load_model  # noqa: E402
from wangge.serve.app import create_app  # noqa: E402
from wangge.serve.config import Settings  # noqa: E402
from wangge.training.config import FineTuneConfig, TrainConfig  # noqa: E402
from wangge.training.finetune import SMOOTHING_ALPHAS, class_weights, fine_tune  # noqa: E402
from wangge.training.train import train  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_bert(directory: Path, texts: list[str]) -> Path:
    """A 2-layer BERT with a character vocabulary of ``texts``, randomly initialised."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = sorted({c for text in texts for c in text if not c.isspace()})
    vocab = {token: i for i, token in enumerate([*SPECIAL, *chars])}
    core = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
    )  # fmt: skip
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, demo_csv: Path) -> Path:
    frame = pd.read_csv(demo_csv, dtype=str).fillna("")
    texts = list(frame["留言主题"] + frame["留言详情"])
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), texts)


def tiny_config(base: Path, **changes: object) -> FineTuneConfig:
    values: dict = dict(base_model=base, max_length=48, epochs=2, batch_size=16,
                        learning_rate=1e-3, freeze_layers=1, layers=0, seed=7)  # fmt: skip
    values |= changes
    return FineTuneConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_csv: Path, tiny_bert: Path) -> Path:
    model_dir = tmp_path_factory.mktemp("ensemble")
    train(TrainConfig(data=demo_csv, model_dir=model_dir, backend="transformer",
                      fine_tune=tiny_config(tiny_bert)))  # fmt: skip
    return model_dir


def test_the_transformer_backend_saves_an_int8_ensemble(trained: Path) -> None:
    meta = json.loads((trained / "meta.json").read_text())
    facts = meta["metrics"]["transformer"]
    assert 0.0 <= facts["weight"] <= 1.0 and facts["temperature"] > 0
    assert 0.0 <= facts["int8_agreement"] <= 1.0
    agreements = facts["int8_validation_agreement"]  # one smoothed int8 graph tried per alpha
    assert set(agreements) == {str(alpha) for alpha in SMOOTHING_ALPHAS}
    assert agreements[str(facts["smoothing_alpha"])] == max(agreements.values())
    assert set(facts["holdout_macro_f1"]) == {"linear", "transformer", "ensemble"}
    assert facts["history"] and "eval_macro_f1" in facts["history"][0]
    assert set(meta["files"]) == {"transformer/model.onnx", "transformer/tokenizer.json",
                                  "transformer/config.json", "dedup_weights.json"}  # fmt: skip
    assert not (trained / "transformer-work").exists()  # checkpoints removed after success
    assert (trained / "transformer" / "model.fp32.onnx").is_file()  # kept for agreement checks
    model, _ = load_model(trained)
    assert isinstance(model, EnsembleClassifier)
    [prediction] = model.predict_explained(["小区垃圾桶满了好几天没人清理"], top_k=3)
    assert prediction.category in model.classes_ and len(prediction.top) == 3
    probabilities = model.predict_proba(["小区垃圾桶满了好几天没人清理", "工地晚上施工太吵"])
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_changed_onnx_file_is_refused(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    with (copy / "transformer" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="does not match the checksum"):
        load_model(copy)


def test_the_api_serves_the_ensemble(trained: Path, tmp_path: Path) -> None:
    settings = Settings(model_dir=trained, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                        encoder_dir=None, route=False)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/classify", json={"content": "工地晚上施工太吵"})
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["category"]


def test_fine_tuning_is_seeded_and_resumes(tiny_bert: Path, tmp_path: Path) -> None:
    texts = ["垃圾没人清理", "工地施工太吵", "路灯坏了", "学校收费"] * 8
    labels = ["环境", "噪音", "城建", "教育"] * 8
    classes = sorted(set(labels))
    # one 教育 fewer: it weighs 31/(4·7), the others 31/(4·8)
    assert np.allclose(class_weights(labels[:-1], classes), [31 / 32, 31 / 32, 31 / 28, 31 / 32])
    config = tiny_config(tiny_bert, epochs=1, batch_size=8, patience=10)
    messages: list[str] = []
    first = fine_tune(texts, labels, texts[:8], labels[:8], classes, config, tmp_path / "a")
    second = fine_tune(texts, labels, texts[:8], labels[:8], classes, config, tmp_path / "b")
    assert first.history == second.history  # same seed, same run
    longer = tiny_config(tiny_bert, epochs=2, batch_size=8, patience=10)
    resumed = fine_tune(texts, labels, texts[:8], labels[:8], classes, longer, tmp_path / "a",
                        progress=messages.append)  # fmt: skip
    assert any(m.startswith("resuming from") for m in messages)
    assert resumed.epochs_run == pytest.approx(2.0)
    impatient = tiny_config(tiny_bert, epochs=3, batch_size=8, patience=1)
    stopped = fine_tune(texts, labels, texts[:8], labels[:8], classes, impatient, tmp_path / "c")
    assert stopped.epochs_run < 3  # validation macro-F1 stalled: stopped early


def test_the_command_explains_a_missing_base_model(demo_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wangge.cli import app as cli

    args = ["train", "--data", str(demo_csv), "--model-dir", str(tmp_path / "m")]
    missing = CliRunner().invoke(
        cli, [*args, "--backend", "transformer", "--base-model", str(tmp_path / "none")]
    )
    assert missing.exit_code == 2 and "holds no Hugging Face checkpoint" in missing.output
    onnx_only = tmp_path / "e5-small"  # what `wangge models fetch-e5` writes by default
    onnx_only.mkdir()
    (onnx_only / "config.json").write_text("{}")
    (onnx_only / "encoder.onnx").write_bytes(b"")
    without_weights = CliRunner().invoke(
        cli, [*args, "--backend", "transformer", "--base-model", str(onnx_only)]
    )
    assert without_weights.exit_code == 2
    assert "wangge models fetch-e5 --checkpoint" in " ".join(without_weights.output.split())
    unknown = CliRunner().invoke(cli, [*args, "--backend", "svm"])
    assert unknown.exit_code == 2 and "backend = 'svm'" in unknown.output
    assert "'linear' or 'transformer'" in unknown.output


def test_a_smaller_model_keeps_the_lower_layers(tiny_bert: Path, tmp_path: Path) -> None:
    texts, labels = ["垃圾没人清理", "工地施工太吵"] * 8, ["环境", "噪音"] * 8
    config = tiny_config(tiny_bert, epochs=1, batch_size=8, layers=1, freeze_layers=0)
    result = fine_tune(texts, labels, texts[:4], labels[:4], ["噪音", "环境"], config, tmp_path)
    saved = json.loads((result.checkpoint / "config.json").read_text())
    assert saved["num_hidden_layers"] == 1
    with pytest.raises(Exception, match="layers must be between 1 and 2"):
        fine_tune(texts, labels, texts[:4], labels[:4], ["噪音", "环境"],
                  tiny_config(tiny_bert, layers=3), tmp_path / "x")  # fmt: skip


def test_a_missing_extra_is_named(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from wangge.errors import TrainingError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    config = TrainConfig(data=demo_csv, model_dir=tmp_path, backend="transformer",
                         fine_tune=FineTuneConfig(base_model=tmp_path))  # fmt: skip
    with pytest.raises(TrainingError, match="needs torch: install the transformer extra"):
        train(config)


def test_adapting_on_unlabelled_messages_gives_a_base_to_fine_tune(
    tiny_bert: Path, demo_csv: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from wangge.cli import app as cli

    adapted = tmp_path / "adapted"
    args = ["models", "adapt", "--data", str(demo_csv), "--base-model", str(tiny_bert),
            "--output", str(adapted), "--layers", "1", "--epochs", "1"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"--base-model {adapted}" in result.output
    assert json.loads((adapted / "config.json").read_text())["num_hidden_layers"] == 1
    assert not (adapted / "checkpoints").exists()
    before = transformers.AutoModel.from_pretrained(str(tiny_bert))
    after = transformers.AutoModel.from_pretrained(str(adapted))
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before.state_dict()[layer], after.state_dict()[layer])  # it learned

    texts, labels = ["垃圾没人清理", "工地施工太吵"] * 8, ["环境", "噪音"] * 8
    config = tiny_config(adapted, epochs=1, batch_size=8, freeze_layers=0)
    classes = ["噪音", "环境"]
    tuned = fine_tune(texts, labels, texts[:4], labels[:4], classes, config, tmp_path / "t")
    assert tuned.checkpoint.is_dir()

    empty = tmp_path / "empty.csv"
    empty.write_text("留言主题,留言详情\n的,了\n", encoding="utf-8")  # only stop words
    refused = CliRunner().invoke(cli, [*args[:3], str(empty), *args[4:]])
    assert refused.exit_code == 2 and "no text to adapt on" in refused.output
