"""Properties of normalize_text over generated text: what its docstring promises, for any str.

Texts mix every code point (lone surrogates included: the API refuses them, but the library and
the CLI take what files hold) with the pieces each step reacts to: escapes, entities, tags,
invisible and blank characters, combining marks, full-width and traditional characters.
"""

from __future__ import annotations

import html
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from wangge.nlp.normalize import normalize_text

PROPERTIES = settings(max_examples=200, derandomize=True, database=None, deadline=None)

#: Unicode's bound on how much NFKC lengthens a text (UAX #15, "Stability"; U+FDFA).
NFKC_MAX_EXPANSION = 18
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
#: Characters OpenCC's t2s both writes and converts (乾縣 → 乾县 → 干县): see the docstring.
T2S_UNSTABLE = frozenset("乾於徵麽苧吒濛昇薹")

PIECES = [
    *("_x000D_", "_x0041_", "_xFDFA_", "_xD800_", "_x005F_x0041_"),
    *("&amp;", "&lt;", "&gt;", "&amp;lt;", "&#x5F;", "&#xfdfa;", "&shy;", "&nbsp;", "&#8203;"),
    *("<br>", "</p>", "<b>", '<div class="m">', "＜ｂ＞", "＆ａｍｐ；", "＿ｘ００４１＿", "x < y"),
    *(*INVISIBLE, "\u3000", "\r\n", "\r", "\n", " ", "\t", "\x0b", "\x1c", "\x85", "\u2028"),
    *("\u0301", "\u0316", "\u1100", "\u1161", "ﷺ", "㍿", "ＡＢＣ１２３！", "e", "\ud800", "\udfff"),
    *("路灯不亮", "臺灣", "這裡的電話", "乾縣", "於是", "頭髮"),
]
#: Bases, combining marks (Hangul vowels combine too), invisible and blank characters: dense
#: runs of these meet the order of NFKC and the other steps.
COMBINING = "ae\u1100路\u0301\u0308\u0316\u1161" + "".join(sorted(INVISIBLE)) + " \n\u3000\t"
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # lone surrogates too
TEXTS = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.text(st.sampled_from(COMBINING), max_size=8),
        st.text(ANY_CHARACTER, max_size=4),
    ),
    max_size=30,
).map("".join)


def still_encoded(text: str) -> bool:
    """Whether ``text`` holds something normalize_text decodes: an Excel escape, a tag (or
    what could start one), an entity."""
    return re.search(r"_x[0-9A-Fa-f]{4}_|</?[A-Za-z]", text) is not None or (
        html.unescape(text) != text
    )


@PROPERTIES
@given(TEXTS)
def test_any_text_comes_out_in_the_canonical_form(text: str) -> None:
    normal = normalize_text(text)
    assert unicodedata.is_normalized("NFKC", normal)
    assert not any(0xFF01 <= ord(c) <= 0xFF5E or c == "\u3000" for c in normal)  # full-width
    assert INVISIBLE.isdisjoint(normal)
    assert normal == normal.strip()
    assert all(c in " \n" for c in normal if c.isspace())
    assert not any(blanks in normal for blanks in ("  ", "\n\n", " \n", "\n "))
    assert len(normal) <= NFKC_MAX_EXPANSION * len(text)


@PROPERTIES
@given(TEXTS)
def test_the_canonical_form_normalises_to_itself(text: str) -> None:
    normal = normalize_text(text)
    if not still_encoded(normal):
        assert normalize_text(normal) == normal


@PROPERTIES
@given(TEXTS)
def test_simplified_text_normalises_to_itself(text: str) -> None:
    simplified = normalize_text(text, simplify=True)
    if not still_encoded(simplified) and T2S_UNSTABLE.isdisjoint(simplified):
        assert normalize_text(simplified, simplify=True) == simplified


def test_the_exceptions_to_idempotence_are_real() -> None:
    """What the properties leave out: each kind of exception happens (else drop it there)."""
    assert normalize_text("&amp;lt;b&amp;gt;") == "&lt;b&gt;"  # what was typed: "&lt;b&gt;"
    assert normalize_text("&lt;b&gt;") == "<b>"
    assert normalize_text(normalize_text("＜ｂ＞x")) == "x"  # NFKC makes the tag
    once = normalize_text("乾縣", simplify=True)
    assert once == "乾县" and normalize_text(once, simplify=True) == "干县"
    assert normalize_text("\ufdfa") == unicodedata.normalize("NFKC", "\ufdfa")
    assert len(normalize_text("\ufdfa")) == NFKC_MAX_EXPANSION
