"""Tests for wangge.training.config: TOML files, dotted overrides, errors naming the key, the
options `wangge train` forwards, and defaults defined once."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from wangge.cli import TRAIN_OPTION_KEYS, app
from wangge.models import dedup
from wangge.models.classifier import MessageClassifier
from wangge.training.config import (
    NOT_CLASSIFIER_SETTINGS,
    AdaptConfig,
    ClassifierConfig,
    ConfigError,
    DedupConfig,
    FineTuneConfig,
    TrainConfig,
    load_train_config,
    parse_override,
    to_toml,
)

REPOSITORY = Path(__file__).resolve().parents[2]
REQUIRED = {"data": "d.csv", "model_dir": "m"}


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_sets_options_and_sections(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path / "train.toml",
        'data = "x.csv"\nmodel_dir = "out"\nholdout = 0.2\ntext_columns = ["标题", "正文"]\n'
        '[classifier]\nalpha = 2\nclass_weight = "none"\n[review]\naccuracy = 0.9\n'
        "[fine_tune]\nlayers = 0\n[dedup]\nwindow_days = 30\n",
    )
    config = load_train_config(path)
    assert (config.data, config.model_dir, config.holdout) == (Path("x.csv"), Path("out"), 0.2)
    assert config.text_columns == ["标题", "正文"]
    assert config.classifier.alpha == 2.0 and config.review.accuracy == 0.9
    assert config.classifier.parameters()["class_weight"] is None  # MessageClassifier's None
    assert config.fine_tune.layers == 0 and config.dedup.window_days == 30
    assert config.seed == TrainConfig.model_fields["seed"].default  # not in the file


def test_set_overrides_the_file_and_options_override_both(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "t.toml", 'data = "x.csv"\nmodel_dir = "m"\nseed = 1\n')
    config = load_train_config(
        path,
        ["classifier.alpha=3.5", "seed=2", "review.accuracy=0.8", "label_column=类别"],
        {"seed": 3, "holdout": None},  # None: an option not given
    )
    assert config.classifier.alpha == 3.5 and config.review.accuracy == 0.8
    assert config.seed == 3 and config.label_column == "类别"
    assert config.holdout == TrainConfig.model_fields["holdout"].default


def test_override_values_are_toml_or_text() -> None:
    assert parse_override("refit=false") == ("refit", False)
    assert parse_override("classifier.char_ngram_range=[1, 2]") == (
        "classifier.char_ngram_range",
        [1, 2],
    )
    assert parse_override(" holdout = 0.3") == ("holdout", 0.3)
    assert parse_override("label_column=一级标签") == ("label_column", "一级标签")
    assert parse_override('label_column="1"') == ("label_column", "1")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("classifier.alpha")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["classifier.C=2.0"], "classifier.C: unknown key (known here: word_ngram_max"),
        (["colour=red"], "colour: unknown key (known here: data, model_dir"),
        (["review.accuracy=high"], "review.accuracy = 'high'"),
        (["holdout=1.5"], "holdout = 1.5: Input should be less than 1"),
        (["backend=svm"], "backend = 'svm'"),
        (["holdout=0.2", "holdout.share=0.2"], "holdout is a value, not a section"),
    ],
)
def test_bad_keys_and_values_are_named(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration|not a section") as caught:
        load_train_config(None, overrides, REQUIRED)
    assert expected in str(caught.value)


def test_missing_required_options_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_train_config(None, [], {"model_dir": "m"})
    assert "data: missing (give --data, or set data in the --config file)" in str(caught.value)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml not found"):
        load_train_config(tmp_path / "nope.toml")
    broken = write_toml(tmp_path / "broken.toml", "holdout = = 2\n")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_train_config(broken)


def test_to_toml_reads_back_to_the_same_configuration(tmp_path: Path) -> None:
    config = load_train_config(
        None,
        [
            'text_columns=["标题"]',
            'classifier.class_weight="none"',
            "fine_tune.seed=5",
            f'user_dict="{tmp_path / "词 表.txt"}"',
            'department_column="部\\"门"',
        ],  # fmt: skip
        REQUIRED,
    )
    text = to_toml(config)
    assert TrainConfig.model_validate(tomllib.loads(text)) == config
    assert "\n# stopwords is not set\n" in text  # TOML has no null


def test_fine_tuning_follows_the_run_seed_unless_set() -> None:
    assert load_train_config(None, ["seed=9"], REQUIRED).fine_tune.seed == 9
    assert load_train_config(None, ["seed=9", "fine_tune.seed=4"], REQUIRED).fine_tune.seed == 4


def test_the_example_in_docs_loads() -> None:
    config = load_train_config(REPOSITORY / "docs" / "train.example.toml")
    assert config.data == Path("data/demo/messages.csv")
    assert config.classifier.alpha == 2.0 and config.review.accuracy == 0.9


# -- defaults defined once ---------------------------------------------------------------------
def test_classifier_section_is_messageclassifiers_hyperparameters_with_its_defaults() -> None:
    signature = inspect.signature(MessageClassifier.__init__).parameters
    hyperparameters = {
        name: parameter.default
        for name, parameter in signature.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in NOT_CLASSIFIER_SETTINGS
    }
    assert ClassifierConfig().parameters() == hyperparameters


def test_dedup_and_adapt_defaults_come_from_their_sources() -> None:
    defaults = DedupConfig()
    assert defaults.window_days == dedup.DEFAULT_WINDOW_DAYS
    # the weights file holds the weights and thresholds: none unless replaced
    assert (defaults.weights, defaults.encoder_threshold, defaults.lexical_threshold) == (
        None,
        None,
        None,
    )
    adapt, fine_tune = AdaptConfig(), FineTuneConfig()
    assert (adapt.layers, adapt.max_length) == (fine_tune.layers, fine_tune.max_length)


def command_defaults(*path: str) -> dict[str, object]:
    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]  # type: ignore[attr-defined]
    return {param.name: param.default for param in group.params if param.name}


def test_cli_options_of_configured_keys_default_to_not_given() -> None:
    train = command_defaults("train")
    assert set(TRAIN_OPTION_KEYS) <= set(train)
    assert {name: train[name] for name in TRAIN_OPTION_KEYS} == dict.fromkeys(TRAIN_OPTION_KEYS)
    adapt = command_defaults("models", "adapt")
    assert {name: adapt[name] for name in AdaptConfig.model_fields if name in adapt} == {
        name: None for name in AdaptConfig.model_fields if name in adapt
    }
    assert set(AdaptConfig.model_fields) - set(adapt) == {"mask_share"}


# -- the command line --------------------------------------------------------------------------
def test_cli_forwards_only_the_options_given(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path / "t.toml",
        'data = "x.csv"\nmodel_dir = "m"\nholdout = 0.3\nrefit = false\n[review]\naccuracy = 0.8\n',
    )
    args = ["train", "--config", str(path), "--print-config", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, "--set", "classifier.alpha=2.5"])
    assert result.exit_code == 0, result.output
    printed = TrainConfig.model_validate(tomllib.loads(result.stdout))
    expected = load_train_config(path, ["classifier.alpha=2.5"], {"seed": 3})
    assert printed == expected
    assert (printed.holdout, printed.refit, printed.review.accuracy) == (0.3, False, 0.8)
    refit = CliRunner().invoke(app, [*args, "--refit"])
    assert tomllib.loads(refit.stdout)["refit"] is True


def test_cli_names_a_bad_key_and_exits_2(tmp_path: Path) -> None:
    args = ["train", "--data", "x.csv", "--model-dir", str(tmp_path / "m")]
    result = CliRunner().invoke(app, [*args, "--set", "classifier.C=2.0"])
    assert result.exit_code == 2
    assert "classifier.C: unknown key" in result.stderr and "alpha" in result.stderr
    result = CliRunner().invoke(app, [*args, "--holdout", "2"])
    assert result.exit_code == 2 and "holdout = 2.0" in result.stderr
    assert not (tmp_path / "m").exists()
