"""Tests for wangge.models.features: the integer-id TF-IDF vectorizers against scikit-learn."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer

from wangge.models.features import (
    CharNgramVectorizer,
    WordNgramVectorizer,
    decode_char_ngram,
    join_tokens,
)

# Token lists as the Tokenizer returns them: repeated words (tf > 1, for sublinear tf), shared
# words and bigrams (df >= 2), Latin and digit tokens, and an empty message.
DOCS: list[list[str]] = [
    ["小区", "路灯", "坏", "路灯", "晚上", "黑"],
    ["路灯", "不亮", "晚上", "黑", "小区"],
    ["小区", "垃圾", "没人", "清理", "垃圾", "垃圾"],
    ["垃圾", "清运", "不及时", "小区", "路灯"],
    ["晚上", "施工", "噪音", "扰民"],
    ["噪音", "扰民", "施工", "晚上", "施工", "KTV"],
    ["KTV", "噪音", "12", "点", "扰民"],
    [],
    ["路灯", "坏", "12", "天"],
]


def word_analyzer(tokens: list[str]) -> list[str]:
    return tokens + [" ".join(pair) for pair in zip(tokens, tokens[1:], strict=False)]


def char_analyzer(low: int, high: int):  # type: ignore[no-untyped-def]
    """scikit-learn's 'char' n-grams of the space-joined tokens, without those spanning a space."""

    def analyze(tokens: list[str]) -> list[str]:
        text = " ".join(tokens)
        return [
            text[i : i + n]
            for n in range(low, high + 1)
            for i in range(len(text) - n + 1)
            if " " not in text[i : i + n]
        ]

    return analyze


def word_feature_names(vectorizer: WordNgramVectorizer) -> list[str]:
    """Feature names of the word vectorizer, rebuilt from ``words_`` and the id scheme."""
    words = {index: word for word, index in vectorizer.words_.items()}
    base = len(words) + 1
    names = []
    for ngram_id in vectorizer.vocabulary_:
        ngram_id, parts = int(ngram_id), []
        while ngram_id:
            parts.append(words[ngram_id % base])
            ngram_id //= base
        names.append(" ".join(reversed(parts)))
    return names


def sorted_columns(matrix: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    order = np.argsort(np.asarray(names, dtype=object))
    return matrix[:, order], [names[i] for i in order]


@pytest.mark.parametrize("min_df", [1, 2, 3])
def test_word_vectorizer_matches_sklearn(min_df: int) -> None:
    ours = WordNgramVectorizer(max_n=2, min_df=min_df, sublinear_tf=True).fit(DOCS)
    reference = TfidfVectorizer(analyzer=word_analyzer, min_df=min_df, sublinear_tf=True)
    expected = reference.fit_transform(DOCS).toarray()

    got, got_names = sorted_columns(ours.transform(DOCS).toarray(), word_feature_names(ours))
    want, want_names = sorted_columns(expected, list(reference.get_feature_names_out()))
    assert got_names == want_names
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12)
    # fit_transform and fit().transform agree
    np.testing.assert_allclose(
        WordNgramVectorizer(min_df=min_df).fit_transform(DOCS).toarray(),
        ours.transform(DOCS).toarray(),
    )


def test_word_vectorizer_matches_sklearn_on_new_docs() -> None:
    ours = WordNgramVectorizer(min_df=1).fit(DOCS)
    reference = TfidfVectorizer(analyzer=word_analyzer, min_df=1, sublinear_tf=True).fit(DOCS)
    new = [["路灯", "坏", "晚上"], ["噪音", "扰民", "扰民", "垃圾"]]
    got, _ = sorted_columns(ours.transform(new).toarray(), word_feature_names(ours))
    want, _ = sorted_columns(
        reference.transform(new).toarray(), list(reference.get_feature_names_out())
    )
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_word_vectorizer_unigrams_only_and_raw_tf() -> None:
    ours = WordNgramVectorizer(max_n=1, min_df=1, sublinear_tf=False).fit(DOCS)
    reference = TfidfVectorizer(analyzer=lambda tokens: tokens, min_df=1, sublinear_tf=False)
    expected = reference.fit_transform(DOCS).toarray()
    got, got_names = sorted_columns(ours.transform(DOCS).toarray(), word_feature_names(ours))
    want, want_names = sorted_columns(expected, list(reference.get_feature_names_out()))
    assert got_names == want_names
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    ("ngram_range", "min_df"), [((1, 3), 2), ((1, 2), 1), ((2, 3), 2), ((1, 1), 3), ((3, 3), 1)]
)
def test_char_vectorizer_matches_sklearn(ngram_range: tuple[int, int], min_df: int) -> None:
    ours = CharNgramVectorizer(ngram_range=ngram_range, min_df=min_df, sublinear_tf=True)
    matrix = ours.fit_transform(DOCS).toarray()
    names = [name.removeprefix("char:") for name in ours.get_feature_names_out()]
    assert all(name.startswith("char:") for name in ours.get_feature_names_out())

    reference = TfidfVectorizer(
        analyzer=char_analyzer(*ngram_range), min_df=min_df, sublinear_tf=True
    )
    expected = reference.fit_transform(DOCS).toarray()

    got, got_names = sorted_columns(matrix, names)
    want, want_names = sorted_columns(expected, list(reference.get_feature_names_out()))
    assert got_names == want_names
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_char_vectorizer_ngrams_never_span_words() -> None:
    vectorizer = CharNgramVectorizer(ngram_range=(1, 3), min_df=1).fit([["路灯", "坏"]])
    names = {name.removeprefix("char:") for name in vectorizer.get_feature_names_out()}
    assert names == {"路", "灯", "坏", "路灯"}


def test_word_vectorizer_bigrams_only_between_neighbours() -> None:
    vectorizer = WordNgramVectorizer(max_n=2, min_df=1).fit([["路灯", "坏", "晚上"]])
    assert sorted(word_feature_names(vectorizer)) == sorted(
        ["路灯", "坏", "晚上", "路灯 坏", "坏 晚上"]
    )


def test_word_vectorizer_unknown_words_ignored() -> None:
    vectorizer = WordNgramVectorizer(min_df=1).fit(DOCS)
    assert vectorizer.transform([["从未", "见过", "的词"]]).nnz == 0
    # An unknown word between two known ones breaks their bigram; known unigrams remain.
    with_unknown = vectorizer.transform([["小区", "未知词", "路灯"]])
    without = vectorizer.transform([["小区", "路灯"]])
    names = word_feature_names(vectorizer)
    assert {names[i] for i in with_unknown.indices} == {"小区", "路灯"}
    assert {names[i] for i in without.indices} == {"小区", "路灯", "小区 路灯"}


def test_char_vectorizer_unknown_chars_ignored() -> None:
    vectorizer = CharNgramVectorizer(ngram_range=(1, 3), min_df=1).fit(DOCS)
    assert vectorizer.transform([["鑫鑫", "龘"]]).nnz == 0
    row = vectorizer.transform([["路灯鑫"]])
    names = {vectorizer.get_feature_names_out()[i] for i in row.indices}
    assert names == {"char:路", "char:灯", "char:路灯"}


@pytest.mark.parametrize(
    "vectorizer",
    [WordNgramVectorizer(min_df=1), CharNgramVectorizer(ngram_range=(1, 3), min_df=1)],
    ids=["word", "char"],
)
def test_vectorizer_empty_docs_give_zero_rows(vectorizer) -> None:  # type: ignore[no-untyped-def]
    vectorizer.fit(DOCS)
    matrix = vectorizer.transform([[], ["路灯"], []])
    assert matrix.shape[0] == 3
    assert matrix[0].nnz == 0 and matrix[2].nnz == 0 and matrix[1].nnz > 0
    assert matrix.shape[1] == len(vectorizer.vocabulary_)


@pytest.mark.parametrize(
    "vectorizer",
    [WordNgramVectorizer(min_df=1), CharNgramVectorizer(ngram_range=(1, 3), min_df=1)],
    ids=["word", "char"],
)
def test_vectorizer_rows_have_unit_norm(vectorizer) -> None:  # type: ignore[no-untyped-def]
    matrix = vectorizer.fit_transform(DOCS).toarray()
    norms = np.linalg.norm(matrix, axis=1)
    np.testing.assert_allclose(norms[[i for i, doc in enumerate(DOCS) if doc]], 1.0)


@pytest.mark.parametrize(
    "vectorizer",
    [WordNgramVectorizer(min_df=100), CharNgramVectorizer(min_df=100)],
    ids=["word", "char"],
)
def test_vectorizer_empty_vocabulary_raises(vectorizer) -> None:  # type: ignore[no-untyped-def]
    # Like scikit-learn's TfidfVectorizer ("After pruning, no terms remain"): a ValueError.
    with pytest.raises(ValueError):
        vectorizer.fit(DOCS)


@pytest.mark.parametrize("max_n", [0, 4, -1])
def test_word_vectorizer_invalid_max_n(max_n: int) -> None:
    with pytest.raises(ValueError, match="max_n"):
        WordNgramVectorizer(max_n=max_n).fit(DOCS)


@pytest.mark.parametrize("ngram_range", [(0, 2), (2, 1), (1, 4), (4, 4), (0, 0)])
def test_char_vectorizer_invalid_ngram_range(ngram_range: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="ngram_range"):
        CharNgramVectorizer(ngram_range=ngram_range).fit(DOCS)


@pytest.mark.parametrize(
    "vectorizer", [WordNgramVectorizer(), CharNgramVectorizer()], ids=["word", "char"]
)
def test_vectorizer_transform_before_fit_raises(vectorizer) -> None:  # type: ignore[no-untyped-def]
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        vectorizer.transform(DOCS)


def test_decode_char_ngram_round_trip() -> None:
    vectorizer = CharNgramVectorizer(ngram_range=(1, 3), min_df=1).fit(DOCS)
    for ngram_id in vectorizer.vocabulary_:
        text = decode_char_ngram(ngram_id)
        assert 1 <= len(text) <= 3 and " " not in text
        # Encoding the decoded text as a one-word document gives back the same id.
        own_id = vectorizer._ids([text])
        assert int(ngram_id) in set(own_id.tolist())
        assert int(own_id[-1]) == int(ngram_id)  # the longest n-gram of the word is itself


@pytest.mark.parametrize("text", ["路", "路灯", "KTV", "12", "𠀀字"])
def test_decode_char_ngram_of_encoded_text(text: str) -> None:
    vectorizer = CharNgramVectorizer(ngram_range=(len(text), len(text)), min_df=1).fit([[text]])
    (ngram_id,) = vectorizer.vocabulary_
    assert decode_char_ngram(ngram_id) == text
    assert decode_char_ngram(np.int64(ngram_id)) == text


def test_decode_char_ngram_zero_is_empty() -> None:
    assert decode_char_ngram(0) == ""


def test_join_tokens() -> None:
    assert join_tokens(["路灯", "坏"]) == "路灯 坏"
    assert join_tokens([]) == ""


@pytest.mark.parametrize(
    "vectorizer",
    [WordNgramVectorizer(min_df=1), CharNgramVectorizer(ngram_range=(1, 3), min_df=1)],
    ids=["word", "char"],
)
def test_vectorizer_pickle_and_clone(vectorizer) -> None:  # type: ignore[no-untyped-def]
    fitted = vectorizer.fit(DOCS)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        restored.transform(DOCS).toarray(), fitted.transform(DOCS).toarray()
    )
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "vocabulary_")
