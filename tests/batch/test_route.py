"""Routing files and the routing acceptance figures on the hand-written Xiaoshan sets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from wangge.batch.files import load_messages
from wangge.batch.messages import file_messages
from wangge.batch.route import route_file
from wangge.cli import app
from wangge.errors import DataError
from wangge.models.router import MessageRouter
from wangge.pipeline import Triage
from wangge.training.evaluate_files import evaluate_routing

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EVALUATION_SETS = ["routing_eval_xiaoshan.csv", "routing_heldout_xiaoshan.csv"]
ROUTING_COLUMNS = [
    "street_code", "street_name", "community_code", "community_name", "grid_id", "out_of_area",
    "route_confidence", "route_evidence", "department", "departments",
]  # fmt: skip


@pytest.fixture(scope="module")
def router() -> MessageRouter:
    return MessageRouter.load(ner=False)  # NER only adds evidence; decisions are the same


@pytest.mark.parametrize("name", EVALUATION_SETS)
def test_location_accuracy_on_the_evaluation_sets(router: MessageRouter, name: str) -> None:
    data = load_messages(FIXTURES / name, text_columns=["title", "content"])
    assert len(data.texts) >= 150
    kinds = set(data.frame["kind"])
    assert {"full", "community_only", "street_only", "out_of_area", "no_location"} <= kinds
    routes = [result.route for result in Triage(router=router).pipe(file_messages(data))]
    result = evaluate_routing(data, [route for route in routes if route is not None])
    assert result.street_accuracy >= 0.97, result.errors
    assert result.community_accuracy >= 0.93, result.errors
    assert result.leaks == 0, result.errors


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    pd.DataFrame(rows[1:], columns=rows[0]).to_csv(path, index=False, encoding="utf-8")
    return path


def test_route_file_keeps_input_and_adds_routing_columns(
    router: MessageRouter, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [
            ["编号", "标题", "内容", "地址"],
            ["1", "路灯不亮", "陈公桥社区路灯坏了", ""],
            ["2", "乱停车", "门口天天乱停车", "萧山区北干街道荣庄村8号"],
            ["3", "噪音", "滨江区长河街道工地夜里施工", ""],
            ["4", "垃圾", "楼下垃圾没人管", ""],
        ],
    )
    output = tmp_path / "out.jsonl"
    assert route_file(source, output, router=router).rows == 4
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert list(records[0]) == ["编号", "标题", "内容", "地址", *ROUTING_COLUMNS,
                                "needs_review", "review_reason"]  # fmt: skip
    assert [r["community_name"] for r in records] == ["陈公桥社区", "荣庄村", "", ""]
    assert [r["out_of_area"] for r in records] == [False, False, True, False]
    assert [r["needs_review"] for r in records] == [False, False, False, True]
    assert records[3]["review_reason"] == "unlocated"
    assert records[0]["department"] == records[0]["departments"][0]["department"] == "区城管局"
    assert records[0]["grid_id"] == "330109001001-G01"


def test_bad_coordinates_name_file_row_and_column(router: MessageRouter, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [["内容", "纬度", "经度"], ["路灯坏了", "30.1", "120.2"], ["垃圾", "北纬30度", "120.2"]],
    )
    with pytest.raises(DataError, match=r"row 3, column '纬度': not a latitude"):
        route_file(source, tmp_path / "out.csv", router=router)


def test_cli_route_and_district_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    source = write_csv(tmp_path / "in.csv", [["内容"], ["瓜沥镇航民村路灯坏了"]])
    output = tmp_path / "out.csv"
    result = runner.invoke(app, ["route", str(source), "--output", str(output), "--no-ner"])
    assert result.exit_code == 0, result.output
    assert "1 messages routed" in result.output and "jionlp" not in result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert frame["community_name"].tolist() == ["航民村"]

    result = runner.invoke(app, ["district", "validate"])
    assert result.exit_code == 0 and "27 streets, 585 communities, 585 grids" in result.output

    grids = tmp_path / "grids.csv"
    grids.write_text(
        "id,name,community\nG1,一号网格,330109001001\nG1,二号网格,330109001001\n"
        "G2,三号网格,330109999999\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["district", "validate", "--grids", str(grids)])
    assert result.exit_code == 1
    assert "row 3, column 'id': duplicate id G1" in result.output
    assert "unknown parent 330109999999" in result.output
    assert "orphan community" in result.output  # the other 584 communities lost their grids


def test_cli_route_with_another_district(tmp_path: Path) -> None:
    district = FIXTURES / "district_binjiang"
    source = write_csv(
        tmp_path / "in.csv", [["内容"], ["月光苑门口垃圾成堆"], ["萧山区城厢街道路灯坏了"]]
    )
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app, ["route", str(source), "-o", str(output), "--district", str(district), "--no-ner"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert frame["grid_id"].tolist() == ["BJ-002", ""]
    assert frame["community_name"].tolist() == ["庙后王社区", ""]
    assert frame["out_of_area"].tolist() == ["False", "True"]  # 萧山区 is elsewhere for Binjiang
    assert frame["department"].tolist()[0] == "滨江区城管局"
