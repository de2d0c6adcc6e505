"""Finding and resolving places: gazetteer forms, ambiguity, out of area, structured fields."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wangge.nlp.gazetteer import Mention
from wangge.nlp.locate import (
    MAX_GAP,
    NER_CHARS,
    RESIDENCE_CUES,
    Location,
    LocationExtractor,
    _residences,
)
from wangge.nlp.registry import Registry

BINJIANG = Path(__file__).resolve().parent.parent / "fixtures" / "district_binjiang"


@pytest.fixture(scope="module")
def xiaoshan() -> LocationExtractor:
    return LocationExtractor(ner=False)


@pytest.fixture(scope="module")
def binjiang() -> LocationExtractor:
    return LocationExtractor(Registry.load(BINJIANG), ner=False)


def where(location: Location) -> tuple[str | None, str | None, bool]:
    street = location.street.name if location.street else None
    community = location.community.name if location.community else None
    return street, community, location.out_of_area


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("城厢街道陈公桥社区路灯坏了", ("城厢街道", "陈公桥社区", False)),  # full names
        ("陈公桥社区路灯坏了", ("城厢街道", "陈公桥社区", False)),  # community only
        ("我们陈公桥这边路灯坏了", ("城厢街道", "陈公桥社区", False)),  # without its suffix
        ("荣庄村委会门口垃圾成堆", ("北干街道", "荣庄村", False)),  # the official 村委会 form
        ("城厢这边的路灯坏了", ("城厢街道", None, False)),  # street short name
        ("瓜沥镇上的菜场太脏", ("瓜沥镇", None, False)),  # street only
        ("钱江世纪城工地夜间施工", ("萧山钱江世纪城", None, False)),  # alias of a special area
    ],
)
def test_names_in_their_forms(xiaoshan: LocationExtractor, text: str, expected: tuple) -> None:
    assert where(xiaoshan.locate(title=text)) == expected


def test_overlapping_names_take_the_longest(xiaoshan: LocationExtractor) -> None:
    # 新塘头村 (in 新街街道) contains 新塘, the short name of 新塘街道.
    assert where(xiaoshan.locate(content="新塘头村的河道发臭")) == ("新街街道", "新塘头村", False)
    assert where(xiaoshan.locate(content="新塘街道有人乱倒垃圾")) == ("新塘街道", None, False)
    assert where(xiaoshan.locate(content="戴村镇戴村村的路坏了")) == ("戴村镇", "戴村村", False)


def test_everyday_words_are_not_places(xiaoshan: LocationExtractor) -> None:
    for text in ("大家生活幸福感很强，团结一致", "河上漂满了垃圾", "光明正大地乱收费"):
        location = xiaoshan.locate(content=text)
        assert where(location) == (None, None, False) and location.confidence == 0
    # …but the same names with their suffix are villages.
    assert where(xiaoshan.locate(content="幸福村村口路灯坏了")) == ("党湾镇", "幸福村", False)


def test_a_bare_name_before_a_road_is_the_road(xiaoshan: LocationExtractor) -> None:
    assert xiaoshan.locate(content="陈公桥路上有人占道经营").community is None


def test_shared_names_are_settled_by_the_street_or_left_open(
    xiaoshan: LocationExtractor,
) -> None:
    # 东风村 exists in 南阳街道 and in 戴村镇.
    settled = xiaoshan.locate(content="南阳街道东风村的水泥路坏了")
    assert where(settled) == ("南阳街道", "东风村", False) and settled.confidence >= 0.9
    assert settled.community.id == "330109006202"  # type: ignore[union-attr]
    open_ = xiaoshan.locate(content="东风村的水泥路坏了")
    assert where(open_) == (None, None, False) and open_.needs_review()
    assert any("东风村(南阳街道)" in e and "东风村(戴村镇)" in e for e in open_.evidence)
    # A street's everyday-word short name counts right before one of its communities.
    assert where(xiaoshan.locate(content="河上紫霞村停电了")) == ("河上镇", "紫霞村", False)


def test_the_problem_place_beats_the_home(xiaoshan: LocationExtractor) -> None:
    location = xiaoshan.locate(content="我住在河上镇，但这个事情在新塘街道紫霞村，断电十几天了")
    assert where(location) == ("新塘街道", "紫霞村", False)


def walked_back(text: str, mentions: list[Mention], index: int) -> bool:
    """The residence rule read literally: walk back through the chain of names before the
    mention until one follows 住在 (a residence) or the chain breaks (not one)."""
    while True:
        start = mentions[index].start
        if text[max(0, start - 3) : start].endswith(RESIDENCE_CUES):
            return True
        if index == 0 or start - mentions[index - 1].end > MAX_GAP:
            return False
        index -= 1


@pytest.mark.parametrize(
    "text",
    [
        "我家住在萧山城厢，但公司在滨江区长河街道",
        "我住在河上镇楼塔镇楼英村，但是城厢街道陈公桥社区路灯坏了",
        "住在城厢 萧山 新塘街道紫霞村，我们家住瓜沥镇东湖村的人说城厢萧山城厢",
        "城厢萧山城厢萧山住城厢萧山，河上紫霞村停电了",
    ],
)
def test_residences_follow_the_chains_of_names_in_one_pass(
    xiaoshan: LocationExtractor, text: str
) -> None:
    mentions = xiaoshan.gazetteer.find(text)
    expected = [walked_back(text, mentions, i) for i in range(len(mentions))]
    assert _residences(text, mentions) == expected and any(expected) and not all(expected)


def test_a_long_chain_of_place_names_is_located_in_linear_time(
    xiaoshan: LocationExtractor,
) -> None:
    started = time.perf_counter()  # walking each chain back took 13 s for this text
    location = xiaoshan.locate(content="城厢" * 10_000)
    assert time.perf_counter() - started < 2
    assert where(location) == ("城厢街道", None, False)
    home = xiaoshan.locate(content="我家住在" + "萧山城厢" * 5_000 + "，公司在滨江区长河街道")
    assert home.out_of_area


@pytest.mark.parametrize(
    "text",
    [
        "滨江区长河街道江南大道晚上噪音很大",
        "绍兴柯桥的工厂拖欠工资",
        "富阳区灵桥镇光明村的河道堵了",  # 光明村 is also a Xiaoshan village
        "西湖区双浦镇灵山村农家乐噪音",  # so is 灵山村
        "我老家在河南南阳，想把户口迁过来",  # 南阳 is also a Xiaoshan street
        "我家住在萧山城厢，但公司在滨江区长河街道，三个月没发工资",
    ],
)
def test_places_elsewhere_are_out_of_area(xiaoshan: LocationExtractor, text: str) -> None:
    location = xiaoshan.locate(content=text)
    assert location.out_of_area and location.community is None and location.street is None
    assert location.confidence >= 0.6  # a confident decision: forward it, no review


@pytest.mark.parametrize(
    ("text", "forward_to"),
    [
        ("北京朝阳区小区物业不作为", "北京市朝阳区"),  # 北京 settles 朝阳区 (not 长春市's)
        ("杭州西湖区文三路有人占道经营", "杭州市西湖区"),  # the city the text names
        ("绍兴柯桥区齐贤街道工厂排污", "绍兴市柯桥区"),  # the county, not the street
        ("灵隐街道一一七社区垃圾没人清", "杭州市西湖区"),  # a street named alone gives its county
        ("我家住萧山，在上海打工被欠薪", "上海市"),
        ("我是萧山人，在宁波一家工厂打工被拖欠工资", "宁波市"),  # an origin, not the matter's
        ("西湖区有人乱停车", "南昌市西湖区/杭州市西湖区"),  # left open for the dispatcher
    ],
)
def test_out_of_area_messages_say_where_to_forward_them(
    xiaoshan: LocationExtractor, text: str, forward_to: str
) -> None:
    location = xiaoshan.locate(content=text)
    assert location.out_of_area and location.forward_to == forward_to


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("萧山城区的停车位太少了，晚上回家找不到地方停", None),  # not 晋城市城区
        ("老城区的排水管道老化，一下雨就积水", None),  # not 洛阳市老城区
        ("我在西区那边的厂里上班，老板拖欠工资", None),  # not 攀枝花市西区
        ("开发区的人才公寓申请了半年一直在排队", "萧山经济技术开发区"),  # not 平阳县's 开发区
    ],
)
def test_everyday_words_for_part_of_a_town_stay_local(
    xiaoshan: LocationExtractor, text: str, street: str | None
) -> None:
    location = xiaoshan.locate(content=text)
    assert not location.out_of_area and location.forward_to is None
    assert (location.street.name if location.street else None) == street


@pytest.mark.parametrize(
    "text",
    [
        "我是萧山职工医保参保人，在上海住院做了手术，回来报销比例很低",
        "在萧山一家旅行社报了云南游，团没成行，定金不退",
        "户口在萧山，孩子在北京出生，怎么给孩子上户口",
    ],
)
def test_the_districts_matter_named_elsewhere_stays_here_for_review(
    xiaoshan: LocationExtractor, text: str
) -> None:
    location = xiaoshan.locate(content=text)
    assert not location.out_of_area and location.forward_to is None
    assert location.needs_review() and any("辖区外" in e for e in location.evidence)


def test_no_place_needs_review(xiaoshan: LocationExtractor) -> None:
    location = xiaoshan.locate(title="楼下垃圾没人清理", content="已经三天了，很臭")
    assert where(location) == (None, None, False)
    assert location.needs_review() and location.as_columns()["community_code"] == ""


def test_address_field_wins_over_text(xiaoshan: LocationExtractor) -> None:
    location = xiaoshan.locate(content="陈公桥社区有人乱停车", address="萧山区北干街道荣庄村18号")
    assert where(location) == ("北干街道", "荣庄村", False) and location.source == "address"
    # A street-level address is refined by a community of that street in the text.
    refined = xiaoshan.locate(content="荣庄村有人乱停车", address="北干街道")
    assert where(refined) == ("北干街道", "荣庄村", False) and refined.source == "address"


def test_registered_grid_is_used_when_nothing_stronger(xiaoshan: LocationExtractor) -> None:
    location = xiaoshan.locate(content="楼下垃圾没人清理", grid_id="330109002207-G01")
    assert where(location) == ("北干街道", "荣庄村", False)
    assert location.source == "registered_grid" and not location.needs_review()


def test_coordinates_resolve_through_polygons(binjiang: LocationExtractor) -> None:
    location = binjiang.locate(content="马湖社区路灯坏了", latitude=30.205, longitude=120.215)
    assert location.grid.id == "BJ-002" and location.source == "coordinates"  # type: ignore[union-attr]
    assert where(location) == ("西兴街道", "庙后王社区", False)


def test_another_district_resolves_its_own_names(binjiang: LocationExtractor) -> None:
    # A grid alias (a compound) names its grid and community.
    location = binjiang.locate(content="月光苑门口垃圾成堆")
    assert where(location) == ("西兴街道", "庙后王社区", False)
    assert location.grid.id == "BJ-002"  # type: ignore[union-attr]
    # Xiaoshan is elsewhere for Binjiang.
    assert binjiang.locate(content="萧山区城厢街道路灯坏了").out_of_area


def test_ner_adds_unknown_places_to_the_evidence() -> None:
    extractor = LocationExtractor(ner=True)
    location = extractor.locate(content="我住在金城路银隆百货附近，旁边工地晚上施工")
    assert location.needs_review()
    assert any(e.startswith("未登记地点") and "银隆百货" in e for e in location.evidence)


def test_ner_reads_the_start_of_a_long_title_only() -> None:
    """LAC takes about a second for 20,000 characters: it reads NER_CHARS of the title (as of
    the body), where places come, however long the title is."""
    read: list[str] = []

    class Recorder:
        def run(self, texts: list[str]) -> list[list[tuple[str, str]]]:
            read.extend(texts)
            return [[] for _ in texts]

    extractor = LocationExtractor(ner=True)
    extractor._lac = Recorder()
    extractor.locate_many([{"title": "银隆百货附近" + "工地晚上施工" * 4000, "content": "吵"}])
    assert read and len(read[0]) <= 2 * NER_CHARS + 1
    assert read[0].startswith("银隆百货附近") and read[0].endswith("。吵")
