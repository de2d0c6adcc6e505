"""The ``wangge`` command line end to end (train, classify, evaluate) and its error handling."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO_LABELS
from typer.testing import CliRunner, Result

from wangge.cli import app

INPUT_COLUMNS = ["留言编号", "留言主题", "留言时间", "留言详情", "一级标签"]
ROUTING_COLUMNS = [
    "street_code", "street_name", "community_code", "community_name", "grid_id", "out_of_area",
    "route_confidence", "route_evidence", "department", "departments",
]  # fmt: skip
ADDED_COLUMNS = [
    "category", "confidence", "top3", "needs_review", "review_reason", "evidence", *ROUTING_COLUMNS
]  # fmt: skip


def run_classify(
    runner: CliRunner, source: Path, model_dir: Path, output: Path, *options: str
) -> Result:
    """``wangge classify SOURCE --model-dir MODEL_DIR --output OUTPUT [OPTIONS]``."""
    args = ["classify", str(source), "--model-dir", str(model_dir), "--output", str(output)]
    return runner.invoke(app, [*args, *options])


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def trained(
    runner: CliRunner, demo_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """A model trained once through ``wangge train`` on the shipped demo data."""
    directory = tmp_path_factory.mktemp("cli") / "category"
    result = runner.invoke(app, ["train", "--data", str(demo_csv), "--model-dir", str(directory)])
    assert result.exit_code == 0, result.output
    return directory, result.stdout, result.stderr


@pytest.fixture(scope="module")
def model_dir(trained: tuple[Path, str, str]) -> Path:
    return trained[0]


@pytest.fixture(scope="module")
def small_csv(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The header and the first 14 rows of the demo data."""
    rows = list(csv.reader(demo_csv.open(encoding="utf-8")))
    path = tmp_path_factory.mktemp("input") / "small.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows[:15])
    return path


def invoke_error(runner: CliRunner, args: list[str]) -> str:
    """Run a command that must fail; return its stderr (the error message)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


# -- happy paths ----------------------------------------------------------------------------
def test_cli_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "classify", "evaluate", "serve"):
        assert command in result.output


def test_cli_train_writes_model(model_dir: Path) -> None:
    names = {path.name for path in model_dir.iterdir()}
    assert {
        "model.joblib",
        "meta.json",
        "report.md",
        "report.json",
        "confusion_matrix.png",
    } <= names
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    assert set(meta["labels"]) == set(DEMO_LABELS)
    assert "macro_f1" in meta["metrics"]["holdout"]


def test_cli_train_prints_report(trained: tuple[Path, str, str]) -> None:
    directory, stdout, stderr = trained
    assert "macro-F1:" in stdout and "Confusion matrix" in stdout
    assert "review threshold" in stdout
    assert f"written to {directory}" in stdout
    assert "280 messages, 7 categories" in stderr  # progress goes to stderr


def test_cli_classify_csv_keeps_input_columns(
    runner: CliRunner, model_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    result = run_classify(runner, demo_csv, model_dir, output)
    assert result.exit_code == 0, result.output
    assert "280 messages scored" in result.stdout
    assert output.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for Excel
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == INPUT_COLUMNS + ADDED_COLUMNS
    source = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(frame[INPUT_COLUMNS], source)
    assert set(frame["category"]) <= set(DEMO_LABELS)
    confidence = frame["confidence"].astype(float)
    assert ((confidence > 0) & (confidence <= 1)).all()
    assert set(frame["needs_review"]) <= {"True", "False"}
    first_top3 = json.loads(frame["top3"][0])
    assert len(first_top3) == 3
    assert first_top3[0]["category"] == frame["category"][0]
    assert first_top3[0]["probability"] == pytest.approx(float(frame["confidence"][0]))
    # Trained on these very rows: the model knows them.
    assert (frame["category"] == frame["一级标签"]).mean() >= 0.95


def test_cli_classify_jsonl_top3_is_list(
    runner: CliRunner, model_dir: Path, small_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.jsonl"
    result = run_classify(runner, small_csv, model_dir, output)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 14
    for record in records:
        assert list(record) == INPUT_COLUMNS + ADDED_COLUMNS
        assert isinstance(record["top3"], list) and len(record["top3"]) == 3
        assert all(set(item) == {"category", "probability"} for item in record["top3"])
        probabilities = [item["probability"] for item in record["top3"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert record["category"] == record["top3"][0]["category"]
        assert isinstance(record["confidence"], float)
        assert isinstance(record["needs_review"], bool)
        assert (record["review_reason"] != "") is record["needs_review"]
    assert "城乡建设" in output.read_text(encoding="utf-8")  # Chinese written as is


def test_cli_classify_existing_category_column(
    runner: CliRunner, model_dir: Path, tmp_path: Path
) -> None:
    source = write_rows(
        tmp_path / "with_category.csv",
        [
            ["id", "content", "category"],
            ["1", "公交车经常晚点，等车要一个小时", "人工分类甲"],
            ["2", "医院挂号排队太久，看病难", "人工分类乙"],
        ],
    )
    output = tmp_path / "out.csv"
    result = run_classify(runner, source, model_dir, output)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == [
        "id", "content", "category", "predicted_category", "confidence", "top3", "needs_review",
        "review_reason", "evidence", *ROUTING_COLUMNS,
    ]  # fmt: skip
    assert list(frame["category"]) == ["人工分类甲", "人工分类乙"]  # input kept
    assert list(frame["predicted_category"]) == ["交通运输", "卫生计生"]


def test_cli_classify_text_column_option(
    runner: CliRunner, model_dir: Path, tmp_path: Path
) -> None:
    source = write_rows(
        tmp_path / "custom.csv", [["编号", "正文"], ["a", "工厂偷排污水，河水发黑发臭"]]
    )
    output = tmp_path / "out.jsonl"
    result = run_classify(runner, source, model_dir, output, "--text-column", "正文")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(output.read_text(encoding="utf-8"))
    assert record["编号"] == "a" and record["category"] == "环境保护"


def test_cli_evaluate_prints_macro_f1(
    runner: CliRunner, model_dir: Path, small_csv: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "report"
    result = runner.invoke(
        app,
        ["evaluate", "--model-dir", str(model_dir), "--data", str(small_csv),
         "--output-dir", str(out_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "macro-F1:" in result.stdout
    assert "messages: 14" in result.stdout
    assert "Confusion matrix" in result.stdout
    assert {"report.md", "report.json", "confusion_matrix.png"} <= {
        p.name for p in out_dir.iterdir()
    }
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert report["n"] == 14 and report["training"]["data"] == str(small_csv)


def test_cli_evaluate_without_output_dir(
    runner: CliRunner, model_dir: Path, small_csv: Path
) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model-dir", str(model_dir), "--data", str(small_csv)]
    )
    assert result.exit_code == 0, result.output
    assert "macro-F1:" in result.stdout


# -- errors: exit code 2 and a message naming the problem -----------------------------------
def test_cli_train_missing_data_file(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    message = invoke_error(
        runner, ["train", "--data", str(missing), "--model-dir", str(tmp_path / "m")]
    )
    assert str(missing) in message and "not found" in message
    assert not (tmp_path / "m").exists()


def test_cli_train_missing_label_column(runner: CliRunner, demo_csv: Path, tmp_path: Path) -> None:
    message = invoke_error(
        runner,
        ["train", "--data", str(demo_csv), "--model-dir", str(tmp_path / "m"),
         "--label-column", "类别"],
    )  # fmt: skip
    assert "'类别'" in message and "no such column" in message
    for column in INPUT_COLUMNS:  # lists the available columns
        assert column in message


def test_cli_train_empty_label_cell(runner: CliRunner, demo_csv: Path, tmp_path: Path) -> None:
    rows = list(csv.reader(demo_csv.open(encoding="utf-8")))
    rows[7][4] = ""  # spreadsheet row 8
    data = write_rows(tmp_path / "empty_label.csv", rows)
    message = invoke_error(
        runner, ["train", "--data", str(data), "--model-dir", str(tmp_path / "m")]
    )
    assert "row 8" in message and "'一级标签'" in message and "empty" in message
    assert str(data) in message


def test_cli_train_single_category(runner: CliRunner, tmp_path: Path) -> None:
    data = write_rows(
        tmp_path / "one.csv",
        [["留言详情", "一级标签"]] + [[f"路灯坏了第{i}天", "城乡建设"] for i in range(6)],
    )
    message = invoke_error(
        runner, ["train", "--data", str(data), "--model-dir", str(tmp_path / "m")]
    )
    assert "[W300]" in message and "城乡建设" in message


def test_cli_classify_model_dir_missing(runner: CliRunner, small_csv: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_model"
    output = tmp_path / "out.csv"
    message = invoke_error(
        runner, ["classify", str(small_csv), "--model-dir", str(missing), "--output", str(output)]
    )
    assert str(missing) in message and "does not exist" in message
    assert not output.exists()


def test_cli_classify_model_dir_not_a_model(
    runner: CliRunner, small_csv: Path, tmp_path: Path
) -> None:
    message = invoke_error(
        runner,
        ["classify", str(small_csv), "--model-dir", str(tmp_path), "-o", str(tmp_path / "o.csv")],
    )
    assert "meta.json" in message


def test_cli_classify_unsupported_output_extension(
    runner: CliRunner, model_dir: Path, small_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.txt"
    message = invoke_error(
        runner, ["classify", str(small_csv), "--model-dir", str(model_dir), "--output", str(output)]
    )
    assert ".txt" in message and ".csv" in message and ".jsonl" in message
    assert not output.exists()


def test_cli_classify_missing_input(runner: CliRunner, model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    message = invoke_error(
        runner,
        ["classify", str(missing), "--model-dir", str(model_dir), "-o", str(tmp_path / "o.csv")],
    )
    assert str(missing) in message


def test_cli_classify_unknown_text_column(
    runner: CliRunner, model_dir: Path, small_csv: Path, tmp_path: Path
) -> None:
    message = invoke_error(
        runner,
        ["classify", str(small_csv), "--model-dir", str(model_dir), "-o", str(tmp_path / "o.csv"),
         "--text-column", "正文"],
    )  # fmt: skip
    assert "'正文'" in message and "留言详情" in message


def test_cli_evaluate_missing_model(runner: CliRunner, small_csv: Path, tmp_path: Path) -> None:
    message = invoke_error(
        runner, ["evaluate", "--model-dir", str(tmp_path / "none"), "--data", str(small_csv)]
    )
    assert "does not exist" in message


def test_cli_evaluate_file_without_labels(
    runner: CliRunner, model_dir: Path, tmp_path: Path
) -> None:
    data = write_rows(tmp_path / "unlabelled.csv", [["留言详情"], ["路灯坏了"]])
    message = invoke_error(runner, ["evaluate", "--model-dir", str(model_dir), "--data", str(data)])
    assert "label" in message and "--label-column" in message


def test_cli_usage_error_missing_option(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--model-dir", "x"])
    assert result.exit_code == 2  # click's own usage error
    assert "--data" in result.output


def test_cli_export_encoder_writes_int8_onnx(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch (the transformer extra) exports checkpoints")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    model = tmp_path / "encoder"
    config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64)  # fmt: skip
    transformers.BertModel(config).save_pretrained(model)
    result = runner.invoke(app, ["models", "export-encoder", str(model)])
    assert result.exit_code == 0, result.output
    assert "(int8)" in result.output and (model / "encoder.onnx").is_file()
    assert not (model / "encoder.fp32.onnx").exists()


def test_cli_export_encoder_refuses_a_directory_without_a_model(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["models", "export-encoder", str(tmp_path)])
    assert result.exit_code == 2
    assert "no config.json" in result.output


def test_cli_db_upgrade_and_current(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    before = runner.invoke(app, ["db", "current", "--database-url", url])
    assert before.exit_code == 0 and "none (not migrated yet)" in before.output
    upgraded = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(app, ["db", "current", "--database-url", url])
    from wangge.serve.migrate import head_revision

    assert f"database: {head_revision()}; newest: {head_revision()}" in after.output


def test_cli_commands_other_than_db_upgrade_migrate_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    refused = runner.invoke(app, ["keys", "list", "--database-url", url])
    assert refused.exit_code == 2 and "run `wangge db upgrade`" in refused.output
    before = runner.invoke(app, ["db", "current", "--database-url", url])
    assert "none (not migrated yet)" in before.output
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    listed = runner.invoke(app, ["keys", "list", "--database-url", url])
    assert listed.exit_code == 0 and listed.output == ""


# -- files as users have them -----------------------------------------------------------------
def test_cli_classify_flags_rows_without_text(
    runner: CliRunner, model_dir: Path, small_csv: Path, tmp_path: Path
) -> None:
    rows = list(csv.reader(small_csv.open(encoding="utf-8")))
    rows[6][1] = rows[6][3] = " "  # spreadsheet row 7: title and body blank
    source = write_rows(tmp_path / "with_empty.csv", rows)
    output = tmp_path / "scored.jsonl"
    result = run_classify(runner, source, model_dir, output)
    assert result.exit_code == 0, result.output
    assert "14 messages scored, 1 without text flagged for review (reason empty)" in result.stdout
    assert f"file {source}, row 7: no text" in result.stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 14
    empty = records[5]
    assert (empty["category"], empty["top3"], empty["needs_review"]) == ("", [], True)
    assert empty["review_reason"].split(",")[0] == "empty"
    assert all(record["category"] for i, record in enumerate(records) if i != 5)

    strict = tmp_path / "strict.csv"
    message = invoke_error(runner, ["classify", str(source), "--model-dir", str(model_dir),
                                    "-o", str(strict), "--strict"])  # fmt: skip
    assert (
        f"file {source}, row 7" in message and "'留言主题' and '留言详情' are all empty" in message
    )
    assert not strict.exists()


def test_cli_route_flags_rows_without_text(runner: CliRunner, tmp_path: Path) -> None:
    source = write_rows(
        tmp_path / "in.csv",
        [["编号", "内容", "地址"], ["1", "城厢街道路灯坏了", ""], ["2", "", "萧山区城厢街道"]],
    )
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["route", str(source), "-o", str(output), "--no-ner"])
    assert result.exit_code == 0, result.output
    assert "2 messages routed, 1 without text flagged for review (reason empty)" in result.stdout
    second = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()][1]
    assert second["needs_review"] and second["review_reason"].startswith("empty")
    assert second["street_name"] == "城厢街道"  # still placed by its address


def test_cli_classify_refuses_a_title_alone_beside_long_text(
    runner: CliRunner, model_dir: Path, tmp_path: Path
) -> None:
    body = "小区东门的路灯坏了一个多星期了，晚上出入很不安全，希望尽快派人修理。"
    source = write_rows(
        tmp_path / "export.csv", [["标题", "反映内容详述"], ["路灯不亮", body], ["路灯坏了", body]]
    )
    message = invoke_error(runner, ["classify", str(source), "--model-dir", str(model_dir),
                                    "-o", str(tmp_path / "o.csv")])  # fmt: skip
    assert "'标题'" in message and "--text-column 标题 --text-column 反映内容详述" in message
    body_named = write_rows(tmp_path / "body.csv", [["标题", "正文"], ["路灯不亮", body]])
    output = tmp_path / "ok.csv"
    result = run_classify(runner, body_named, model_dir, output)
    assert result.exit_code == 0, result.output
    assert "text from 标题 + 正文" in result.stdout


def test_cli_train_refuses_a_non_empty_model_dir_without_force(
    runner: CliRunner, model_dir: Path, small_csv: Path, demo_csv: Path, tmp_path: Path
) -> None:
    import shutil

    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    (target / "department").mkdir()
    shutil.copy(target / "meta.json", target / "department" / "meta.json")  # a stale one
    before = (target / "meta.json").read_text(encoding="utf-8")
    args = ["train", "--data", str(demo_csv), "--model-dir", str(target)]
    message = invoke_error(runner, args)
    assert str(target) in message and "not empty" in message and "--force" in message
    assert (target / "meta.json").read_text(encoding="utf-8") == before

    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (target / "meta.json").read_text(encoding="utf-8") != before
    assert not (target / "department").exists()  # would pair with the new model otherwise


def test_cli_train_into_a_model_store_points_to_promote(
    runner: CliRunner, model_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(model_dir, store / "v1")
    for extra in ([], ["--force"]):
        message = invoke_error(
            runner, ["train", "--data", str(demo_csv), "--model-dir", str(store), *extra]
        )
        assert "model store" in message and "wangge models promote NEW" in message
        assert "--model-store" in message
    assert sorted(p.name for p in store.iterdir()) == ["v1"]


# -- progress and help ------------------------------------------------------------------------
def test_cli_progress_off_a_terminal_is_plain_lines(
    runner: CliRunner, model_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    result = run_classify(runner, demo_csv, model_dir, tmp_path / "o.csv", "--no-route")
    assert result.exit_code == 0, result.output
    assert "scoring: 280/280 (100%)" in result.stderr.splitlines()
    trained = runner.invoke(
        app, ["train", "--data", str(demo_csv), "--model-dir", str(tmp_path / "m")]
    )
    assert trained.exit_code == 0, trained.output
    assert any(line.endswith("segmenting") for line in trained.stderr.splitlines())
    for output in (result.stderr, trained.stderr):
        assert all(ch.isprintable() for ch in output.replace("\n", ""))  # no \x1b, no \r


HELP_COMMANDS = [
    [], ["train"], ["evaluate"], ["classify"], ["route"], ["dedup"], ["dedup", "cases"],
    ["dedup", "fit"], ["export-reviews"],
    ["serve"], ["ingest"], ["models"], ["models", "fetch-e5"], ["models", "adapt"],
    ["models", "list"], ["models", "promote"], ["models", "rollback"],
    ["models", "export-encoder"], ["db"], ["keys"], ["users"], ["district"],
]  # fmt: skip


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_cli_help_has_no_type_noise(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "list[" not in result.output


def test_cli_help_names_what_commands_take(runner: CliRunner) -> None:
    classify = runner.invoke(app, ["classify", "--help"]).output
    assert ".xlsx" in classify and "--strict" in classify
    models = runner.invoke(app, ["models", "--help"]).output
    assert "promote" in models and "rollback" in models and "Pretrained" not in models
    assert "--force" in runner.invoke(app, ["train", "--help"]).output


def test_serve_honours_wangge_environment_variables(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WANGGE_HOST, WANGGE_PORT and WANGGE_MODEL_DIR reach the server when no option is given,
    and an option given on the command line wins over its variable."""
    import wangge.serve.server

    started = []
    monkeypatch.setattr(wangge.serve.server, "run", started.append)
    monkeypatch.setenv("WANGGE_HOST", "0.0.0.0")
    monkeypatch.setenv("WANGGE_PORT", "9123")
    monkeypatch.setenv("WANGGE_MODEL_DIR", str(tmp_path / "model"))

    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert (settings.host, settings.port, settings.model_dir) == (
        "0.0.0.0",
        9123,
        tmp_path / "model",
    )

    result = runner.invoke(app, ["serve", "--port", "9200"])
    assert result.exit_code == 0, result.output
    assert (started[1].host, started[1].port) == ("0.0.0.0", 9200)


def test_serve_stops_before_listening_on_a_database_it_cannot_migrate(
    runner: CliRunner, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine, text

    from wangge.serve.server import GracefulServer

    listened = []
    monkeypatch.setattr(GracefulServer, "run", lambda *args, **kwargs: listened.append(args))
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE messages (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    monkeypatch.setenv("WANGGE_DATABASE_URL", url)
    result = runner.invoke(app, ["serve", "--model-dir", str(model_dir)])
    assert result.exit_code == 2 and "version without migrations" in result.output
    assert listened == []


def test_serve_refuses_a_bad_port_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANGGE_PORT", "not-a-port")
    result = runner.invoke(app, ["serve", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "port" in result.output


def test_cli_train_force_keeps_the_old_department_model_when_validation_fails(
    runner: CliRunner, model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    shutil.copytree(target, tmp_path / "department")
    shutil.move(tmp_path / "department", target / "department")
    before = {path: path.read_bytes() for path in target.rglob("*") if path.is_file()}
    bad = write_rows(tmp_path / "one.csv", [["留言详情", "一级标签"], ["路灯坏了", "城乡建设"]])
    for args in (["--data", str(bad)], ["--data", str(tmp_path / "nope.csv")],
                 ["--data", str(bad), "--set", "classifier.C=2"]):  # fmt: skip
        invoke_error(runner, ["train", "--model-dir", str(target), "--force", *args])
    assert {path: path.read_bytes() for path in target.rglob("*") if path.is_file()} == before
