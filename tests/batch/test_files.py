"""Tests for wangge.batch.files: formats, encodings, column detection, row checks, writing."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from wangge.batch.files import (
    ColumnSpec,
    load_messages,
    read_table,
    resolve_columns,
    write_table,
)
from wangge.errors import DataError
from wangge.nlp.fields import message_text, normalized

HEADER = ["留言编号", "留言主题", "留言详情", "一级标签"]
ROWS = [
    ["1", "小区路灯不亮", "幸福小区3栋门口路灯坏了一周，晚上出行不便。", "城乡建设"],
    ["2", "夜间施工噪音扰民", "工地每晚十一点后仍在施工，居民无法休息。", "环境保护"],
]
EXPECTED = dict(zip(HEADER, map(list, zip(*ROWS, strict=False)), strict=False))


def _delimited(rows: list[list[str]], delimiter: str = ",") -> str:
    return "".join(delimiter.join(row) + "\n" for row in rows)


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def _error(call, *args, **kwargs) -> DataError:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- formats and encodings ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312"])
def test_reads_csv_in_chinese_encodings(tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path / "messages.csv", _delimited([HEADER, *ROWS]).encode(encoding))
    frame = read_table(path)
    assert frame.to_dict("list") == EXPECTED


def test_reads_csv_written_by_pandas_in_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "messages.csv"
    pd.DataFrame(EXPECTED).to_csv(path, index=False, encoding="gb18030")
    assert read_table(path).to_dict("list") == EXPECTED


def test_keeps_every_cell_as_a_string(tmp_path: Path) -> None:
    content = "编号,内容,得分\n007,NA,1.50\n008,null,\n"
    frame = read_table(_write(tmp_path / "m.csv", content))
    assert frame.to_dict("list") == {
        "编号": ["007", "008"],
        "内容": ["NA", "null"],
        "得分": ["1.50", ""],
    }
    assert all(isinstance(v, str) for column in frame for v in frame[column])


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [("m.tsv", "\t"), ("m.csv", ";"), ("m.csv", "\t"), ("m.txt", "\t"), ("m.txt", ",")],
)
def test_detects_the_delimiter(tmp_path: Path, name: str, delimiter: str) -> None:
    path = _write(tmp_path / name, _delimited([HEADER, *ROWS], delimiter))
    assert read_table(path).to_dict("list") == EXPECTED


def test_single_column_csv_falls_back_to_comma(tmp_path: Path) -> None:
    # A semicolon in every message looks like a delimiter, but not one the header has.
    texts = [f"第{i}条;路灯坏了" for i in range(100)]
    path = _write(tmp_path / "m.csv", "留言详情\n" + "\n".join(texts) + "\n")
    assert read_table(path).to_dict("list") == {"留言详情": texts}


def test_reads_quoted_fields_with_delimiters_and_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    expected = {"留言主题": ["路灯", "噪音"], "留言详情": ["第一行，\n第二行, 还有逗号", '说"吵"']}
    pd.DataFrame(expected).to_csv(path, index=False)
    assert read_table(path).to_dict("list") == expected


def test_reads_xlsx_first_sheet_with_cells_as_strings(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "m.xlsx",
        {"留言": [["留言编号", "留言主题", 2023], [1, "路灯不亮", 3.5]], "其他": [["x"], ["y"]]},
    )
    frame = read_table(path)
    assert frame.to_dict("list") == {"留言编号": ["1"], "留言主题": ["路灯不亮"], "2023": ["3.5"]}


@pytest.mark.parametrize("sheet", ["其他", 1])
def test_reads_the_xlsx_sheet_asked_for(tmp_path: Path, sheet: str | int) -> None:
    path = _xlsx(tmp_path / "m.xlsx", {"留言": [["a"], ["1"]], "其他": [["内容"], ["噪音"]]})
    assert read_table(path, sheet=sheet).to_dict("list") == {"内容": ["噪音"]}


def test_missing_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "m.xlsx", {"留言": [["a"], ["1"]], "其他": [["b"], ["2"]]})
    error = _error(read_table, path, sheet="汇总")
    assert "'汇总'" in str(error) and "留言, 其他" in str(error)


def test_file_that_is_not_a_workbook_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, _write(tmp_path / "m.xlsx", "编号,内容\n1,路灯\n"))
    assert error.path == str(tmp_path / "m.xlsx")
    assert "Excel" in str(error)


def test_reads_jsonl_with_missing_keys_non_strings_and_blank_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"留言主题": "路灯不亮", "编号": 1, "标签": ["城建", "照明"]}, ensure_ascii=False
        ),
        "",
        json.dumps({"留言主题": "噪音扰民", "紧急": True, "标签": None}, ensure_ascii=False),
    ]
    frame = read_table(_write(tmp_path / "m.jsonl", "\n".join(lines) + "\n"))
    assert frame.to_dict("list") == {
        "留言主题": ["路灯不亮", "噪音扰民"],
        "编号": ["1", ""],
        "标签": ['["城建", "照明"]', ""],
        "紧急": ["", "true"],
    }


def test_jsonl_keeps_line_separator_characters_inside_strings(tmp_path: Path) -> None:
    text = "第一段\u2028第二段"
    path = _write(tmp_path / "m.ndjson", json.dumps({"内容": text}, ensure_ascii=False) + "\n")
    assert read_table(path)["内容"].tolist() == [text]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [('{"内容": "噪音扰民"', "not valid JSON"), ('["不是对象"]', "not an object")],
)
def test_jsonl_bad_line_names_its_line_number(tmp_path: Path, bad_line: str, message: str) -> None:
    content = '{"内容": "路灯"}\n\n' + bad_line + '\n{"内容": "垃圾"}\n'
    error = _error(read_table, _write(tmp_path / "m.jsonl", content))
    assert error.row == 3
    assert message in str(error) and "row 3" in str(error)


def test_reads_json_list_of_objects(tmp_path: Path) -> None:
    records = [{"title": "路灯不亮", "label": "城建"}, {"title": "噪音扰民", "label": "环保"}]
    path = _write(tmp_path / "m.json", json.dumps(records, ensure_ascii=False))
    assert read_table(path).to_dict("list") == {
        "title": ["路灯不亮", "噪音扰民"],
        "label": ["城建", "环保"],
    }


def test_json_that_is_not_a_list_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, _write(tmp_path / "m.json", '{"title": "路灯"}'))
    assert "list of objects" in str(error)


def test_reads_saved_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    columns = {"留言主题": ["路灯不亮", "噪音扰民"], "编号": [1, 2], "标签": [["城建"], ["环保"]]}
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "ds"))
    assert read_table(tmp_path / "ds").to_dict("list") == {
        "留言主题": ["路灯不亮", "噪音扰民"],
        "编号": ["1", "2"],
        "标签": ['["城建"]', '["环保"]'],
    }


@pytest.mark.parametrize(
    ("splits", "split", "expected"),
    [
        (("train", "test"), None, "train"),
        (("train", "test"), "test", "test"),
        (("validation",), None, "validation"),
    ],
)
def test_reads_a_split_of_a_saved_dataset_dict(
    tmp_path: Path, splits: tuple[str, ...], split: str | None, expected: str
) -> None:
    datasets = pytest.importorskip("datasets")
    saved = datasets.DatasetDict(
        {name: datasets.Dataset.from_dict({"内容": [f"{name} 留言"]}) for name in splits}
    )
    saved.save_to_disk(str(tmp_path / "dd"))
    assert read_table(tmp_path / "dd", split=split)["内容"].tolist() == [f"{expected} 留言"]


@pytest.mark.parametrize(("split", "message"), [(None, "choose one"), ("dev", "no split 'dev'")])
def test_dataset_dict_without_a_clear_split_is_a_data_error(
    tmp_path: Path, split: str | None, message: str
) -> None:
    datasets = pytest.importorskip("datasets")
    one = datasets.Dataset.from_dict({"内容": ["留言"]})
    datasets.DatasetDict({"test": one, "validation": one}).save_to_disk(str(tmp_path / "dd"))
    error = _error(read_table, tmp_path / "dd", split=split)
    assert message in str(error) and "test, validation" in str(error)


def test_directory_that_is_not_a_dataset_is_a_data_error(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    error = _error(read_table, tmp_path)
    assert "save_to_disk" in str(error)


# --- bad files ------------------------------------------------------------------------------


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, tmp_path / "nope.csv")
    assert error.path == str(tmp_path / "nope.csv")
    assert "not found" in str(error)


@pytest.mark.parametrize("name", ["m.csv", "m.tsv", "m.jsonl", "m.json"])
@pytest.mark.parametrize("content", ["", "\n \n"])
def test_empty_file_is_a_data_error(tmp_path: Path, name: str, content: str) -> None:
    error = _error(read_table, _write(tmp_path / name, content))
    assert "file is empty" in str(error)


def test_empty_sheet_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, _xlsx(tmp_path / "m.xlsx", {"留言": []}))
    assert "'留言' is empty" in str(error)


@pytest.mark.parametrize("content", ["留言主题,留言详情\n", "留言主题,留言详情\n\n,\n"])
def test_header_only_csv_is_a_data_error(tmp_path: Path, content: str) -> None:
    error = _error(read_table, _write(tmp_path / "m.csv", content))
    assert "has a header but no rows" in str(error)


def test_header_only_xlsx_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, _xlsx(tmp_path / "m.xlsx", {"留言": [["留言主题", "留言详情"]]}))
    assert "has a header but no rows" in str(error)


def test_undecodable_file_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    # UTF-8 fails on line 1 already; GB18030 gets as far as the damaged byte.
    content = "id,内容\n1,路灯不亮\n".encode("gbk") + b"\xff\xfe\x81" + "2,噪音\n".encode("gbk")
    error = _error(read_table, _write(tmp_path / "m.csv", content))
    assert error.row == 3
    assert "cannot be decoded" in str(error) and "m.csv" in str(error)


@pytest.mark.parametrize(
    ("content", "row", "message"),
    [
        ("主题,内容\n路灯,坏了\n噪音,很,吵\n", 3, "3 field(s) but the header has 2"),
        ("主题,内容\n路灯,坏了\n噪音\n", 3, "1 field(s) but the header has 2"),
        # A quoted line break keeps a record on one spreadsheet row; blank lines still count.
        ('主题,内容\n路灯,"坏了\n一周"\n\n噪音,很,吵\n', 4, "3 field(s)"),
    ],
)
def test_row_with_wrong_number_of_fields_names_its_row(
    tmp_path: Path, content: str, row: int, message: str
) -> None:
    error = _error(read_table, _write(tmp_path / "m.csv", content))
    assert error.row == row
    assert message in str(error)


def test_unclosed_quote_names_its_row(tmp_path: Path) -> None:
    error = _error(
        read_table, _write(tmp_path / "m.csv", '主题,内容\n路灯,坏了\n噪音,"很吵\n垃圾,多\n')
    )
    assert error.row == 3
    assert "never closed" in str(error)


def test_blank_header_line_is_a_data_error(tmp_path: Path) -> None:
    error = _error(read_table, _write(tmp_path / "m.csv", "\n主题,内容\n路灯,坏了\n"))
    assert error.row == 1 and "header" in str(error)


@pytest.mark.parametrize("name", ["m.xls", "m.parquet", "messages"])
def test_unsupported_file_type_is_a_data_error(tmp_path: Path, name: str) -> None:
    error = _error(read_table, _write(tmp_path / name, "x"))
    assert "cannot read" in str(error) and ".xlsx" in str(error)


def test_sheet_for_a_csv_is_a_data_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", _delimited([HEADER, *ROWS]))
    assert "sheet" in str(_error(read_table, path, sheet="留言"))


# --- columns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            ["留言编号", "留言主题", "留言时间", "留言详情", "一级标签"],
            ColumnSpec(("留言主题", "留言详情"), "一级标签", "留言时间", "留言编号"),
        ),
        (["编号", "标题", "内容", "标签"], ColumnSpec(("标题", "内容"), "标签", None, "编号")),
        (["详情", "一级分类"], ColumnSpec(("详情",), "一级分类")),
        (
            ["ID", " Title ", "\ufeffBody", "Category", "created_at"],
            ColumnSpec((" Title ", "\ufeffBody"), "Category", "created_at", "ID"),
        ),
        (["message_id", "Subject", "label"], ColumnSpec(("Subject",), "label", None, "message_id")),
        (["TEXT"], ColumnSpec(("TEXT",))),
    ],
)
def test_detects_columns_by_common_names(header: list[str], expected: ColumnSpec) -> None:
    frame = pd.DataFrame(columns=header)
    assert resolve_columns(frame, path="m.csv", require_label=False) == expected


def test_prefers_the_more_specific_name() -> None:
    frame = pd.DataFrame(columns=["内容", "留言详情", "标签", "一级标签"])
    spec = resolve_columns(frame, path="m.csv", require_label=True)
    assert spec.text == ("留言详情",) and spec.label == "一级标签"


def test_explicit_columns_override_detection() -> None:
    frame = pd.DataFrame(columns=["留言主题", "留言详情", "一级标签", "二级标签", "日期", "单号"])
    spec = resolve_columns(
        frame,
        path="m.csv",
        text_columns=["留言详情", " 留言主题"],
        label_column="二级标签",
        time_column="日期",
        id_column="单号",
        require_label=True,
    )
    assert spec == ColumnSpec(("留言详情", "留言主题"), "二级标签", "日期", "单号")


def test_single_text_column_given_as_a_string_is_not_split_into_characters() -> None:
    frame = pd.DataFrame(columns=["正文", "内容"])
    spec = resolve_columns(frame, path="m.csv", text_columns="正文", require_label=False)
    assert spec.text == ("正文",)


@pytest.mark.parametrize(
    "kwargs",
    [{"text_columns": ["正文"]}, {"label_column": "正文"}, {"time_column": "正文"}],
)
def test_missing_explicit_column_lists_the_columns(kwargs: dict[str, object]) -> None:
    frame = pd.DataFrame(columns=["留言主题", "一级标签"])
    error = _error(resolve_columns, frame, path="m.csv", require_label=False, **kwargs)
    assert error.column == "正文" and error.path == "m.csv"
    assert "留言主题, 一级标签" in str(error)


def test_no_text_column_lists_accepted_names_and_columns() -> None:
    frame = pd.DataFrame(columns=["编号", "情况说明"])
    message = str(_error(resolve_columns, frame, path="m.csv", require_label=False))
    assert "留言主题" in message and "content" in message
    assert "编号, 情况说明" in message and "--text-column" in message


@pytest.mark.parametrize("body", ["正文", "留言内容", "问题描述", "描述"])
def test_common_body_names_are_recognised(body: str) -> None:
    frame = pd.DataFrame(columns=["留言主题", body, "一级标签"])
    assert resolve_columns(frame, path="m.csv", require_label=False).text == ("留言主题", body)


LONG_BODY = "小区东门的路灯坏了一个多星期了，晚上出入很不安全，希望尽快派人修理。"


def test_a_title_alone_beside_long_text_is_refused_with_the_columns_to_pass() -> None:
    frame = pd.DataFrame(
        {
            "留言主题": ["路灯不亮", "噪音扰民", "垃圾成堆"],
            "反映情况": [LONG_BODY, LONG_BODY[:25], LONG_BODY[5:]],
            "受理时间": ["2026-11-01 09:00:00"] * 3,  # long, but no text
            "备注": ["急", "", "已回访"],
        }
    )
    error = _error(resolve_columns, frame, path="m.csv", require_label=False)
    message = str(error)
    assert error.path == "m.csv" and "'留言主题'" in message and "反映情况" in message
    assert "--text-column 留言主题 --text-column 反映情况" in message
    assert "受理时间" not in message and "备注" not in message
    # Naming the text columns settles it, the title alone included.
    spec = resolve_columns(frame, path="m.csv", text_columns=["留言主题"], require_label=False)
    assert spec.text == ("留言主题",)


def test_a_title_alone_beside_short_columns_is_read() -> None:
    frame = pd.DataFrame(
        {"留言主题": ["路灯不亮", "噪音扰民"], "二级标签": ["路灯", "噪音"], "备注": ["急", ""]}
    )
    assert resolve_columns(frame, path="m.csv", require_label=False).text == ("留言主题",)


def test_required_label_column_missing_is_a_data_error() -> None:
    frame = pd.DataFrame(columns=["留言主题", "分类结果"])
    message = str(_error(resolve_columns, frame, path="m.csv", require_label=True))
    assert "一级标签" in message and "留言主题, 分类结果" in message
    assert "--label-column" in message


def test_optional_label_column_may_be_absent() -> None:
    frame = pd.DataFrame(columns=["留言主题"])
    assert resolve_columns(frame, path="m.csv", require_label=False).label is None


# --- load_messages --------------------------------------------------------------------------


def test_load_messages_joins_text_columns_and_keeps_the_frame(tmp_path: Path) -> None:
    content = _delimited([HEADER + ["备注"], ["1", "路灯不亮", "", " 城建 ", "x"], ROWS[1] + [""]])
    loaded = load_messages(_write(tmp_path / "m.csv", content), require_label=True)
    # each text column normalised, then joined
    assert loaded.texts == [
        "路灯不亮",
        message_text(map(normalized, ROWS[1][1:3])),
    ]  # normalised, joined
    assert loaded.labels == ["城建", "环境保护"]
    assert loaded.rows == [2, 3]
    assert list(loaded.frame.columns) == HEADER + ["备注"]
    assert loaded.columns.id == "留言编号" and loaded.path == tmp_path / "m.csv"


def test_load_messages_without_label_column(tmp_path: Path) -> None:
    loaded = load_messages(_write(tmp_path / "m.csv", "内容\n路灯坏了\n"))
    assert loaded.labels is None and loaded.texts == ["路灯坏了"]


def test_rows_skip_blank_lines_but_keep_their_numbers(tmp_path: Path) -> None:
    content = "留言主题,一级标签\n路灯,城建\n\n,\n噪音,环保\n"
    loaded = load_messages(_write(tmp_path / "m.csv", content), require_label=True)
    assert loaded.rows == [2, 5]
    assert loaded.frame.index.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("name", "content", "row"),
    [
        ("m.csv", "留言主题,一级标签\n路灯,城建\n\n噪音, \n", 4),
        ("m.jsonl", '{"留言主题": "路灯", "一级标签": "城建"}\n\n{"留言主题": "噪音"}\n', 3),
    ],
)
def test_empty_label_names_row_and_column(
    tmp_path: Path, name: str, content: str, row: int
) -> None:
    error = _error(load_messages, _write(tmp_path / name, content), require_label=True)
    assert error.row == row and error.column == "一级标签"
    assert "label is empty" in str(error)


def test_empty_label_is_allowed_when_labels_are_not_required(tmp_path: Path) -> None:
    loaded = load_messages(_write(tmp_path / "m.csv", "留言主题,一级标签\n路灯,城建\n噪音,\n"))
    assert loaded.labels == ["城建", ""]


def test_all_empty_text_names_row_and_text_columns(tmp_path: Path) -> None:
    content = "留言编号,留言主题,留言详情\n1,路灯,坏了\n2, ,\n"
    error = _error(load_messages, _write(tmp_path / "m.csv", content))
    assert error.row == 3
    assert "'留言主题' and '留言详情' are all empty" in str(error)


def test_rows_without_text_are_kept_and_listed_when_allowed(tmp_path: Path) -> None:
    content = "留言编号,留言详情\n1,路灯坏了\n2,  \n3,噪音\n4,\n"
    loaded = load_messages(_write(tmp_path / "m.csv", content), allow_empty=True)
    assert loaded.texts == ["路灯坏了", "", "噪音", ""] and loaded.empty == [1, 3]
    errors = loaded.empty_errors()
    assert [(e.row, e.column) for e in errors] == [(3, "留言详情"), (5, "留言详情")]
    assert all(e.path == str(tmp_path / "m.csv") and "no text" in str(e) for e in errors)


def test_load_messages_from_xlsx_names_spreadsheet_rows(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "m.xlsx",
        {"留言": [["留言主题", "一级标签"], ["路灯", "城建"], [None, None], ["噪音", None]]},
    )
    error = _error(load_messages, path, require_label=True)
    assert error.row == 4 and error.column == "一级标签"


# --- write_table ----------------------------------------------------------------------------


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "留言主题": ["小区路灯不亮", "=1+1 不是公式"],
            "候选标签": [["城乡建设", "交通运输"], []],
            "详情": [{"部门": "住建局", "得分": 0.9}, None],
            "得分": [0.91, 0.5],
        }
    )


def test_write_csv_has_a_byte_order_mark_for_excel(tmp_path: Path, results: pd.DataFrame) -> None:
    path = tmp_path / "out" / "deep" / "results.csv"
    write_table(results, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    frame = read_table(path)
    assert frame["候选标签"].tolist() == ['["城乡建设", "交通运输"]', "[]"]
    assert json.loads(frame["详情"][0]) == {"部门": "住建局", "得分": 0.9}
    assert frame["详情"][1] == ""
    assert frame["留言主题"].tolist() == results["留言主题"].tolist()


def test_write_jsonl_keeps_chinese_and_native_lists(tmp_path: Path, results: pd.DataFrame) -> None:
    path = tmp_path / "out" / "results.jsonl"
    write_table(results, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert "小区路灯不亮" in lines[0]  # not \\u escapes
    records = [json.loads(line) for line in lines]
    assert records[0]["候选标签"] == ["城乡建设", "交通运输"]
    assert records[0]["详情"] == {"部门": "住建局", "得分": 0.9}
    assert records[1]["详情"] is None and records[1]["得分"] == 0.5


def test_write_xlsx_keeps_text_that_looks_like_a_formula(
    tmp_path: Path, results: pd.DataFrame
) -> None:
    path = tmp_path / "results.xlsx"
    write_table(results, path)
    frame = read_table(path)
    assert frame["留言主题"].tolist() == ["小区路灯不亮", "=1+1 不是公式"]
    assert frame["候选标签"].tolist() == ['["城乡建设", "交通运输"]', "[]"]
    assert frame["得分"].tolist() == ["0.91", "0.5"]


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl", "r.ndjson", "r.xlsx"])
def test_write_then_read_round_trips_strings(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame(EXPECTED)
    write_table(frame, tmp_path / name)
    assert read_table(tmp_path / name).to_dict("list") == EXPECTED


def test_write_xlsx_drops_characters_excel_cannot_hold(tmp_path: Path) -> None:
    write_table(pd.DataFrame({"内容": ["路灯\x00坏了\x1b"]}), tmp_path / "r.xlsx")
    assert read_table(tmp_path / "r.xlsx")["内容"].tolist() == ["路灯坏了"]


@pytest.mark.parametrize("name", ["r.parquet", "r.tsv", "r"])
def test_write_unknown_extension_is_a_data_error(tmp_path: Path, name: str) -> None:
    error = _error(write_table, pd.DataFrame(EXPECTED), tmp_path / "sub" / name)
    assert "cannot write" in str(error)
    assert not (tmp_path / "sub").exists()
