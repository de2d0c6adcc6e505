"""The responsibility catalogue (matters.csv): read, looked up, and every problem listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from typer.testing import CliRunner

from wangge.cli import app
from wangge.errors import DataError
from wangge.models.departments import RULES_BESIDE_MATTERS, RoutingTable
from wangge.models.matters import MatterCatalogue, MatterMatcher, validate_matters
from wangge.models.taxonomy import TaxonomyNode
from wangge.nlp.registry import Registry

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "district_binjiang"
DEPARTMENTS = ("滨江区住建局", "滨江区城管局")
TAXONOMY = [
    TaxonomyNode("城乡建设", "物业管理", "物业服务", ()),
    TaxonomyNode("城乡建设", "城乡规划", "违章建筑", ()),
]
HEADER = "一级分类,二级分类,三级分类,department,co_handlers,exceptions,note,关键词\n"
GOOD = (
    "城乡建设,物业管理,物业服务,滨江区住建局,滨江区城管局,,物业服务监管,\n"
    "城乡建设,城乡规划,违章建筑,滨江区城管局,,长河街道=滨江区住建局,,\n"
    "其他,邻里关系,邻里纠纷,{street},,,属地调解,邻居|吵架\n"
)


def district(tmp_path: Path, matters: str) -> Path:
    directory = tmp_path / "district"
    shutil.copytree(FIXTURE, directory)
    (directory / "matters.csv").write_text(HEADER + matters, encoding="utf-8")
    return directory


def problems(directory: Path) -> list[str]:
    registry = Registry.load(directory)
    found = validate_matters(
        directory, registry=registry, departments=DEPARTMENTS, taxonomy=TAXONOMY
    )
    return [f"{p.row}:{p.column}:{p.message}" for p in found]


def test_a_catalogue_gives_the_department_of_a_matter_and_its_street_exceptions(
    tmp_path: Path,
) -> None:
    directory = district(tmp_path, GOOD)
    registry = Registry.load(directory)
    catalogue = MatterCatalogue.load(
        directory, registry=registry, departments=DEPARTMENTS, taxonomy=TAXONOMY
    )
    assert catalogue is not None and len(catalogue) == 3
    service = catalogue.get("城乡建设", "物业管理", "物业服务")
    assert service is not None and service.name == "城乡建设 / 物业管理 / 物业服务"
    assert (service.department, service.co_handlers) == ("滨江区住建局", ("滨江区城管局",))
    building = catalogue.get("城乡建设", "城乡规划", "违章建筑")
    assert building is not None
    changhe = next(s.id for s in registry.of_level("street") if s.name == "长河街道")
    xixing = next(s.id for s in registry.of_level("street") if s.name == "西兴街道")
    assert building.department_in(changhe) == "滨江区住建局"  # the street's exception
    assert building.department_in(xixing) == building.department_in(None) == "滨江区城管局"
    neighbours = catalogue.get("其他", "邻里关系", "邻里纠纷")
    assert neighbours is not None and neighbours.keywords == ("邻居", "吵架")
    assert neighbours.department == "{street}"
    assert catalogue.get("城乡建设", "物业管理", "不在目录") is None


def test_every_problem_is_listed_with_its_row_and_column(tmp_path: Path) -> None:
    directory = district(
        tmp_path,
        "城乡建设,物业管理,物业服务,滨江区住建局,区交通局,,,\n"  # unknown co-handler
        "城乡建设,物业管理,物业服务,滨江区住建局,,,,\n"  # the same matter again
        "城乡建设,城乡规划,违章建筑,,,,,\n"  # no department
        "其他,噪音,施工噪音,区城管局,,,,\n"  # unknown department
        "其他,噪音,生活噪音,{street},,北京街道=滨江区城管局|长河街道,,\n"  # bad exceptions
        ",噪音,工业噪音,滨江区城管局,,,,\n",  # no first level
    )
    assert problems(directory) == [
        "2:co_handlers:'区交通局' is not in departments.csv",
        "3:三级分类:城乡建设 / 物业管理 / 物业服务 is already row 2",
        "4:department:a matter needs its responsible department",
        "5:department:'区城管局' is not in departments.csv",
        "6:exceptions:unknown street '北京街道' in this district",
        "6:exceptions:'长河街道' is not 街道=部门",
        "7:一级分类:a matter needs its first and second level",
    ]
    with pytest.raises(DataError, match="区交通局"):
        MatterCatalogue.load(
            directory,
            registry=Registry.load(directory),
            departments=DEPARTMENTS,
            taxonomy=TAXONOMY,
        )


def test_taxonomy_matters_the_catalogue_lacks_are_problems(tmp_path: Path) -> None:
    directory = district(tmp_path, "城乡建设,物业管理,物业服务,滨江区住建局,,,,\n")
    assert problems(directory) == [
        "None:None:no row for the taxonomy's matter 城乡建设 / 城乡规划 / 违章建筑"
    ]


def test_a_district_without_a_catalogue_has_none(tmp_path: Path) -> None:
    registry = Registry.load(FIXTURE)
    assert validate_matters(FIXTURE, registry=registry, departments=DEPARTMENTS) == []
    assert MatterCatalogue.load(FIXTURE, registry=registry, departments=DEPARTMENTS) is None


def test_district_validate_reports_the_catalogue(tmp_path: Path) -> None:
    directory = district(tmp_path, "城乡建设,物业管理,物业服务,区交通局,,,,\n")
    result = CliRunner().invoke(app, ["district", "validate", str(directory)])
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert "matters.csv, row 2, column 'department'" in first and "'区交通局' is not in" in first
    # and the shipped taxonomy's 517 matters, which this one-row catalogue lacks
    assert "518 problem(s) found" in result.output


EXAMPLES = (
    "一级分类,二级分类,三级分类,example\n"
    "城乡建设,城乡规划,违章建筑,隔壁在楼顶加盖了一层铁皮房\n"
    "城乡建设,城乡规划,违章建筑,一楼住户把院子围起来盖了间彩钢棚\n"
    "其他,邻里关系,邻里纠纷,楼上邻居天天半夜拖椅子，沟通没用\n"
)


def matcher(tmp_path: Path, examples: str | None = None) -> MatterMatcher:
    directory = district(tmp_path, GOOD)
    if examples is not None:
        (directory / "matter_examples.csv").write_text(examples, encoding="utf-8")
    catalogue = MatterCatalogue.load(
        directory, registry=Registry.load(directory), departments=DEPARTMENTS, taxonomy=TAXONOMY
    )
    assert catalogue is not None
    taxonomy = [
        TaxonomyNode("城乡建设", "物业管理", "物业服务", ("物业", "物业费")),
        TaxonomyNode("城乡建设", "城乡规划", "违章建筑", ("违建", "搭建")),
    ]
    return MatterMatcher(catalogue, taxonomy, model_categories={"城乡建设"})


def test_matters_are_found_by_their_words(tmp_path: Path) -> None:
    matters = matcher(tmp_path)
    best, *others = matters.match("小区物业不管事，物业费照收", {"城乡建设": 0.9})
    assert best.matter.level3 == "物业服务" and best.keywords == ("物业", "物业费")
    assert best.probability > 0.9 and all(o.probability < 0.05 and not o.keywords for o in others)
    # the catalogue's own words (关键词) find matters outside the taxonomy
    assert matters.match("邻居天天吵架", {"城乡建设": 0.9})[0].matter.level3 == "邻里纠纷"
    # a text with nothing of any matter is not sure of one
    assert matters.match("今天天气很好", {"城乡建设": 0.9})[0].probability < 0.6


def test_examples_find_a_matter_whose_words_a_message_lacks(tmp_path: Path) -> None:
    text = "对面楼顶加盖了铁皮房"  # neither 违建 nor 搭建
    without = matcher(tmp_path / "without").match(text)
    assert without[0].probability < 0.5
    best = matcher(tmp_path / "with", EXAMPLES).match(text)[0]
    assert best.matter.level3 == "违章建筑" and best.probability > 0.8 and best.keywords == ()
    catalogue = MatterCatalogue.load(
        tmp_path / "with" / "district",
        registry=Registry.load(tmp_path / "with" / "district"),
        departments=DEPARTMENTS,
    )
    assert catalogue is not None
    building = catalogue.get("城乡建设", "城乡规划", "违章建筑")
    assert building is not None and len(building.examples) == 2


def test_the_category_model_weighs_matters_of_its_categories(tmp_path: Path) -> None:
    text = "邻居吵架，物业也不管"
    matters = matcher(tmp_path)
    sure = {f.matter.level3: f.probability for f in matters.match(text, {"城乡建设": 0.9})}
    doubted = {f.matter.level3: f.probability for f in matters.match(text, {"环境保护": 0.9})}
    assert sure["物业服务"] > doubted["物业服务"] and sure["邻里纠纷"] < doubted["邻里纠纷"]
    batch = matters.match_many([text, text], [{"城乡建设": 0.9}, {"环境保护": 0.9}])
    assert {f.matter.level3: f.probability for f in batch[0]} == pytest.approx(sure)
    assert {f.matter.level3: f.probability for f in batch[1]} == pytest.approx(doubted)


def test_examples_of_unknown_matters_or_without_text_are_problems(tmp_path: Path) -> None:
    directory = district(tmp_path, GOOD)
    (directory / "matter_examples.csv").write_text(
        "一级分类,二级分类,三级分类,example\n"
        "城乡建设,城乡规划,违章建筑,楼顶加盖\n"
        "城乡建设,城乡规划,不在目录,楼顶加盖\n"
        "城乡建设,城乡规划,违章建筑,  \n",
        encoding="utf-8",
    )
    registry = Registry.load(directory)
    found = validate_matters(directory, registry=registry, departments=DEPARTMENTS)
    assert [
        (p.path.endswith("matter_examples.csv"), p.row, p.column, p.message) for p in found
    ] == [
        (True, 3, "三级分类", "城乡建设 / 城乡规划 / 不在目录 is not a matter of matters.csv"),
        (True, 4, "example", "an example needs its text"),
    ]


def test_routing_names_the_matter_and_the_catalogue_row(tmp_path: Path) -> None:
    directory = district(tmp_path, GOOD)  # three rows: the taxonomy's other matters are absent
    registry = Registry.load(directory)
    table = RoutingTable.load(directory, registry=registry)
    assert table.matters is not None and len(table.matters.catalogue) == 3
    changhe = next(s for s in registry.of_level("street") if s.name == "长河街道")
    text = "小区里有人在楼顶违建，搭建了一个阳光房"
    best = table.route(text, categories={"城乡建设": 0.9}, street=changhe)[0]
    # 违章建筑 is 滨江区城管局's, but 长河街道's exception gives it to 滨江区住建局
    assert best.department == "滨江区住建局"
    assert any("事项 城乡建设 / 城乡规划 / 违章建筑" in r and "事项清单第3行" in r
               for r in best.reasons)  # fmt: skip
    # With a catalogue, routing.csv's category rules give way to the matters, its
    # district-wide keyword rules count at RULES_BESIDE_MATTERS of their weight, and a street's
    # rules still override (长河街道's 路灯 rule, row 5).
    street_reasons = [r for d in table.route("路灯不亮", street=changhe) for r in d.reasons]
    assert any("规则第5行" in r for r in street_reasons)
    reasons = {
        r: d.score for d in table.route("路灯不亮", categories={"城乡建设": 0.9}) for r in d.reasons
    }
    assert not any("类别" in r for r in reasons)
    (lamp,) = [r for r in reasons if "规则第4行" in r]
    assert "×0.75" in lamp and reasons[lamp] >= RULES_BESIDE_MATTERS * 0.75
