"""Place levels: which names are evidence of one case (specific) and which only of one area."""

from __future__ import annotations

import pytest

from wangge.nlp.places import (
    Level,
    administrative_names,
    broad,
    kind_named_places,
    place_level,
    specific,
)


@pytest.mark.parametrize(
    "name",
    [
        "星沙",  # a town (星沙街道) by its bare name
        "暮云",
        "暮云街道",
        "黄花镇",
        "长沙县",
        "望城",  # a district by its alias
        "A市",  # the anonymised forms of the Teddy Cup data
        "A3区",
        "A市A3区",
        "西地省",
        "高新区",
        "城厢街道",  # a street of the shipped district registry
        "住建局",  # government bodies
        "区政府",
        "物业公司",  # only a kind
        "小区",
        "梅溪湖",  # a bare short name without a kind
        "公办幼儿园",  # a kind with a qualifier
        "地铁3号线",  # a line across the city
    ],
)
def test_divisions_towns_and_bare_names_are_broad(name: str) -> None:
    assert place_level(name) is Level.BROAD


@pytest.mark.parametrize(
    "name",
    [
        "金城花园",
        "伊景园滨河苑",
        "云塘路",
        "新城新世界",
        "师大附中",
        "星沙文化公园",  # a town's name inside a specific one
        "卫生服务站",
        "万科城",
        "金星村",
        "东塘派出所",
        "菜市场",  # ends with 市, but a market
        "晟通牡丹舸物业",
        "陈公桥社区",  # a community: below the street level
        "开元路",  # also the bare name of a street office (开元路街道), but a road
    ],
)
def test_compounds_roads_schools_shops_and_organisations_are_specific(name: str) -> None:
    assert place_level(name) is Level.SPECIFIC


def test_towns_come_from_the_national_divisions() -> None:
    names = administrative_names()
    assert {"星沙街道", "星沙", "暮云街道", "长沙县"} <= names
    assert "金城花园" not in names


def test_names_split_by_level() -> None:
    names = ["星沙", "金城花园", "A3区", "云塘路"]
    assert specific(names) == {"金城花园", "云塘路"}
    assert broad(names) == {"星沙", "A3区"}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("我们是魅力之城小区居民，小区朝北大门", {"魅力之城小区"}),
        ("A7县星沙街道英祥春天小区一楼被搞成门面", {"英祥春天小区"}),
        ("A市楚通驾校套路学员", {"楚通驾校"}),
        ("地处银杉路和银星路交叉口", {"银杉路", "银星路"}),
        ("请求硬化A4区沙坪街道竹安村的道路", {"竹安村"}),
        ("离黄泥街隆盛手机市场不远", {"黄泥街隆盛手机市场"}),
    ],
)
def test_places_are_found_by_their_kind(text: str, names: set[str]) -> None:
    assert kind_named_places(text) == names


def test_a_kind_alone_or_after_a_clause_word_is_no_name() -> None:
    # "小区" after 的/是 has no name before it; 街道 and 区 are administrative, not the place
    assert kind_named_places("我们的小区是老小区，A3区街道的路") == frozenset()
