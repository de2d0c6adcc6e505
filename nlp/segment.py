"""Word segmentation and token filtering: raw messages and pre-segmented corpora meet here.

Training corpora often arrive already segmented (space-separated jieba tokens with stop words
removed) while live messages arrive raw. :class:`Tokenizer` treats both the same way, so that a
model trained on one scores the other well:

1. the text comes normalised (:func:`wangge.nlp.fields.normalized`, done once by the loaders
   and the triage pipeline);
2. segment with jieba, for which whitespace always separates words: a token of a
   pre-segmented text comes back whole, or split the same way it would be in a raw text. The
   exception is a word jieba's HMM found from its context (车辆乱行 -> 乱行): alone, the same
   token may be split (乱 / 行). On the demo data that changes 66 of 9,665 tokens; character
   n-grams still match, and a rule keeping short pieces whole fixed the round trip without
   improving accuracy on raw messages, so it was not kept;
3. drop stop words, punctuation and single Latin letters (anonymisation marks such as ``A``),
   so that a raw text keeps only what a cleaned corpus could contain.

The engine is ``rjieba`` (the Rust port of jieba: same dictionary, same algorithm) because it is
about 18 times faster than the Python implementation; on 667 raw messages the two agree on
99.8 % of the tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import rjieba

_HAS_WORD_CHAR = re.compile(r"[0-9A-Za-z\u3400-\u9fff\uf900-\ufaff]")
_SINGLE_LATIN = re.compile(r"^[A-Za-z]$")
_MAX_CACHED_TOKENS = 500_000


def _read_word_list(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def default_stopwords() -> frozenset[str]:
    """The stop-word list shipped in ``data/stopwords_zh.txt``."""
    text = resources.files("wangge.data").joinpath("stopwords_zh.txt").read_text(encoding="utf-8")
    return frozenset(_read_word_list(text))


def load_word_list(path: str | Path) -> list[str]:
    """Read a one-word-per-line file (``#`` starts a comment line)."""
    return _read_word_list(Path(path).read_text(encoding="utf-8"))


def is_content_token(token: str, stopwords: frozenset[str]) -> bool:
    """True when ``token`` carries meaning: not blank, not punctuation, not a stop word."""
    return (
        bool(_HAS_WORD_CHAR.search(token))
        and token not in stopwords
        and not _SINGLE_LATIN.match(token)
    )


class Tokenizer:
    """Turns a message (raw or pre-segmented) into its content tokens.

    Parameters
    ----------
    user_words:
        Words jieba must keep whole (place names, domain terms). Each is added with a high
        frequency so that it wins over the built-in dictionary.
    stopwords:
        Words to drop; ``None`` means the shipped list.

    Instances are picklable (the jieba engine is rebuilt after loading) so that they can be
    saved inside a fitted scikit-learn pipeline.
    """

    def __init__(
        self,
        *,
        user_words: Sequence[str] = (),
        stopwords: Iterable[str] | None = None,
    ) -> None:
        self.user_words = tuple(user_words)
        self.stopwords = frozenset(default_stopwords() if stopwords is None else stopwords)
        self._engine: rjieba.Jieba | None = None
        # token -> is_content_token(token): words repeat (Zipf), so most checks become one
        # dictionary look-up; this halves the cost of filtering.
        self._keep: dict[str, bool] = {}

    @property
    def engine(self) -> rjieba.Jieba:
        if self._engine is None:
            engine = rjieba.Jieba()
            for word in self.user_words:
                engine.add_word(word, 100_000, None)
            self._engine = engine
        return self._engine

    def _cut(self, text: str) -> list[str]:
        """jieba's tokens of the text, whitespace tokens included."""
        tokens: list[str] = self.engine.cut(text)
        return tokens

    def segment(self, text: str) -> list[str]:
        """All tokens of ``text``, stop words included."""
        return [token for token in self._cut(text) if not token.isspace()]

    def __call__(self, text: str) -> list[str]:
        """The content tokens of ``text``: what the models see."""
        keep = self._keep
        tokens = self._cut(text)
        unseen = [token for token in set(tokens) if token not in keep]
        if unseen:
            if len(keep) + len(unseen) > _MAX_CACHED_TOKENS:
                keep.clear()
            for token in unseen:  # whitespace tokens are not content tokens either
                keep[token] = is_content_token(token, self.stopwords)
        return [token for token in tokens if keep[token]]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"] = None
        state["_keep"] = {}
        return state

    def __repr__(self) -> str:
        return f"Tokenizer(user_words=<{len(self.user_words)}>, stopwords=<{len(self.stopwords)}>)"


def is_presegmented(texts: Iterable[str], *, sample: int = 200) -> bool:
    """Guess whether a corpus is already segmented (CJK words separated by spaces).

    Raw Chinese text rarely puts a space between two CJK characters; a segmented corpus does
    so between almost every word. Used for reporting only: :class:`Tokenizer` handles both.
    """
    spaced = total = 0
    for text in list(texts)[:sample]:
        text = unicodedata.normalize("NFKC", text or "")
        total += len(re.findall(r"[\u4e00-\u9fff]", text))
        spaced += len(re.findall(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", text))
    return total > 0 and spaced / total > 0.15
