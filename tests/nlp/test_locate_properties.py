"""Location resolution on adversarial text: time linear in the length, results deterministic.

Messages of up to 20,000 characters are a pattern of the registry's names (streets, their bare
names such as 城厢, communities, 萧山, places elsewhere, 住在) and separators repeated to length:
the chains of adjacent names that once took time quadratic in their number (issue 16: 13 s for
"城厢" × 10,000). Each is resolved as the pipeline does (``locate_many``, text normalised), and
must finish within a bound linear in its length, derived from the time per character measured
when the module starts on names two characters apart ("城厢这边" × 5,000, no chain: linear in
any version): a loaded machine slows both alike.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wangge.nlp.locate import Location, LocationExtractor

MAX_CHARS = 20_000
#: Allowed time per character, as a multiple of the measured one (chains of names cost up to
#: 4 times as much, 3.3 µs a character on an idle machine), and a fixed allowance.
SLACK, FIXED_S = 25, 0.05
#: The confidences of the module's documented scale.
SCALE = {0.99, 0.95, 0.9, 0.75, 0.6, 0.5, 0.4, 0.2, 0.0}

HAND_PICKED = [
    *("城厢", "萧山", "萧山区", "城厢街道", "街道", "社区", "村", "东风村", "河上", "紫霞村"),
    *("瓜沥镇", "新塘街道", "滨江区", "长河街道", "富阳区", "灵桥镇", "光明村", "绍兴", "南阳"),
    *("住在", "家住", "住", "我家住在", "公司在"),
]
SEPARATORS = ["", "", "", " ", "，", "的", "、", "\n", "　", "x", "路", "号"]


@pytest.fixture(scope="module")
def extractor() -> LocationExtractor:
    return LocationExtractor(ner=False)  # LAC reads at most a title and 160 characters


@pytest.fixture(scope="module")
def names(extractor: LocationExtractor) -> list[str]:
    registry = extractor.registry
    forms = {
        form
        for unit in registry.units.values()
        if unit.level in ("district", "street", "community")
        for form in (unit.name, unit.bare_name, *unit.aliases)
        if form
    }
    forms |= {place.name for place in registry.elsewhere[::20]}
    return sorted(forms) + HAND_PICKED


@pytest.fixture(scope="module")
def seconds_per_char(extractor: LocationExtractor) -> float:
    text = "城厢这边" * (MAX_CHARS // 4)
    best = min(timed(extractor, {"content": text})[1] for _ in range(3))
    return best / len(text)


def timed(extractor: LocationExtractor, message: dict[str, Any]) -> tuple[Location, float]:
    started = time.perf_counter()
    location = extractor.locate_many([message])[0]
    return location, time.perf_counter() - started


def message_of(text: str, fields: str) -> dict[str, Any]:
    if fields == "content":
        return {"content": text}
    if fields == "address":
        return {"address": text}
    return {"title": text[:200], "content": text, "address": text[:500]}


PROPERTIES = settings(max_examples=80, derandomize=True, database=None, deadline=None)


@PROPERTIES
@given(data=st.data())
def test_chains_of_names_resolve_in_linear_time_and_always_alike(
    data: st.DataObject, extractor: LocationExtractor, names: list[str], seconds_per_char: float
) -> None:
    pieces = st.tuples(st.sampled_from(names), st.sampled_from(SEPARATORS)).map("".join)
    pattern = "".join(data.draw(st.lists(pieces, min_size=1, max_size=8), label="pattern"))
    length = data.draw(st.just(MAX_CHARS) | st.integers(1_000, MAX_CHARS), label="length")
    text = (pattern * (length // len(pattern) + 1))[:length]
    message = message_of(text, data.draw(st.sampled_from(["content", "address", "all"])))

    (first, took), (second, again) = timed(extractor, message), timed(extractor, message)
    bound = FIXED_S + SLACK * seconds_per_char * len(text)
    assert min(took, again) < bound, f"{min(took, again):.3f} s for {len(text)} characters"
    assert first == second
    assert extractor.locate_many([{"content": "路灯坏了"}, message])[1] == first  # in a batch
    assert round(first.confidence, 2) in SCALE
    assert not (first.out_of_area and (first.street or first.community))


def test_the_bound_is_far_below_the_quadratic_time(seconds_per_char: float) -> None:
    """The bound holds no quadratic resolution: that took 13 s for 20,000 characters."""
    assert FIXED_S + SLACK * seconds_per_char * MAX_CHARS < 2.0
