"""The configuration of training: pydantic models of what `wangge train` and `wangge models
adapt` take, read from a TOML file with dotted overrides, and written back as TOML.

A TOML file has the top-level run options (``data``, ``model_dir``, ``holdout`` …) and the
sections ``[classifier]`` (the hyperparameters of
:class:`~wangge.models.classifier.MessageClassifier`), ``[fine_tune]`` (the transformer
backend), ``[dedup]`` and ``[review]``; ``docs/train.example.toml`` is an example. Each default
is defined once: the classifier's are read from its signature, the dedup window imported from
:mod:`wangge.models.dedup` (the dedup weights and thresholds are a file's), the others are
here. Unknown keys are refused.
"""

from __future__ import annotations

import inspect
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wangge.errors import DataError, TrainingError
from wangge.home import default_encoder_dir
from wangge.models.classifier import MessageClassifier
from wangge.models.dedup import DEFAULT_WINDOW_DAYS
from wangge.nlp.segment import Tokenizer, load_word_list

CONFIG_TOML = "config.toml"  # the resolved configuration, written beside meta.json
DEFAULT_SEED = 42

_CLASSIFIER_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(MessageClassifier.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
#: MessageClassifier parameters that are not hyperparameters: the tokenizer comes from the
#: run options (user_dict, stopwords), the review threshold is chosen by training.
NOT_CLASSIFIER_SETTINGS = ("tokenizer", "review_threshold", "review_thresholds")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifierConfig(_Section):
    """The hyperparameters of :class:`MessageClassifier` (documented there), with its defaults.
    ``class_weight = "none"`` weighs every message the same (TOML has no null)."""

    word_ngram_max: int = Field(default=_CLASSIFIER_DEFAULTS["word_ngram_max"], ge=1)
    char_ngram_range: tuple[int, int] = _CLASSIFIER_DEFAULTS["char_ngram_range"]
    min_df: int = Field(default=_CLASSIFIER_DEFAULTS["min_df"], ge=1)
    alpha: float = Field(default=_CLASSIFIER_DEFAULTS["alpha"], gt=0)
    class_weight: Literal["balanced", "none"] = _CLASSIFIER_DEFAULTS["class_weight"]
    taxonomy_path: Path | None = _CLASSIFIER_DEFAULTS["taxonomy_path"]
    taxonomy_weight: float = Field(default=_CLASSIFIER_DEFAULTS["taxonomy_weight"], ge=0)
    calibration_fraction: float = Field(
        default=_CLASSIFIER_DEFAULTS["calibration_fraction"], gt=0, lt=1
    )
    random_state: int = _CLASSIFIER_DEFAULTS["random_state"]

    def parameters(self) -> dict[str, Any]:
        """The keyword arguments of :class:`MessageClassifier`."""
        values = self.model_dump()
        values["class_weight"] = None if self.class_weight == "none" else self.class_weight
        return values


class FineTuneConfig(_Section):
    """How to fine-tune (``--backend transformer``). The defaults were chosen by measurement on
    2 cores (docs/benchmarks.md): multilingual-e5-small cut to its lower 5 layers, 64
    sub-words, the embeddings and 2 layers frozen, 2 epochs, trained in 11 minutes on the 7.8k
    Teddy Cup messages and scores about 130 messages/s in int8, against 37 minutes and 24
    messages/s for all 12 layers at 128 sub-words with 6 frozen, for a hold-out macro-F1 of
    0.867 against 0.891 (6 layers: 0.881, about 100 messages/s)."""

    base_model: Path | None = None  # a Hugging Face directory; None: $WANGGE_HOME/e5-small
    max_length: int = Field(default=64, ge=8)
    epochs: float = Field(default=2.0, ge=0.1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    freeze_layers: int = Field(default=2, ge=0)
    layers: int = Field(default=5, ge=0)  # keep only the lower N encoder layers (0: all)
    patience: int = Field(default=1, ge=1)
    evaluations_per_epoch: int = Field(default=2, ge=1)
    seed: int = DEFAULT_SEED  # in a TrainConfig, the run's seed unless set here
    class_weight: Literal["balanced", "none"] = "balanced"

    def base(self) -> Path:
        return self.base_model or default_encoder_dir()


class DedupConfig(_Section):
    """Duplicate detection: the pair weights and thresholds of both modes (a file of ``wangge
    dedup fit``; None: the shipped ``data/dedup_weights.json``), copied into the model
    directory; a case's window; thresholds replacing the weights file's (None: its own)."""

    weights: Path | None = None
    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1)
    encoder_threshold: float | None = Field(default=None, gt=0, lt=1)
    lexical_threshold: float | None = Field(default=None, gt=0, lt=1)


class ReviewConfig(_Section):
    """Which category predictions skip review (:mod:`wangge.training.calibration`): the
    auto-accepted ones must be right ``accuracy`` of the time. ``z``: the Wilson margin
    (standard errors) the accuracy above a threshold must keep; ``min_category_messages``: the
    calibration messages a category needs (predicted as it) for a threshold of its own, else
    it takes the global one.

    With ``calibration_data`` (raw labelled messages) the thresholds are chosen on them and
    the estimate is cross-fitted over ``folds`` folds. Without, they are chosen on the
    training hold-out, with its segmentation spaces removed (``raw_holdout``) so that it is
    re-segmented as raw text is; raw intake is still harder than the training file, so there
    the allowed error ``1 - accuracy`` is divided by ``shift_factor``, and only the global
    threshold is used unless ``holdout_per_category`` (per-category thresholds chosen on the
    hold-out did not carry over to raw messages: docs/benchmarks.md)."""

    accuracy: float = Field(default=0.97, gt=0, le=1)
    calibration_data: Path | None = None
    folds: int = Field(default=5, ge=2)
    z: float = Field(default=0.5, ge=0)
    min_category_messages: int = Field(default=50, ge=1)
    raw_holdout: bool = True
    shift_factor: float = Field(default=2.0, ge=1)
    holdout_per_category: bool = False


class TrainConfig(_Section):
    """Everything a training run depends on; saved into the model's ``meta.json`` and
    ``config.toml``. ``backend`` is "linear", or "transformer": the linear model plus a
    fine-tuned encoder, mixed. ``district_dir`` and ``encoder_dir`` are what the pipeline is
    built with: loading it with other district tables or another encoder is refused."""

    data: Path
    model_dir: Path
    text_columns: list[str] | None = None
    label_column: str | None = None
    department_column: str | None = None
    holdout: float = Field(default=0.15, gt=0, lt=1)
    seed: int = DEFAULT_SEED
    refit: bool = True  # refit on all rows after the hold-out evaluation
    user_dict: Path | None = None
    stopwords: Path | None = None
    reviews: Path | None = None  # a file of `wangge export-reviews`, added to the data
    district_dir: Path | None = None  # the district routed with; None: the shipped 萧山区
    # The sentence encoder the pipeline expects; None: $WANGGE_HOME/e5-small if it is there.
    encoder_dir: Path | None = None
    backend: Literal["linear", "transformer"] = "linear"
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)

    @model_validator(mode="after")
    def _fine_tune_seed(self) -> TrainConfig:
        if "seed" not in self.fine_tune.model_fields_set:
            self.fine_tune.seed = self.seed
        return self

    def tokenizer(self) -> Tokenizer:
        """The tokenizer these settings describe (word lists read from their files)."""
        for path in (self.user_dict, self.stopwords):
            if path is not None and not Path(path).is_file():
                raise DataError("word list not found", path=path)
        return Tokenizer(
            user_words=load_word_list(self.user_dict) if self.user_dict else (),
            stopwords=load_word_list(self.stopwords) if self.stopwords else None,
        )


class AdaptConfig(_Section):
    """How to adapt an encoder; layers and length default to fine-tuning's, so that the
    adapted encoder is the one fine-tuning uses."""

    base_model: Path | None = None  # None: $WANGGE_HOME/e5-small
    layers: int = Field(default=FineTuneConfig.model_fields["layers"].default, ge=0)  # 0: all
    max_length: int = Field(default=FineTuneConfig.model_fields["max_length"].default, ge=8)
    epochs: float = Field(default=1.0, ge=0.1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    mask_share: float = Field(default=0.15, gt=0, lt=1)
    seed: int = DEFAULT_SEED

    def base(self) -> Path:
        return self.base_model or default_encoder_dir()


Config = TypeVar("Config", bound=BaseModel)


class ConfigError(TrainingError):
    """A configuration that cannot be read or does not validate; the message names the key."""


def load_train_config(
    path: Path | None = None,
    overrides: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The configuration of the TOML file ``path`` (if any), changed by the ``KEY=VALUE``
    ``overrides`` (dotted keys, TOML values), then by ``options`` (dotted keys to values:
    the command-line options; None is an option not given)."""
    values: dict[str, Any] = read_toml(path) if path is not None else {}
    for override in overrides:
        set_dotted(values, *parse_override(override))
    for key, value in (options or {}).items():
        if value is not None:
            set_dotted(values, key, value)
    return validate_config(TrainConfig, values)


def validate_config(model: type[Config], values: Mapping[str, Any]) -> Config:
    """``model`` made of ``values`` (None values left out: their defaults apply); ConfigError
    naming each bad key otherwise."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, model)) from error


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"configuration file {path} not found") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error


def parse_override(override: str) -> tuple[str, Any]:
    """``"classifier.alpha=2.0"`` as ``("classifier.alpha", 2.0)``: the value is read as a
    TOML value (``2``, ``true``, ``"x"``, ``[1, 2]``), or else kept as text (``部门``)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. classifier.alpha=2.0")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip(), value


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``values[a][b] = value`` for the key ``"a.b"``, making the sections needed."""
    *sections, name = key.split(".")
    target = values
    for depth, section in enumerate(sections):
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{'.'.join(sections[: depth + 1])} is a value, not a section")
    target[name] = value


def describe_validation_error(error: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem, naming the dotted key (and, for an unknown key, the known ones)."""
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        key = ".".join(location)
        if problem["type"] == "extra_forbidden":
            known = ", ".join(_section_model(model, location[:-1]).model_fields)
            lines.append(f"{key}: unknown key (known here: {known})")
        elif problem["type"] == "missing":
            option = "--" + key.replace("_", "-")
            lines.append(f"{key}: missing (give {option}, or set {key} in the --config file)")
        else:
            lines.append(f"{key} = {problem.get('input')!r}: {problem['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def _section_model(model: type[BaseModel], path: list[str]) -> type[BaseModel]:
    for name in path:
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def to_toml(config: BaseModel) -> str:
    """``config`` as TOML: top-level values first, then one table per section. A value that
    is None (the default of every optional key) is a comment, as TOML has no null."""
    values = config.model_dump(mode="json")
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
    lines = [_toml_line(key, value) for key, value in scalars.items()]
    for section, table in values.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"]
            lines += [_toml_line(key, value) for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: Any) -> str:
    return f"# {key} is not set" if value is None else f"{key} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str):  # a JSON string is a valid TOML basic string
        return json.dumps(value, ensure_ascii=False)
    return repr(value)  # int or float
