"""The department routing table: rules, street overrides, reasons, and its checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wangge.errors import DataError
from wangge.models.departments import UNKNOWN_STREET, RoutingTable
from wangge.models.router import MessageRouter
from wangge.nlp.registry import Registry

BINJIANG = Path(__file__).resolve().parent.parent / "fixtures" / "district_binjiang"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(BINJIANG)


@pytest.fixture(scope="module")
def table(registry: Registry) -> RoutingTable:
    return RoutingTable.load(BINJIANG, registry=registry)


def names(scores: list) -> list[str]:
    return [score.department for score in scores]


def test_category_rule_scales_with_the_probability(table: RoutingTable) -> None:
    [top, *_] = table.route("房子漏水", categories={"城乡建设": 0.5})
    assert top.department == "滨江区住建局" and top.score == pytest.approx(0.35)
    assert "类别 城乡建设 (0.50)" in top.reasons[0] and "第2行" in top.reasons[0]


def test_reasons_combine_as_independent_evidence(table: RoutingTable) -> None:
    [top, *_] = table.route("电梯坏了", categories={"城乡建设": 1.0})
    assert top.department == "滨江区住建局"
    assert top.score == pytest.approx(1 - (1 - 0.7) * (1 - 0.8))
    assert len(top.reasons) == 2 and "关键词 电梯" in top.reasons[0]  # strongest first


def test_street_placeholder_names_the_routed_street(
    table: RoutingTable, registry: Registry
) -> None:
    street = registry.units["330108001"]
    scores = table.route("围墙倒了", categories={"城乡建设": 0.9}, street=street)
    assert names(scores) == ["滨江区住建局", "西兴街道"]
    assert scores[1].function == "属地"
    unknown = table.route("围墙倒了", categories={"城乡建设": 0.9})
    assert names(unknown) == ["滨江区住建局", UNKNOWN_STREET]


def test_a_department_can_be_the_office_of_its_street(registry: Registry, tmp_path: Path) -> None:
    directory = Path(shutil.copytree(BINJIANG, tmp_path / "district"))
    departments = directory / "departments.csv"
    text = departments.read_text(encoding="utf-8").replace("handles\n", "handles,street\n")
    departments.write_text(text + "高新区管委会,管委会,高新区管委会,高新区的建设与管理,长河街道\n")
    table = RoutingTable.load(directory, registry=registry)
    changhe, xixing = registry.units["330108002"], registry.units["330108001"]
    # {street} in 长河街道 is the 管委会 that governs it; elsewhere the street office itself
    assert names(table.route("围墙倒了", categories={"城乡建设": 0.9}, street=changhe)) == [
        "滨江区住建局", "高新区管委会",
    ]  # fmt: skip
    assert names(table.route("围墙倒了", categories={"城乡建设": 0.9}, street=xixing))[1] == (
        "西兴街道"
    )
    departments.write_text(text + "高新区管委会,管委会,高新区管委会,,浦沿街道\n")
    with pytest.raises(DataError, match="row 5") as caught:
        RoutingTable.load(directory, registry=registry)
    assert "unknown street '浦沿街道'" in str(caught.value) and "'street'" in str(caught.value)


def test_street_rules_override_only_in_their_street(
    table: RoutingTable, registry: Registry
) -> None:
    changhe, xixing = registry.units["330108002"], registry.units["330108001"]
    [top, *_] = table.route("路灯不亮", street=changhe)
    assert top.department == "滨江区城管局" and top.score == pytest.approx(1 - 0.25 * 0.05)
    assert any("本街道规则" in reason for reason in top.reasons)
    [elsewhere, *_] = table.route("路灯不亮", street=xixing)
    assert elsewhere.score == pytest.approx(0.75)


def test_learned_probabilities_join_the_rules(table: RoutingTable) -> None:
    scores = table.route("其他事情", learned={"滨江区城管局": 0.6, "滨江区住建局": 0.01})
    assert names(scores) == ["滨江区城管局"]  # probabilities below 0.05 are noise
    assert scores[0].reasons == ["部门模型 (0.60)"]


def test_top_k_and_nothing_matched(table: RoutingTable) -> None:
    assert table.route("今天天气不错") == []
    assert len(table.route("物业不管路灯和垃圾", categories={"城乡建设": 1}, top_k=1)) == 1


def test_functions_named_in_a_reply(table: RoutingTable) -> None:
    reply = "经区城管局核实，已转西兴街道办事处处理，住建局配合"
    assert table.functions_named(reply) == ["城管", "属地", "住建"]


def test_shipped_xiaoshan_table_loads_and_routes() -> None:
    xiaoshan = Registry.load()
    table = RoutingTable.load(registry=xiaoshan)
    scores = table.route("小区物业乱收停车费", categories={"城乡建设": 0.8})
    assert scores[0].department == "区住建局"
    assert len(table.rules) > 40 and "公安萧山分局" in table.departments


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("不存在的局,城乡建设,,,0.5,", "'不存在的局' is not in departments.csv"),
        ("滨江区住建局,城乡建设,,,1.5,", "must be in (0, 1]"),
        ("滨江区住建局,城乡建设,,,很高,", "not a number"),
        ("滨江区住建局,,,,0.5,", "needs a category, keywords or both"),
        ("滨江区住建局,城乡建设,,浦沿街道,0.5,", "unknown street '浦沿街道'"),
    ],
)
def test_bad_rules_name_file_row_and_column(
    registry: Registry, tmp_path: Path, line: str, message: str
) -> None:
    directory = Path(shutil.copytree(BINJIANG, tmp_path / "district"))
    rules = directory / "routing.csv"
    rules.write_text(rules.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 7") as caught:
        RoutingTable.load(directory, registry=registry)
    assert message in str(caught.value) and "routing.csv" in str(caught.value)


def test_out_of_area_messages_are_forwarded_not_given_local_departments() -> None:
    router = MessageRouter.load(ner=False)
    (route,) = router.route_many([{"content": "北京朝阳区小区物业不作为，物业费乱收"}])
    (forward,) = route.departments
    assert (forward.department, forward.function) == ("转办：北京市朝阳区", "转办")
    assert "北京市朝阳区" in forward.reasons[0] and forward.reasons[0].endswith("→ 转办")
    (local,) = router.route_many([{"content": "城厢街道小区物业不作为，物业费乱收"}])
    assert "转办" not in {d.function for d in local.departments}
