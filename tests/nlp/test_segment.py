"""Tests for wangge.nlp.segment: Tokenizer and is_presegmented."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import rjieba

from wangge.nlp.fields import normalized
from wangge.nlp.segment import (
    Tokenizer,
    default_stopwords,
    is_content_token,
    is_presegmented,
    load_word_list,
)

RAW = "小区门口的路灯坏了，晚上很黑"
# What jieba makes of RAW, joined by spaces: the form of a pre-segmented training corpus.
SEGMENTED = "小区 门口 的 路灯 坏 了 ， 晚上 很 黑"
CONTENT = ["小区", "门口", "路灯", "坏", "晚上", "黑"]
# An invented compound (a residential-compound name) that jieba's dictionary does not know.
COMPOUND = "回澜南苑"
# jieba's segmentation of RAW, stop words and punctuation included.
ALL_TOKENS = ["小区", "门口", "的", "路灯", "坏", "了", ",", "晚上", "很", "黑"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


def test_segment_fixture_matches_jieba() -> None:
    # Guards the fixtures above: SEGMENTED is what the engine makes of RAW.
    assert " ".join(rjieba.cut(RAW)) == SEGMENTED


def test_tokenizer_raw_text_content_tokens(tokenizer: Tokenizer) -> None:
    assert tokenizer(RAW) == CONTENT


@pytest.mark.parametrize(
    "presegmented",
    [
        SEGMENTED,
        " ".join(CONTENT),  # stop words and punctuation already removed, as in train_tokenized
        "小区  门口\t路灯 坏 晚上 黑",  # irregular whitespace
        "小区 门口 的 路灯 坏 了 , 晚上 很 黑",  # half-width comma
    ],
)
def test_tokenizer_raw_and_presegmented_agree(tokenizer: Tokenizer, presegmented: str) -> None:
    assert tokenizer(presegmented) == tokenizer(RAW) == CONTENT


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (see nlp/segment.py): jieba's HMM finds unknown words from their "
    "context (车辆乱行很危险 -> 乱行) but splits the same token alone (乱 / 行); keeping short "
    "pieces whole fixed the round trip but did not improve dev macro-F1 (0.9075 vs 0.9112)",
)
def test_tokenizer_presegmented_hmm_word_comes_back_whole(tokenizer: Tokenizer) -> None:
    raw = "路口红绿灯坏了，车辆乱行很危险"
    tokens = tokenizer(raw)
    assert "乱行" in tokens  # an HMM word: not in jieba's dictionary
    assert tokenizer(" ".join(tokens)) == tokens


def test_tokenizer_presegmented_words_come_back_whole(tokenizer: Tokenizer) -> None:
    # Whitespace always separates words: a pre-segmented token is never glued to its neighbour.
    assert tokenizer("路灯 坏") == ["路灯", "坏"]
    assert tokenizer("物业 费用 上涨") == ["物业", "费用", "上涨"]


def test_tokenizer_drops_stopwords_and_punctuation(tokenizer: Tokenizer) -> None:
    tokens = tokenizer("我们的小区，路灯坏了！！请问怎么办？……（急）")
    assert "的" not in tokens and "我们" not in tokens and "了" not in tokens
    assert all(any(ch.isalnum() for ch in token) for token in tokens)
    assert "小区" in tokens and "路灯" in tokens


@pytest.mark.parametrize("token", ["，", "。", "!", "...", "——", "(", "《", "》", " ", "\n", ""])
def test_is_content_token_rejects_punctuation_and_blanks(token: str) -> None:
    assert not is_content_token(token, default_stopwords())


def test_tokenizer_segment_keeps_stopwords(tokenizer: Tokenizer) -> None:
    # segment() is the unfiltered view; only whitespace tokens are dropped there.
    assert tokenizer.segment(normalized(RAW)) == ALL_TOKENS


def test_tokenizer_drops_single_latin_letters(tokenizer: Tokenizer) -> None:
    tokens = tokenizer("A市B区C小区的KTV噪音太大")
    assert "A" not in tokens and "B" not in tokens and "C" not in tokens
    assert "KTV" in tokens
    assert "噪音" in tokens


@pytest.mark.parametrize("token", ["A", "b", "Ｘ"])
def test_tokenizer_single_latin_letter_alone(tokenizer: Tokenizer, token: str) -> None:
    assert tokenizer(token) == []


def test_tokenizer_keeps_numbers_and_multi_letter_words(tokenizer: Tokenizer) -> None:
    tokens = tokenizer("ETC卡扣费12元")
    assert "ETC" in tokens and "12" in tokens


def test_normalised_fullwidth_segments_like_halfwidth(tokenizer: Tokenizer) -> None:
    assert tokenizer(normalized("ＫＴＶ噪音")) == tokenizer("KTV噪音") == ["KTV", "噪音"]


def test_tokenizer_user_words_keep_compound_whole() -> None:
    text = f"{COMPOUND}小区物业不作为"
    plain = Tokenizer()(text)
    assert COMPOUND not in plain  # jieba splits the invented name by default
    assert "".join(t for t in plain if t in COMPOUND) == COMPOUND
    with_words = Tokenizer(user_words=[COMPOUND])(text)
    assert COMPOUND in with_words
    assert not any(t != COMPOUND and t in COMPOUND for t in with_words)


def test_tokenizer_user_words_do_not_leak_to_other_instances() -> None:
    Tokenizer(user_words=[COMPOUND])(COMPOUND)
    assert COMPOUND not in Tokenizer()(f"{COMPOUND}小区")


def test_tokenizer_pickle_round_trip(tokenizer: Tokenizer) -> None:
    original = Tokenizer(user_words=[COMPOUND], stopwords=["小区", "的"])
    texts = [RAW, f"{COMPOUND}小区门口路灯坏了", SEGMENTED]
    before = [original(text) for text in texts]
    assert original._engine is not None  # built by the calls above

    restored = pickle.loads(pickle.dumps(original))
    assert restored._engine is None  # the engine is not carried...
    assert restored._keep == {}  # ...nor the filter cache
    assert restored.user_words == original.user_words
    assert restored.stopwords == original.stopwords
    assert [restored(text) for text in texts] == before  # ...and is rebuilt with the user words
    assert COMPOUND in before[1]


def test_tokenizer_pickle_does_not_contain_engine() -> None:
    tok = Tokenizer()
    tok(RAW)
    state = tok.__getstate__()
    assert state["_engine"] is None
    assert tok._engine is not None  # pickling does not disturb the live instance
    assert b"rjieba" not in pickle.dumps(tok)


def test_tokenizer_custom_stopwords() -> None:
    custom = Tokenizer(stopwords=["路灯", "晚上"])
    tokens = custom(RAW)
    assert "路灯" not in tokens and "晚上" not in tokens
    # Only the custom list applies: the shipped stop words are kept.
    assert "的" in tokens and "了" in tokens


def test_tokenizer_empty_stopwords_keep_function_words() -> None:
    assert Tokenizer(stopwords=[])(RAW) == [token for token in ALL_TOKENS if token != ","]


def test_tokenizer_stopwords_from_word_list(tmp_path: Path) -> None:
    path = tmp_path / "stop.txt"
    path.write_text("# local stop words\n路灯\n\n  黑  \n", encoding="utf-8")
    words = load_word_list(path)
    assert words == ["路灯", "黑"]
    assert Tokenizer(stopwords=words)(RAW) == ["小区", "门口", "的", "坏", "了", "晚上", "很"]


def test_default_stopwords_shipped() -> None:
    stopwords = default_stopwords()
    assert {"的", "了", "我们"} <= stopwords
    assert not stopwords & {"路灯", "小区", "噪音"}
    assert Tokenizer().stopwords == stopwords


def test_tokenizer_reads_normalised_text() -> None:
    assert Tokenizer()(normalized("小區門口的路燈壞了")) == ["小区", "门口", "路灯", "坏"]


@pytest.mark.parametrize("text", ["", "   ", "，。！", "的了吗"])
def test_tokenizer_no_content(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer(text) == []


def test_tokenizer_cache_gives_same_answer_twice(tokenizer: Tokenizer) -> None:
    assert tokenizer(RAW) == tokenizer(RAW)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        pytest.param([SEGMENTED, "垃圾 没人 清理 楼道 很 臭"], True, id="spaced"),
        pytest.param([" ".join(CONTENT)], True, id="spaced-content-only"),
        pytest.param([RAW, "垃圾没人清理，楼道很臭"], False, id="raw"),
        pytest.param(["KTV noise at night"], False, id="no-cjk"),
        pytest.param([], False, id="empty-corpus"),
        pytest.param(["", None], False, id="blank-and-none"),
    ],
)
def test_is_presegmented(texts: list[str], expected: bool) -> None:
    assert is_presegmented(texts) is expected


def test_is_presegmented_accepts_generator() -> None:
    assert is_presegmented(text for text in [SEGMENTED]) is True
