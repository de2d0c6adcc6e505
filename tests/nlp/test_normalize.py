"""Tests for wangge.nlp.normalize.normalize_text."""

from __future__ import annotations

import time

import pytest

from wangge.nlp.normalize import normalize_text, to_simplified


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("ＡＢＣ１２３，", "ABC123,", id="fullwidth-letters-digits-comma"),
        pytest.param("（紧急）！？：；", "(紧急)!?:;", id="fullwidth-punctuation"),
        pytest.param("ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ", "www.example.com", id="fullwidth-url"),
        pytest.param("路灯\u3000不亮", "路灯 不亮", id="ideographic-space"),
        pytest.param("\u3000\u3000小区停水", "小区停水", id="leading-ideographic-spaces-stripped"),
    ],
)
def test_normalize_fullwidth_to_halfwidth(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("第一行_x000D_\n第二行", "第一行\n第二行", id="x000D-before-newline"),
        pytest.param("第一行_x000D_第二行", "第一行\n第二行", id="x000D-alone"),
        pytest.param("路灯_x0020_坏了", "路灯 坏了", id="x0020-space"),
        pytest.param("_x000a_", "", id="lowercase-hex-newline-only"),
    ],
)
def test_normalize_excel_escapes_decoded(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("水电&amp;燃气", "水电&燃气", id="amp"),
        pytest.param("路灯&nbsp;不亮", "路灯 不亮", id="nbsp"),
        pytest.param("PM2.5 &lt; 35", "PM2.5 < 35", id="lt"),
        pytest.param("&quot;黑车&quot;", '"黑车"', id="quot"),
        pytest.param("&#20013;&#x6587;", "中文", id="numeric-entities"),
    ],
)
def test_normalize_html_entities_decoded(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("第一段<br>第二段", "第一段\n第二段", id="br"),
        pytest.param("第一段<br/>第二段", "第一段\n第二段", id="br-self-closing"),
        pytest.param("第一段 <BR /> 第二段", "第一段\n第二段", id="br-upper-case"),
        pytest.param("<p>路灯坏了</p><p>请尽快修</p>", "路灯坏了\n请尽快修", id="p"),
        pytest.param("<li>停水</li><li>停电</li>", "停水\n停电", id="li"),
        pytest.param('<div class="msg">噪音扰民</div>', "噪音扰民", id="div-with-attribute"),
        pytest.param("请<b>尽快</b>处理", "请 尽快 处理", id="inline-b-becomes-space"),
        pytest.param('<span style="color:red">紧急</span>', "紧急", id="span-with-style"),
        pytest.param("<p>&nbsp;</p><p>漏水</p>", "漏水", id="blank-paragraph"),
    ],
)
def test_normalize_html_tags_removed(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_html_leaves_no_markup() -> None:
    text = normalize_text("<p>小区<b>路灯</b>坏了<br>晚上&amp;凌晨都很黑</p>")
    assert "<" not in text and ">" not in text and "&amp;" not in text
    assert text.split("\n") == ["小区 路灯 坏了", "晚上&凌晨都很黑"]


def test_normalize_keeps_comparison_signs_that_are_not_tags() -> None:
    assert normalize_text("温度<30度，湿度>80%") == "温度<30度,湿度>80%"
    assert normalize_text("<<城市规划法>>") == "<<城市规划法>>"


def test_normalize_escaped_angle_brackets_are_text_not_tags() -> None:
    assert normalize_text("我买的&lt;iPhone 15&gt;屏幕坏了") == "我买的<iPhone 15>屏幕坏了"


@pytest.mark.parametrize(
    "char",
    ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"],
    ids=["ZWSP", "ZWNJ", "ZWJ", "WORD-JOINER", "BOM", "SOFT-HYPHEN"],
)
def test_normalize_zero_width_chars_dropped(char: str) -> None:
    assert normalize_text(f"路{char}灯坏了{char}") == "路灯坏了"


def test_normalize_drops_invisible_chars_before_composing() -> None:
    # Dropped after NFKC, the soft hyphen left "a\u0301" for a second pass to make "á".
    assert normalize_text("a\u00ad\u0301") == "\u00e1"
    assert normalize_text("\u1100\u200b\u1161") == "\uac00"  # Hangul jamo: 가


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("路灯   坏了", "路灯 坏了", id="spaces"),
        pytest.param("路灯\t\t坏了", "路灯 坏了", id="tabs"),
        pytest.param("  路灯坏了  ", "路灯坏了", id="strip-ends"),
        pytest.param("第一行\n\n\n第二行", "第一行\n第二行", id="blank-lines"),
        pytest.param("第一行 \n  \n 第二行", "第一行\n第二行", id="spaces-around-newlines"),
        pytest.param("第一行\r\n第二行\r第三行", "第一行\n第二行\n第三行", id="crlf-cr"),
        pytest.param("a\u00a0\u00a0b", "a b", id="nbsp-chars"),
        pytest.param(" \n\t\u3000 ", "", id="only-whitespace"),
    ],
)
def test_normalize_whitespace_collapse(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("simplify", [False, True])
def test_normalize_empty_string(simplify: bool) -> None:
    assert normalize_text("", simplify=simplify) == ""


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("這個問題", "这个问题"),
        ("小區門口的路燈壞了", "小区门口的路灯坏了"),
        ("垃圾沒人清運", "垃圾没人清运"),
    ],
)
def test_normalize_simplify_converts_traditional(traditional: str, simplified: str) -> None:
    assert normalize_text(traditional, simplify=True) == simplified
    assert to_simplified(traditional) == simplified


@pytest.mark.parametrize("text", ["這個問題", "小區門口的路燈壞了"])
def test_normalize_default_keeps_traditional(text: str) -> None:
    assert normalize_text(text) == text


def test_normalize_simplify_leaves_simplified_text_alone() -> None:
    assert normalize_text("小区门口的路灯坏了", simplify=True) == "小区门口的路灯坏了"


def test_normalize_combined_mess() -> None:
    raw = "<p>\u3000ＸＸ小區門口&nbsp;路燈壞了_x000D_</p><p>已經１０天！\u200b</p>"
    assert normalize_text(raw, simplify=True) == "XX小区门口 路灯坏了\n已经10天!"


@pytest.mark.parametrize(
    "text",
    ["ＡＢＣ１２３，", "<p>路灯</p>坏了", "第一行_x000D_第二行", "a&amp;b", "  x \n\n y "],
)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_to_simplified_is_opencc_t2s() -> None:
    """The linear-time conversion gives what OpenCC's t2s gives, on texts made of its phrases
    (those that map to themselves too), pieces of them, traditional characters and separators:
    where phrases overlap, nest or protect a character the character table would convert."""
    import random

    import opencc

    from wangge.nlp.normalize import _opencc_dictionary

    reference = opencc.OpenCC("t2s")
    phrases = list(_opencc_dictionary("TSPhrases.txt"))
    pieces = [
        *phrases,
        *(phrase[:k] for phrase in phrases for k in range(1, len(phrase))),
        *(phrase[k:] for phrase in phrases for k in range(1, len(phrase))),
        *list(_opencc_dictionary("TSCharacters.txt"))[:300],
        *"的了是在这个小区路灯 ,。、-!?\n",
    ]
    rng = random.Random(16)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert to_simplified(text) == reference.convert(text), text


def test_to_simplified_of_a_long_text_is_fast() -> None:
    text = ("這個國際機場發生問題" * 2000) + "乾隆" * 1000  # 22,000 characters to convert
    started = time.perf_counter()
    converted = to_simplified(text)
    # Measured: 3 ms here, 85 ms with OpenCC's pure Python conversion; the bound is loose.
    assert time.perf_counter() - started < 0.05
    assert converted.startswith("这个国际机场发生问题") and converted.endswith("乾隆")
