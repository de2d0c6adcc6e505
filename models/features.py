"""Text features for the linear models: word n-grams and character n-grams, as TF-IDF.

Both take a list of token lists (the output of :class:`wangge.nlp.segment.Tokenizer`).

:class:`CharNgramVectorizer` exists because scikit-learn's character analyzer builds a Python
string for every n-gram, which made it the slowest step of scoring (about 1,900 messages/s for
n-grams of length 1-2 on 2 cores). Here each n-gram is an integer computed with numpy from the
code points, and the vocabulary is a sorted integer array looked up with ``searchsorted``: the
same features, about ten times faster.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.utils.validation import check_is_fitted

_CODE_POINT_BITS = 21  # Unicode code points are below 2**21; three fit in an int64.
_CODE_POINT_MASK = (1 << _CODE_POINT_BITS) - 1
_MAX_N = 3
_SPACE = 32


class WordNgrams:
    """Analyzer for a token list: the tokens themselves plus n-grams up to ``n`` words."""

    def __init__(self, n: int = 2) -> None:
        self.n = n

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        features = list(tokens)
        for size in range(2, self.n + 1):
            features.extend(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
        return features


def join_tokens(tokens: Sequence[str]) -> str:
    """Tokens joined by spaces: character n-grams then see where words end."""
    return " ".join(tokens)


def _ngram_ids(text: str, ngram_range: tuple[int, int]) -> np.ndarray:
    """Integer ids of the character n-grams of ``text``, leaving out n-grams with a space.

    An n-gram's id is its code points side by side, 21 bits each. Ids of different lengths
    cannot collide because a first code point is never 0 (NUL counts as a space here).
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    codes[codes == 0] = _SPACE
    low, high = ngram_range
    parts = []
    for n in range(low, high + 1):
        count = len(codes) - n + 1
        if count <= 0:
            break
        ids = codes[:count].copy()
        has_space = ids == _SPACE
        for k in range(1, n):
            following = codes[k : k + count]
            ids = (ids << _CODE_POINT_BITS) | following
            has_space |= following == _SPACE
        parts.append(ids[~has_space])
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


class CharNgramVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF of character n-grams within words (n-grams never span a space).

    Parameters
    ----------
    ngram_range:
        Shortest and longest n-gram, at most 3.
    min_df:
        Keep n-grams that occur in at least this many training messages.
    sublinear_tf:
        Use ``1 + log(tf)`` instead of raw counts.
    """

    def __init__(
        self, *, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, sublinear_tf: bool = True
    ) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def _doc_ids(self, docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        ids = [_ngram_ids(join_tokens(doc), self.ngram_range) for doc in docs]
        rows = np.repeat(np.arange(len(ids)), [len(i) for i in ids])
        return rows, (np.concatenate(ids) if ids else np.empty(0, dtype=np.int64))

    def _counts(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        rows, ids = self._doc_ids(docs)
        vocabulary = self.vocabulary_
        columns = np.searchsorted(vocabulary, ids)
        columns[columns == len(vocabulary)] = 0
        known = vocabulary[columns] == ids if len(vocabulary) else np.zeros(len(ids), bool)
        counts = sp.csr_matrix(
            (np.ones(int(known.sum())), (rows[known], columns[known])),
            shape=(len(docs), len(vocabulary)),
        )
        counts.sum_duplicates()
        return counts

    def fit(self, docs: Sequence[Sequence[str]], y: object = None) -> CharNgramVectorizer:
        low, high = self.ngram_range
        if not 1 <= low <= high <= _MAX_N:
            raise ValueError(f"ngram_range must satisfy 1 <= min <= max <= {_MAX_N}: {self.ngram_range}")
        per_message = [np.unique(_ngram_ids(join_tokens(doc), self.ngram_range)) for doc in docs]
        unique_ids, document_frequency = np.unique(np.concatenate(per_message), return_counts=True)
        self.vocabulary_ = unique_ids[document_frequency >= self.min_df]
        self.tfidf_ = TfidfTransformer(sublinear_tf=self.sublinear_tf).fit(self._counts(docs))
        return self

    def transform(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        check_is_fitted(self, "vocabulary_")
        return self.tfidf_.transform(self._counts(docs))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "vocabulary_")
        return np.asarray([f"char:{_decode(i)}" for i in self.vocabulary_], dtype=object)


def _decode(ngram_id: int) -> str:
    """The text of an n-gram id (for explanations and debugging)."""
    chars = []
    ngram_id = int(ngram_id)
    while ngram_id:
        chars.append(chr(ngram_id & _CODE_POINT_MASK))
        ngram_id >>= _CODE_POINT_BITS
    return "".join(reversed(chars))
