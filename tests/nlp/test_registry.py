"""The grid registry: the shipped 萧山区 default, another district, and the validator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wangge.errors import DataError
from wangge.nlp.registry import Registry, default_district_dir, validate_district

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BINJIANG = FIXTURES / "district_binjiang"


@pytest.fixture(scope="module")
def xiaoshan() -> Registry:
    return Registry.load()


@pytest.fixture()
def district(tmp_path: Path) -> Path:
    """A writable copy of the Binjiang fixture, to break on purpose."""
    return Path(shutil.copytree(BINJIANG, tmp_path / "district"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_xiaoshan_has_the_official_units(xiaoshan: Registry) -> None:
    assert xiaoshan.district.name == "萧山区" and xiaoshan.district.id == "330109"
    assert len(xiaoshan.of_level("street")) == 27
    assert len(xiaoshan.of_level("community")) == 585
    assert len(xiaoshan.of_level("grid")) == 585  # the default layer: one grid per community
    village = xiaoshan.units["330109002207"]
    assert village.name == "荣庄村" and "荣庄村委会" in village.aliases  # residents drop 委会
    assert xiaoshan.ancestor(village.id, "street").name == "北干街道"  # type: ignore[union-attr]
    assert validate_district(default_district_dir()) == []


def test_everyday_words_have_no_bare_name(xiaoshan: Registry) -> None:
    bare = {u.name: u.bare_name for u in xiaoshan.of_level("community")}
    assert bare["幸福村"] is None and bare["团结村"] is None and bare["光明村"] is None
    assert bare["陈公桥社区"] == "陈公桥"
    streets = {u.name: u.bare_name for u in xiaoshan.of_level("street")}
    assert streets["城厢街道"] == "城厢" and streets["河上镇"] is None


def test_another_district_loads_from_files(district: Path) -> None:
    registry = Registry.load(district)
    assert registry.district.name == "滨江区"
    assert {g.id for g in registry.children("330108001003")} == {"BJ-001", "BJ-002"}
    assert registry.units["BJ-002"].aliases == ("月光苑", "庙后王农贸市场")


def test_grid_at_finds_the_polygon_containing_a_point(district: Path) -> None:
    registry = Registry.load(district)
    assert registry.grid_at(120.215, 30.205).id == "BJ-002"  # type: ignore[union-attr]
    assert registry.grid_at(120.205, 30.205).id == "BJ-001"  # type: ignore[union-attr]
    assert registry.grid_at(121.0, 31.0) is None


def test_grid_file_can_replace_the_district_grids(district: Path, tmp_path: Path) -> None:
    grids = write(
        tmp_path / "own_grids.csv",
        "id,name,community,aliases\n"
        "G1,庙后王网格,330108001003,\nG2,马湖网格,330108001007,湖畔花园\n"
        "G3,长河网格,330108002001,\nG4,江一网格,330108002002,\n",
    )
    registry = Registry.load(district, grid_file=grids)
    assert sorted(u.id for u in registry.of_level("grid")) == ["G1", "G2", "G3", "G4"]


def problems_of(district: Path, grids: Path | None = None) -> list[str]:
    return [str(problem) for problem in validate_district(district, grids)]


def test_validator_reports_duplicate_ids_with_both_rows(district: Path) -> None:
    units = district / "units.csv"
    units.write_text(
        units.read_text(encoding="utf-8") + "330108001007,马湖社区,community,330108001,,\n",
        encoding="utf-8",
    )
    [problem] = problems_of(district)
    assert "row 9" in problem and "duplicate id 330108001007" in problem and "row 6" in problem


def test_validator_reports_unknown_parent_orphan_and_wrong_level(
    district: Path, tmp_path: Path
) -> None:
    units = district / "units.csv"
    text = units.read_text(encoding="utf-8")
    text += "330108003001,冠山社区,community,330108003,,\n"  # no such street
    text += "330108009,浦沿街道,street,330108,,\n"  # a street with no community
    text += "330108002009,奇怪社区,community,330108,,\n"  # parent is the district
    units.write_text(text, encoding="utf-8")
    problems = " | ".join(problems_of(district))
    assert "unknown parent 330108003" in problems and "column 'parent'" in problems
    assert "orphan street 330108009" in problems
    assert "parent 330108 is a district, not a street" in problems
    assert "orphan community 330108002009" in problems  # no grid under it


def test_validator_reports_bad_polygons(district: Path) -> None:
    collection = json.loads((district / "grids.geojson").read_text(encoding="utf-8"))
    bowtie = [[[120.2, 30.2], [120.21, 30.21], [120.21, 30.2], [120.2, 30.21], [120.2, 30.2]]]
    collection["features"][0]["geometry"]["coordinates"] = bowtie
    collection["features"][1]["geometry"] = {"type": "Point", "coordinates": [120.2, 30.2]}
    collection["features"][2]["geometry"] = {
        "type": "Polygon",
        "coordinates": [
            [[500000, 3300000], [500100, 3300000], [500100, 3300100], [500000, 3300000]]
        ],
    }
    (district / "grids.geojson").write_text(json.dumps(collection), encoding="utf-8")
    problems = problems_of(district)
    assert len(problems) == 3
    assert "row 1" in problems[0] and "invalid polygon: Self-intersection" in problems[0]
    assert "row 2" in problems[1] and "must be a Polygon or MultiPolygon, not Point" in problems[1]
    assert "row 3" in problems[2] and "not longitude/latitude" in problems[2]


def test_loading_a_broken_district_raises_the_first_problem(district: Path) -> None:
    write(district / "grids.geojson", '{"type": "FeatureCollection", "features": [')
    with pytest.raises(DataError, match="not readable as GeoJSON"):
        Registry.load(district)


def test_missing_column_and_missing_files_are_clear(district: Path, tmp_path: Path) -> None:
    write(district / "units.csv", "id,name,parent\n330108,滨江区,\n")
    with pytest.raises(DataError, match=r"row 1: missing column\(s\) level"):
        Registry.load(district)
    with pytest.raises(DataError, match="no units.csv"):
        Registry.load(tmp_path / "nowhere")
