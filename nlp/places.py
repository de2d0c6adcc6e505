"""How precisely a place or organisation name identifies a case: broad or specific.

Two messages naming the same town (星沙, 暮云街道), district (A3区) or city are not thereby
about the same thing: thousands of complaints share them. A compound, road, building, school,
shop or company (金城花园, 云塘路, 师大附中) is evidence. :func:`place_level` tells them apart
from the name alone, so that names stored without LAC's tag (the detector keeps names only)
get the same answer:

- **broad**: administrative divisions down to towns and street offices, by their suffix (省,
  市, 区, 县, 镇, 乡, 街道 …, but not 小区, 社区, 超市, 园区 …), the anonymised forms of the
  Teddy Cup data (A市, A3区, 西地省),
  China's provinces, cities, counties and towns/street offices with their bare names (星沙 for
  星沙街道; from jionlp's ``china_location.txt``, read offline), the district registry's
  districts and streets (:func:`~wangge.nlp.registry.default_district_dir`), government
  bodies (区政府, 住建局), names that are only a kind (物业公司, 小区), and bare short names
  without a specific suffix (3 characters or fewer: 梅溪湖, 湘江, 万科);
- **specific**: everything else, in particular names ending with a specific kind (小区, 花园,
  苑, 路, 大厦, 学校, 医院, 公司, 店, 村, 社区 …) or of 4 characters or more. A community
  (社区) or village is below the registry's street level: as local as a compound.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from enum import Enum
from functools import cache
from pathlib import Path

from wangge.nlp.registry import default_district_dir


class Level(Enum):
    BROAD = "broad"
    SPECIFIC = "specific"


# Kinds of specific places: checked before the administrative suffixes, which some end with
# (小区 ends with 区, 超市 with 市, 园区 with 区).
_SPECIFIC_SUFFIX = re.compile(
    r"(?:小区|社区|居委会|园区|厂区|校区|景区|片区|住宅区|安置区|生活区|宿舍区|商业区|超市|菜市|夜市|门市"
    r"|花园|家园|公寓|大厦|广场|大楼|楼|栋|幢|单元|号|苑|府|园|城|庭|居|湾|郡|墅|里|坊|阁|轩"
    r"|路|街|巷|大道|大街|桥|隧道|村|组|学校|小学|中学|一中|二中|附中|幼儿园|大学|学院"
    r"|医院|卫生院|诊所|卫生服务站|服务中心|中心|公司|集团|店|超市|市场|酒店|宾馆|银行|物业"
    r"|工地|项目|公园|厂|站|馆|所|场|港|码头|站点|车库|停车场|工程|基地|塔|寺|庙)$"
)
_ADMIN_SUFFIX = re.compile(
    r"(?:省|自治区|市|自治州|州|地区|盟|区|新区|开发区|高新区|县|自治县|旗|镇|乡|街道|街道办"
    r"|街道办事处|办事处|管委会)$"
)
# Government bodies: named by complaints about anything (区政府, 住建局, 城管执法局).
_GOVERNMENT = re.compile(r"(?:政府|人民政府|局|厅|委员会|委|办公室|人大|政协|党委|纪委)$")
_ANONYMISED = re.compile(r"^(?:[A-Z][0-9]*[省市区县镇乡]|西地省)+$")
_TOWN_SUFFIX = re.compile(r"(?:街道办事处|街道办|街道|地区办事处|办事处|镇|乡)$")
# What a name is when it is only a kind (物业公司, 有限公司, 小区 …): nothing is left.
_KINDS = re.compile(
    r"有限责任公司|有限公司|股份|集团|公司|物业|小区|社区|街道|花园|家园|学校|小学|中学"
    r"|幼儿园|医院|派出所|政府|管理处|业委会|开发商|楼盘|我们|我|本|该|此|这个|这里|附近"
    r"|周边|公办|民办|公立|私立|普惠性|普惠|配套|老旧|新建|安置|定向|商品房"
)
# Lines that cross a city (地铁3号线, 公交线路): complaints along them are about anything.
_LINES = re.compile(r"(?:号线|线路|轨道交通|地铁|高铁|高速|公交)$")
BARE_CHARS = 3  # a name this short without a specific suffix is broad


def place_level(name: str) -> Level:
    """Whether ``name`` (a place or organisation LAC tagged) is broad or specific."""
    return _place_level(name.strip())


@cache
def _place_level(name: str) -> Level:
    if not name or _ANONYMISED.match(name) or name in administrative_names():
        return Level.BROAD
    core = _KINDS.sub("", name)
    if len(core) < 2 or _GOVERNMENT.search(name) or _LINES.search(name):
        return Level.BROAD
    if _SPECIFIC_SUFFIX.search(name):
        return Level.SPECIFIC
    if _ADMIN_SUFFIX.search(name) or len(name) <= BARE_CHARS:
        return Level.BROAD
    return Level.SPECIFIC


def specific(names: Iterable[str]) -> frozenset[str]:
    """The specific names among ``names``."""
    return frozenset(name for name in names if place_level(name) is Level.SPECIFIC)


def broad(names: Iterable[str]) -> frozenset[str]:
    """The broad names among ``names``."""
    return frozenset(name for name in names if place_level(name) is Level.BROAD)


def shared_broad(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two sets of names have a broad place in common, a town written with or without
    its suffix (星沙, 星沙街道) being one."""
    return bool(_area_keys(a) & _area_keys(b))


def _area_keys(names: Iterable[str]) -> set[str]:
    keys = set()
    for name in broad(names):
        bare = _TOWN_SUFFIX.sub("", name)
        keys.add(bare if len(bare) >= 2 else name)
    return keys


@cache
def administrative_names() -> frozenset[str]:
    """Names of administrative divisions down to towns and street offices, with their bare
    forms: China's (jionlp's dictionary, when installed) and the district registry's."""
    names: set[str] = set()
    for name in (*_national_divisions(), *_registry_divisions()):
        names.add(name)
        bare = _TOWN_SUFFIX.sub("", name)
        # Not the bare form of a street office named after its road (开元路街道 → 开元路).
        if len(bare) >= 2 and not _SPECIFIC_SUFFIX.search(bare):
            names.add(bare)
    return frozenset(names)


def _national_divisions() -> Iterable[str]:
    """Provinces, cities, counties (with their aliases) and towns of jionlp's
    ``china_location.txt`` (or the zip it ships it in): one division a line, its depth in
    leading tabs (villages, at depth 4, are left out: a village is as specific as a
    compound)."""
    spec = importlib.util.find_spec("jionlp")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = Path(next(iter(spec.submodule_search_locations))) / "dictionary"
    text, packed = folder / "china_location.txt", folder / "china_location.zip"
    if text.is_file():
        with text.open(encoding="utf-8") as lines:
            yield from _divisions(lines)
    elif packed.is_file():
        with zipfile.ZipFile(packed) as archive, archive.open("china_location.txt") as raw:
            yield from _divisions(io.TextIOWrapper(raw, encoding="utf-8"))


def _divisions(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        depth = len(line) - len(line.lstrip("\t"))
        if depth > 3 or not line.strip():
            continue
        fields = line.strip().split("\t")
        yield fields[0]
        if depth < 3 and len(fields) == 3:
            yield fields[2]


def _registry_divisions() -> Iterable[str]:
    """The districts and streets of the shipped district registry, and the divisions outside
    it that it knows (``elsewhere.csv``) at street level or above."""
    directory = default_district_dir()
    with (directory / "units.csv").open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["level"] in ("district", "street"):
                yield row["name"]
                yield from filter(None, [row.get("bare_name") or ""])
    elsewhere = directory / "elsewhere.csv"
    if elsewhere.is_file():
        with elsewhere.open(encoding="utf-8") as file:
            for row in csv.DictReader(file):
                if row["level"] != "community":
                    yield row["name"]


# Kinds a place name ends with in running text (金城花园, 云塘路, 雅礼中学, 楚通驾校): LAC leaves
# many such names untagged or cut short (魅力之城小区, 英祥春天小区 → 英祥).
_NAMED_KIND = re.compile(
    r"小区|花园|家园|公寓|大厦|广场|幼儿园|小学|中学|学校|学院|驾校|医院|卫生院|公司|超市"
    r"|市场|酒店|美食城|商城|楼盘|村|路|大道|巷"
)
# Where a name cannot reach back past: words that end a clause or a phrase before a name
# (我们是…, 位于…, 离…), administrative units (A3区, 星沙街道), which are not the place, and
# another place's kind (楚通驾校套路: 套路 is no road).
_NAME_START = re.compile(
    r"[的是在于了到从与和对向个买住位处我们该这那及或把被给让请将旁近边内外为由有等称叫"
    r"离距日现连名占求诉临壁省市县镇乡]|(?<!小)区|街道|" + _NAMED_KIND.pattern
)
NAME_CHARS = 8  # at most this many characters before the kind


def kind_named_places(text: str) -> frozenset[str]:
    """Specific places named by their kind in ``text`` (魅力之城小区, 银杉路, 楚通驾校): the
    kind word with up to :data:`NAME_CHARS` Chinese characters before it, cut after the last
    word that cannot be part of a name. Rough by design: two names of one place are matched
    loosely (:func:`wangge.models.dedup.entity_relation`)."""
    names = set()
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        for kind in _NAMED_KIND.finditer(run):
            before = run[max(0, kind.start() - NAME_CHARS) : kind.start()]
            starts = [match.end() for match in _NAME_START.finditer(before)]
            name = before[starts[-1] :] if starts else before
            if len(name) >= 2:
                names.add(name + kind.group())
    return frozenset(names)
