"""Properties of mask_pii over generated personal data in generated Chinese text.

What the masker promises (:func:`wangge.nlp.pii.find_pii`): mobile numbers, 18-character
ID-card numbers (last character a digit or X), licence plates (浙A12345, new-energy 浙AD12345) and
e-mail addresses are found in half-width or full-width characters, and a number written in
groups is read without the blanks or hyphens between them. The text around the values holds no
ASCII letters or digits, so that whatever is left of a value after masking shows.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from wangge.nlp.pii import MASKS, mask_pii

PROPERTIES = settings(max_examples=150, derandomize=True, database=None, deadline=None)

#: Full-width forms of ASCII: what the masker reads as half-width.
FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}
#: What may stand between two digits of a number written in groups.
SEPARATORS = ["", "", "", "", " ", "  ", "\u3000", "\t", "-", "－", "–"]
#: jionlp's plates: the mainland provinces' abbreviations, then a letter other than I and O.
PROVINCES = "京津沪渝黑吉辽新藏青蒙晋冀豫甘陕川贵云宁苏浙皖鲁赣鄂湘粤闽桂琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGIT = st.sampled_from("0123456789")

#: Chinese characters, the provinces' abbreviations often (a plate starts with one).
CHINESE = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), st.sampled_from(PROVINCES)
)
PUNCTUATION = st.sampled_from(list("，。：；！？（）、《》“”") + [" ", "\n", "\u3000"])
#: Text between values: at least one Chinese character, so that two values never touch.
BETWEEN = st.tuples(
    st.text(PUNCTUATION, max_size=2), st.text(CHINESE, min_size=1, max_size=8),
    st.text(PUNCTUATION, max_size=2),
).map("".join)  # fmt: skip


@st.composite
def written(draw: st.DrawFn, value: str, grouped: bool = True) -> str:
    """``value`` with each ASCII character perhaps full-width and, if ``grouped``, perhaps a
    separator between two digits."""
    out = []
    for index, char in enumerate(value):
        if grouped and index and char.isdigit() and value[index - 1].isdigit():
            out.append(draw(st.sampled_from(SEPARATORS)))
        out.append(char.translate(FULL_WIDTH) if draw(st.booleans()) else char)
    return "".join(out)


@st.composite
def mobile(draw: st.DrawFn) -> str:
    rest = draw(st.text(DIGIT, min_size=9, max_size=9))
    return "1" + draw(st.sampled_from("3456789")) + rest


@st.composite
def id_card(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["330106", "330109", "110101", "440305", "510104", "650102"]))
    birth = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)))
    serial = draw(st.text(DIGIT, min_size=3, max_size=3))
    return region + birth.strftime("%Y%m%d") + serial + draw(st.sampled_from("0123456789Xx"))


@st.composite
def plate(draw: st.DrawFn) -> str:
    start = draw(st.sampled_from(PROVINCES)) + draw(st.sampled_from(PLATE_LETTERS))
    if draw(st.booleans()):  # new energy: D or F, then five digits
        tail = draw(st.sampled_from("DF")) + draw(st.text(DIGIT, min_size=5, max_size=5))
    else:
        tail = draw(st.text(st.sampled_from(PLATE_LETTERS + "0123456789"), min_size=5, max_size=5))
    return start + draw(st.sampled_from(["", "", "·", " "])) + tail


WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=8)


@st.composite
def email(draw: st.DrawFn) -> str:
    local = draw(st.lists(WORD, min_size=1, max_size=3))
    joiners = draw(st.lists(st.sampled_from("._+-%"), min_size=len(local), max_size=len(local)))
    domain = draw(st.lists(WORD, min_size=1, max_size=3))
    tld = draw(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=2, max_size=6))
    name = "".join(j + w for j, w in zip(joiners, local, strict=True))[1:]
    return f"{name}@{'.'.join(domain)}.{tld}"


VALUES = st.one_of(
    mobile().flatmap(written), id_card().flatmap(written), plate().flatmap(written),
    email().flatmap(lambda value: written(value, grouped=False)),
)  # fmt: skip


@st.composite
def text_with_values(draw: st.DrawFn) -> tuple[str, list[str]]:
    values = draw(st.lists(VALUES, min_size=1, max_size=4))
    pieces = [draw(st.just("") | BETWEEN)]
    for value in values:
        pieces += [value, draw(BETWEEN)]
    return "".join(pieces), values


def half_width(text: str) -> str:
    return text.translate({full: half for half, full in FULL_WIDTH.items()})


@PROPERTIES
@given(text_with_values())
def test_no_value_is_left_in_the_masked_text(case: tuple[str, list[str]]) -> None:
    text, values = case
    masked = mask_pii(text)
    left = [
        char for char in half_width(masked) if char.isascii() and (char.isalnum() or char == "@")
    ]
    assert left == [], f"{values} → {masked}"  # the text around holds no ASCII letter or digit
    assert sum(masked.count(mask) for mask in MASKS.values()) >= 1


@PROPERTIES
@given(text_with_values())
def test_masking_twice_is_masking_once(case: tuple[str, list[str]]) -> None:
    masked = mask_pii(case[0])
    assert mask_pii(masked) == masked


#: Numbers that are not personal data: short ones, dates, times, sizes.
HARMLESS = st.one_of(
    st.text(DIGIT, min_size=1, max_size=5),
    st.sampled_from(["2026-12-03", "08:29:06", "3 天", "12 户", "301 室", "PM2.5", "100%", "5G"]),
)


@PROPERTIES
@given(st.lists(st.tuples(BETWEEN, HARMLESS), max_size=6), BETWEEN)
def test_text_without_personal_data_is_unchanged(pieces: list[tuple[str, str]], end: str) -> None:
    text = "".join(between + number for between, number in pieces) + end
    assert mask_pii(text) == text
