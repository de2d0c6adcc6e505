"""Finding place names in text: the district's units and the places outside it.

Every name a message may use for a unit becomes a key of one Aho-Corasick automaton: the
official name (城厢街道, 荣庄村), the aliases (萧山开发区, 荣庄村委会, compounds of a grid)
and the bare name where the registry allows it (城厢). Names outside the district come from
the registry's ``elsewhere.csv`` and from jionlp's national list of provinces, cities and
counties (``ahocorasick_rs``, about twenty times faster here than pyahocorasick on long
messages). Matching is leftmost-longest, so 新塘头村 is one village, not 新塘 plus 头村, and
a name of the district always beats a shorter foreign name inside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

import ahocorasick_rs

from wangge.nlp.registry import Registry

Form = Literal["name", "alias", "bare", "prefix", "elsewhere"]
#: How much a mention of each form counts as evidence for its unit. A ``prefix`` is a street's
#: short name that is also an everyday word (河上, 进化): it counts only right before a
#: community of that street (河上紫霞村), see :mod:`wangge.nlp.locate`.
FORM_STRENGTH: dict[str, float] = {
    "name": 1.0, "alias": 0.9, "bare": 0.6, "prefix": 0.8, "elsewhere": 1.0,
}  # fmt: skip
STREET_SUFFIXES = ("街道", "镇", "乡")
# A bare name followed by one of these is a road or street named after the place, and roads
# cross community boundaries: 市心路 is not evidence for 市心社区.
ROAD_SUFFIXES = ("路", "街", "大道", "大街", "道")
# A bare name followed by another administrative suffix is a namesake elsewhere: 新塘镇 (in
# Guangzhou) is not 新塘街道, since our own full names would have matched as the longer key.
ADMIN_SUFFIXES = ("镇", "乡", "区", "县", "市", "村", "社区")
# Cities people name by their short form when they write from elsewhere. Other cities match by
# their full name (… 市) only, since many short forms are everyday words (朝阳, 吉林 …).
BIG_CITY_ALIASES = (
    "北京", "上海", "天津", "重庆", "南京", "苏州", "无锡", "常州", "合肥", "南昌", "福州",
    "厦门", "广州", "深圳", "武汉", "长沙", "成都", "西安", "郑州", "济南", "青岛",
)  # fmt: skip
OWN_PROVINCE_PREFIX = "33"  # Zhejiang: its counties are matched by their short names too
# Names of counties elsewhere (晋城市城区, 洛阳市老城区, 攀枝花市西区 …) that are also the
# everyday words for a part of any town: read as places elsewhere, 萧山城区 or 开发区 would
# send a local message away.
GENERIC_PLACE_NAMES = frozenset({
    "城区", "市区", "郊区", "矿区", "新区", "老城区", "新城区", "东区", "西区", "南区", "北区",
    "城东区", "城西区", "城南区", "城北区", "城中区", "城关区", "市中区", "开发区", "经开区",
    "高新区",
})  # fmt: skip


@dataclass(frozen=True)
class Target:
    """What a matched name may refer to: a unit of the registry or a place elsewhere."""

    form: Form
    unit_id: str | None  # None for places elsewhere
    level: str
    label: str  # the unit's or place's name, as reported in evidence


@dataclass(frozen=True)
class Mention:
    """A place name found in a text, with everything it may refer to."""

    text: str
    start: int
    end: int
    targets: tuple[Target, ...]

    @property
    def unit_targets(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.unit_id is not None)

    @property
    def is_elsewhere(self) -> bool:
        return not self.unit_targets


@cache
def national_places() -> tuple[tuple[str, str, str], ...]:
    """(name, level, full name) of China's provinces, cities and counties, from jionlp."""
    from wangge.nlp.jionlp_loader import jionlp as load_jionlp

    jionlp = load_jionlp()
    places: list[tuple[str, str, str]] = []
    for province, cities in jionlp.china_location_loader().items():
        places += [(province, "province", province), (cities["_alias"], "province", province)]
        for city, counties in cities.items():
            if city.startswith("_"):
                continue
            own_province = str(counties["_admin_code"]).startswith(OWN_PROVINCE_PREFIX)
            places.append((city, "city", city))
            aliases = counties["_alias"] if isinstance(counties["_alias"], list) else []
            places += [
                (alias, "city", city)
                for alias in aliases
                if own_province or alias in BIG_CITY_ALIASES
            ]
            for county, info in counties.items():
                if county.startswith("_"):
                    continue
                places.append((county, "county", city + county))
                if own_province and info.get("_alias"):
                    places.append((info["_alias"], "county", city + county))
    return tuple(places)


def _unit_forms(registry: Registry) -> Iterable[tuple[str, Target]]:
    for unit in registry.units.values():
        yield unit.name, Target("name", unit.id, unit.level, unit.name)
        for alias in unit.aliases:
            yield alias, Target("alias", unit.id, unit.level, unit.name)
        if unit.bare_name:
            yield unit.bare_name, Target("bare", unit.id, unit.level, unit.name)
        elif unit.level == "street" and unit.name.endswith(STREET_SUFFIXES):
            short = unit.name.removesuffix("街道").removesuffix("镇").removesuffix("乡")
            yield short, Target("prefix", unit.id, unit.level, unit.name)


def _own_context_names(registry: Registry) -> set[str]:
    """Names of the district's own city and province: they neither place nor exclude."""
    names = (
        {"杭州", "杭州市", "浙江", "浙江省"} if registry.district.id.startswith("3301") else set()
    )
    return names | {registry.district.name, *registry.district.aliases}


class Gazetteer:
    """Finds the district's place names and foreign place names in text.

    Parameters
    ----------
    registry:
        The district's units.
    national:
        Also recognise China's provinces, cities and counties (from jionlp) as elsewhere.
    """

    def __init__(self, registry: Registry, *, national: bool = True) -> None:
        self.registry = registry
        targets: dict[str, list[Target]] = {}
        for name, target in _unit_forms(registry):
            if len(name) >= 2:
                targets.setdefault(name, []).append(target)
        own = set(targets) | _own_context_names(registry)
        elsewhere = [(p.name, p.level, p.belongs_to + p.name) for p in registry.elsewhere]
        if national:
            elsewhere.extend(national_places())
        for name, level, label in elsewhere:
            if len(name) >= 2 and name not in own and name not in GENERIC_PLACE_NAMES:
                targets.setdefault(name, []).append(Target("elsewhere", None, level, label))
        self._targets = {
            name: tuple(dict.fromkeys(found)) for name, found in targets.items()
        }  # de-duplicated, order kept
        self._names = list(self._targets)
        self._matcher = ahocorasick_rs.AhoCorasick(
            self._names, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
        )

    def __len__(self) -> int:
        return len(self._targets)

    def find(self, text: str) -> list[Mention]:
        """Place mentions in ``text``, leftmost-longest, in text order."""
        mentions = []
        for index, start, end in self._matcher.find_matches_as_indexes(text):
            name = self._names[index]
            targets = self._targets[name]
            if text.startswith(ROAD_SUFFIXES + ADMIN_SUFFIXES, end):
                targets = tuple(t for t in targets if t.form not in ("bare", "prefix"))
            if targets:
                mentions.append(Mention(name, start, end, targets))
        return mentions
