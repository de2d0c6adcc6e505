"""Build the shipped 萧山区 district files from the official 2023 administrative divisions.

Run once by a maintainer when the official codes change; the output is committed under
``data/districts/xiaoshan/`` and edited by hand afterwards if a district wishes::

    python scripts/build_xiaoshan_district.py --source ../shared/data/xiaoshan

It writes ``units.csv`` (the district, its 27 streets/towns and 585 villages/communities),
``grids.csv`` (the default grid layer: one grid per community, since the real 1,506 grid
boundaries are not public) and ``elsewhere.csv`` (streets of the rest of Zhejiang and
communities of the rest of Hangzhou, so that a message about them is reported out of area).

The ``bare_name`` of a unit (its name without 社区/村/街道/镇) is matched on its own only
when it is not an everyday word: a name that jieba's dictionary counts at least
``COMMON_WORD_FREQUENCY`` times (幸福, 团结, 光明 …) needs its suffix, as do one-character
names, names equal to a street's short name (戴村, 义桥 …), road names, surname+家 names and
the few listed in ``BARE_NAME_EXCEPTIONS``. Needs ``jieba`` and ``jionlp`` installed.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

COMMON_WORD_FREQUENCY = 100
DISTRICT_CODE = "330109"
DISTRICT_NAME = "萧山区"
# Short street names that are everyday words, and the aliases people use for the special areas.
STREET_SHORT_NAME_EXCEPTIONS = {"河上镇", "新街街道", "进化镇"}
STREET_ALIASES = {
    "萧山经济技术开发区": ["萧山开发区", "萧山经济开发区", "经济技术开发区", "开发区"],
    "萧山商业城": ["商业城"],
    "萧山钱江世纪城": ["钱江世纪城", "世纪城"],
    "围垦区": [],
    "红山农场": [],
}
# Bare names that read as something else in a message: landmarks, lakes, slogans, newspapers.
BARE_NAME_EXCEPTIONS = {
    "钱江",
    "湘湖",
    "市心",
    "站前",
    "市北",
    "和美",
    "信息港",
    "佳境",
    "花城",
    "前湾",
    "萧然",
    "奔竞",
    "美哉",
    "潮韵",
    "江潮",
    "竞潮",
    "天悦",
    "青茵",
}
STREET_SUFFIXES = ("街道", "镇")
OUT = Path(__file__).resolve().parent.parent / "data" / "districts" / "xiaoshan"


def jieba_frequencies() -> dict[str, int]:
    import jieba

    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    frequencies: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, count, *_ = line.split()
            frequencies[word] = int(count)
    return frequencies


def county_names() -> dict[str, str]:
    """County code -> 绍兴市柯桥区, from jionlp's national list."""
    import jionlp

    names = {}
    for cities in jionlp.china_location_loader().values():
        for city, counties in cities.items():
            if not city.startswith("_"):
                for county, info in counties.items():
                    if not county.startswith("_"):
                        names[str(info["_admin_code"])] = city + county
    return names


def community_display_name(official: str) -> str:
    """荣庄村委会 -> 荣庄村: residents never write 委会."""
    return official[:-2] if official.endswith("村委会") else official


def core_name(name: str) -> str:
    for suffix in ("社区", "村", *STREET_SUFFIXES):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def street_short_name(name: str) -> str:
    if name in STREET_SHORT_NAME_EXCEPTIONS or not name.endswith(STREET_SUFFIXES):
        return ""
    return core_name(name)


def community_bare_name(display: str, street_shorts: set[str], frequencies: dict[str, int]) -> str:
    core = core_name(display)
    if core == display or len(core) < 2 or core in street_shorts:
        return ""
    if core in BARE_NAME_EXCEPTIONS or core.endswith("路") or core[-1] in "新一二三":
        return ""  # road names span communities; 裘江新, 大同一 are not names anyone writes
    if len(core) == 2 and core.endswith("家"):
        return ""  # 朱家, 祝家: a surname and 家 is everyday text
    if frequencies.get(core, 0) >= COMMON_WORD_FREQUENCY:
        return ""
    return core


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/xiaoshan"))
    args = parser.parse_args()
    frequencies = jieba_frequencies()
    streets = read(args.source / "xiaoshan_streets_2023.csv")
    villages = read(args.source / "xiaoshan_villages_2023.csv")

    units = [[DISTRICT_CODE, DISTRICT_NAME, "district", "", "萧山", "", ""]]
    shorts = {street_short_name(s["name"]) for s in streets} - {""}
    for street in streets:
        aliases = "|".join(STREET_ALIASES.get(street["name"], []))
        units.append(
            [
                street["code"],
                street["name"],
                "street",
                DISTRICT_CODE,
                aliases,
                street_short_name(street["name"]),
                "",
            ]
        )
    for village in villages:
        display = community_display_name(village["name"])
        aliases = [village["name"]] if display != village["name"] else []
        if len(core_name(display)) == 1 and display.endswith("村"):
            aliases.append(f"{display}村")  # 东村 is written 东村村 too
        if display.endswith("社社区"):
            aliases.append(f"{display[:-3]}社区")  # 藕湖浜社社区, as officially spelt
        bare = community_bare_name(display, shorts, frequencies)
        units.append(
            [
                village["code"],
                display,
                "community",
                village["streetCode"],
                "|".join(aliases),
                bare,
                village["kind"],
            ]
        )
    OUT.mkdir(parents=True, exist_ok=True)
    write(
        OUT / "units.csv", ["id", "name", "level", "parent", "aliases", "bare_name", "kind"], units
    )

    grids = [
        [f"{v['code']}-G01", f"{community_display_name(v['name'])}网格", v["code"], ""]
        for v in villages
    ]
    write(OUT / "grids.csv", ["id", "name", "community", "aliases"], grids)

    own = {name for row in units for name in (row[1], row[5], *row[4].split("|")) if name}
    elsewhere: list[list[str]] = []
    counties = county_names()
    for street in read(args.source / "zhejiang_streets_2023.csv"):
        if street["areaCode"] != DISTRICT_CODE and street["name"] not in own:
            elsewhere.append([street["name"], "street", counties.get(street["areaCode"], "")])
    for village in read(args.source / "hangzhou_villages_2023.csv"):
        display = community_display_name(village["name"])
        if village["areaCode"] != DISTRICT_CODE and display not in own:
            belongs_to = f"杭州市{village['areaName']}{village['streetName']}"
            elsewhere.append([display, "community", belongs_to])
    unique = {row[0]: row for row in elsewhere}
    write(OUT / "elsewhere.csv", ["name", "level", "belongs_to"], sorted(unique.values()))


if __name__ == "__main__":
    main()
