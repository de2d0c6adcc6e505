"""Text normalisation: the first step every message goes through, in training and in serving.

Messages arrive from hotline tickets, apps and web forms, so the same word can come in
full-width or half-width characters, wrapped in HTML, with Excel's ``_x000D_`` carriage-return
escapes, or in traditional characters. :func:`normalize_text` maps all of that to one form.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_EXCEL_ESCAPE = re.compile(r"_x[0-9A-Fa-f]{4}_")
# A tag starts right after "<" or "</" with a letter: "x < y > z" is text, not a tag.
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
_HTML_BREAK = re.compile(r"</?(br|p|div|li|tr)\b[^<>]*>", re.IGNORECASE)
# Zero-width and byte-order characters that NFKC keeps but that break matching.
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_HSPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def _excel_unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(0)[2:6], 16))


@dataclass(frozen=True)
class _T2S:
    """OpenCC's t2s dictionaries (those of opencc-python-reimplemented, read once).

    ``characters`` maps each traditional character to its simplified one (a ``str.translate``
    table); ``phrases`` finds every phrase of TSPhrases, overlapping ones too, as ``(end index,
    (phrase, replacement))``; a phrase that maps to itself keeps its characters unconverted.
    ``changed`` and ``phrase_starts`` and ``changed_phrases`` say cheaply whether a text needs
    converting at all.
    """

    characters: dict[int, str]
    phrases: Any  # an ahocorasick.Automaton
    changed: frozenset[str]
    phrase_starts: frozenset[str]
    changed_phrases: re.Pattern[str]


def _opencc_dictionary(name: str) -> dict[str, str]:
    """One OpenCC dictionary, each key with its first value (as OpenCC converts)."""
    import opencc  # opencc-python-reimplemented: only its dictionary files are read

    text = (Path(opencc.__file__).parent / "dictionary" / name).read_text(encoding="utf-8")
    pairs = (line.strip().split("\t") for line in text.splitlines() if line.strip())
    return {key: values.split(" ")[0] for key, values in pairs}


@lru_cache(maxsize=1)
def _t2s() -> _T2S:
    import ahocorasick

    characters = _opencc_dictionary("TSCharacters.txt")
    phrases = _opencc_dictionary("TSPhrases.txt")
    automaton = ahocorasick.Automaton()
    for phrase, replacement in phrases.items():
        automaton.add_word(phrase, (phrase, replacement))
    automaton.make_automaton()
    changed = sorted((p for p, r in phrases.items() if p != r), key=len, reverse=True)
    return _T2S(
        characters={ord(c): r for c, r in characters.items() if c != r},
        phrases=automaton,
        changed=frozenset(c for c, r in characters.items() if c != r),
        phrase_starts=frozenset(phrase[0] for phrase in changed),
        changed_phrases=re.compile("|".join(map(re.escape, changed))),
    )


def _has_traditional(text: str) -> bool:
    """Whether :func:`to_simplified` would change ``text``: set look-ups, where converting
    costs more (nine in ten messages have nothing to convert)."""
    t2s = _t2s()
    if not t2s.changed.isdisjoint(text):
        return True
    return not t2s.phrase_starts.isdisjoint(text) and t2s.changed_phrases.search(text) is not None


def _phrase_spans(text: str) -> list[tuple[int, int, str]]:
    """The phrases OpenCC's t2s converts in ``text`` as ``(start, end, replacement)``, in
    order: the longest phrase first (the leftmost of equally long ones), then the longest of
    what it leaves on either side, and so on, as OpenCC's parse tree takes them."""
    found = [
        (end + 1 - len(phrase), end + 1, replacement)
        for end, (phrase, replacement) in _t2s().phrases.iter(text)
    ]
    found.sort(key=lambda span: (span[0] - span[1], span[0]))
    taken = bytearray(len(text))
    spans = []
    for start, end, replacement in found:
        if not any(taken[start:end]):
            taken[start:end] = b"\x01" * (end - start)
            spans.append((start, end, replacement))
    spans.sort()
    return spans


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified ones: what OpenCC's t2s
    conversion (opencc-python-reimplemented) gives, in linear time.

    Phrases (TSPhrases) are taken first, longest first; every character outside them is
    mapped by TSCharacters. OpenCC also splits the text at punctuation and spaces first,
    which changes nothing here: no dictionary entry contains one.
    """
    if not _has_traditional(text):
        return text
    table = _t2s().characters
    parts, position = [], 0
    for start, end, replacement in _phrase_spans(text):
        parts += [text[position:start].translate(table), replacement]
        position = end
    parts.append(text[position:].translate(table))
    return "".join(parts)


def normalize_text(text: str, *, simplify: bool = False) -> str:
    """Return ``text`` in the canonical form the models are trained on.

    - Excel escapes (``_x000D_``) and HTML entities are decoded; HTML tags are removed
      (block tags become line breaks).
    - Unicode NFKC folds full-width letters, digits, punctuation and the ideographic space
      (U+3000) to their half-width forms.
    - Invisible characters are dropped; runs of spaces collapse to one, blank lines to one
      line break, and the ends are stripped.
    - With ``simplify=True`` traditional characters become simplified ones.

    Any string is accepted, lone surrogates included (they are kept). Without ``simplify`` the
    result is in NFKC, its only blanks are single spaces and single line breaks, and it
    normalises to itself unless it still holds an escape, entity or tag (the text had it
    encoded twice, ``&amp;lt;``, or in full-width forms, ``＜ｂ＞``): each is decoded once.
    NFKC may lengthen a text up to 18 times (U+FDFA), the rest only shortens it. OpenCC's t2s
    is not idempotent for a few phrases (乾縣 → 乾县 → 干县): normalise with ``simplify`` once.
    """
    if not text:
        return ""
    if "_x" in text:
        text = _EXCEL_ESCAPE.sub(_excel_unescape, text)
    # Tags first, entities after: "&lt;iPhone 15&gt;" is what the resident typed, not a tag.
    if "<" in text:
        text = _HTML_BREAK.sub("\n", text)
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    # Before NFKC, which makes none of them: dropped after it, "e\u200b\u0301" would leave an
    # "e\u0301" that NFKC composes to "é" only on a second pass.
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HSPACE.sub(" ", text)
    text = _NEWLINES.sub("\n", text).strip()
    if simplify:
        text = to_simplified(text)
    return text
