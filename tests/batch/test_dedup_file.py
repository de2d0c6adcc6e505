"""``wangge dedup`` on files: time order, output columns, errors naming row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from wangge.cli import app

GARBAGE = "金城花园小区东门口的垃圾堆了好几天没人清理，臭气熏天。"
LIGHTS = "幸福路与人民路交叉口的红绿灯坏了三天，早晚高峰非常堵。"
ROWS = [
    ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"],
    ["3", "u2", "金城花园垃圾没人清理", "2024/5/3 10:00:00", GARBAGE],
    ["1", "u1", "金城花园垃圾没人清理", "2024/5/1 09:00:00", GARBAGE],
    ["2", "u3", "红绿灯坏了", "2024-05-02 08:30", LIGHTS],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    pd.DataFrame(rows[1:], columns=rows[0]).to_csv(path, index=False, encoding="utf-8")
    return path


def test_dedup_file_in_time_order_keeps_rows_and_adds_columns(tmp_path: Path) -> None:
    source, output = write(tmp_path / "in.csv", ROWS), tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(output), "--no-entities"])
    assert result.exit_code == 0, result.output
    assert "3 messages in 2 cases" in result.output and "no sentence encoder" in result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == [
        *ROWS[0],
        "case_id",
        "merged_from",
        "duplicate_of",
        "dup_score",
        "dup_evidence",
    ]
    assert frame["留言编号"].tolist() == ["3", "1", "2"]  # input order kept
    # Message 1 is the earliest, so it opens the case that 3 (two days later) joins.
    assert frame["case_id"].tolist() == ["1", "1", "2"]
    assert frame["duplicate_of"].tolist() == ["1", "", ""]
    assert float(frame["dup_score"][0]) == 1.0


def test_a_repeat_in_another_script_and_markup_is_an_exact_repeat(tmp_path: Path) -> None:
    """The file's text is normalised once, on the way in (traditional characters, full-width
    forms, HTML), before the detector compares it."""
    traditional = "<p>金城花園小區東門口的垃圾堆了好幾天沒人清理，臭氣熏天。</p>"
    rows = [*ROWS[:3], ["4", "u4", "金城花園垃圾沒人清理", "2024/5/4", traditional]]
    source, output = write(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(output), "--no-entities"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    repeat = frame[frame["留言编号"] == "4"].iloc[0]
    assert (repeat["case_id"], repeat["duplicate_of"], float(repeat["dup_score"])) == (
        "1",
        "1",
        1.0,
    )
    assert '"jaccard": 1.0' in repeat["dup_evidence"]


def test_a_home_encoder_directory_without_encoder_onnx_means_lexical_mode(
    tmp_path: Path, wangge_home: Path
) -> None:
    (wangge_home / "e5-small").mkdir()  # a directory, but no finished encoder in it
    source, output = write(tmp_path / "in.csv", ROWS), tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(output), "--no-entities"])
    assert result.exit_code == 0, result.output
    assert "no sentence encoder" in result.output and "3 messages in 2 cases" in result.output


def test_unreadable_time_names_row_and_column(tmp_path: Path) -> None:
    rows = [*ROWS, ["4", "u4", "噪音", "上周三", "晚上施工噪音很大"]]
    source = write(tmp_path / "in.csv", rows)
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "row 5, column '留言时间': not a date and time: '上周三'" in result.output


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    rows = [*ROWS, ["2", "u4", "噪音", "2024/5/4", "晚上施工噪音很大"]]
    source = write(tmp_path / "in.csv", rows)
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(tmp_path / "o.csv")])
    assert (
        result.exit_code == 2
        and "row 5, column '留言编号': duplicate message id '2'" in result.output
    )


def test_a_row_without_text_joins_no_case(tmp_path: Path) -> None:
    rows = [*ROWS, ["4", "u4", " ", "2024/5/4", ""], ["5", "u5", "", "2024/5/5", ""]]
    source, output = write(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(output), "--no-entities"])
    assert result.exit_code == 0, result.output
    # the two empty rows are not one case of two identical (empty) messages
    assert "3 messages in 2 cases, 2 without text in no case" in result.output
    assert f"file {source}, row 5: no text" in result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert frame["case_id"].tolist() == ["1", "1", "2", "", ""]
    assert frame["dup_evidence"][3] == '{"skipped": "empty"}'
    assert "deduplicating: 3/3 (100%)" in result.stderr

    strict = CliRunner().invoke(app, ["dedup", str(source), "-o", str(tmp_path / "s.csv"),
                                      "--strict"])  # fmt: skip
    assert strict.exit_code == 2 and "row 5" in strict.output


def test_a_merged_row_shows_its_final_case_and_the_case_it_left() -> None:
    from wangge.batch.dedup import dedup_columns
    from wangge.models.dedup import Decision

    decisions = [
        Decision("a", "a", None, 0.0),
        Decision("b", "b", None, 0.0),
        Decision("c", "a", "b", 0.9, {"merged": ["b"]}, ("b",)),
        None,  # a row without text
    ]
    columns = dedup_columns(decisions, ["a", "a", "a", None])
    assert columns["case_id"] == ["a", "a", "a", ""]
    assert columns["merged_from"] == ["", "b", "", ""]
    assert columns["dup_evidence"][2] == {"merged": ["b"]}
