"""Fitting the duplicate detector's pair weights on labelled pairs: ``wangge dedup fit``.

A pairs file is a CSV with the columns ``id_a``, ``id_b`` (message ids of the messages file)
and ``same_case`` (1 or 0), as ``benchmarks/data/hot_issue_pairs.csv``. The messages are
prepared as ``wangge dedup`` prepares them (:class:`~wangge.pipeline.Triage`, in time order)
and each labelled pair's features are computed as the detector computes them. For each mode,
with the sentence encoder and lexical (:class:`~wangge.models.dedup.DedupWeights`):

- **weights**: a logistic regression (``C`` = :data:`REGULARISATION`) of ``same_case`` on the
  mode's features (:data:`FEATURES`) over all the pairs, rounded to 3 decimals;
- **threshold**: of :data:`THRESHOLDS`, the one whose cases had the best pairwise F1 in
  :data:`FOLDS`-fold cross-validation: for each fold, weights fitted on the other folds build
  the cases of all messages, and the fold's pairs are judged by whether both messages got one
  case.

:func:`write_weights` writes the result as JSON, with a ``fitted`` section saying what it was
fitted on (files by name and SHA-256, the encoder, the cross-validated figures).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wangge.batch.dedup import messages_in_time_order
from wangge.batch.files import load_messages
from wangge.errors import DataError
from wangge.models.cases import CASE_RULE
from wangge.models.dedup import (
    DedupMessage,
    DedupWeights,
    DuplicateDetector,
    Encoder,
    MessageFeatures,
    ModeWeights,
    PairWeights,
)
from wangge.pipeline import Triage
from wangge.pipeline.artifact import EncoderRecord, file_sha256
from wangge.pipeline.directory import encoder_record
from wangge.pipeline.triage import load_encoder
from wangge.training.dedup_replay import (
    Recorded,
    feature_row,
    logistic_scores,
    record_pairs,
    replay_matches,
)

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("id_a", "id_b", "same_case")
# The places are specific ones only (wangge.nlp.places). The pair features added for issue 18
# (title_lexical_cosine, log_days, broad_places) are left out: in the 10-fold CV of the cases
# on the 952 labelled pairs they did not raise F1 (0.926 against 0.927 without them), and
# broad_places came out with a positive weight (the labelled same-case pairs share their town
# more often than the others), which would make a town name evidence again. See
# training/dedup_compare.py and docs/benchmarks.md "Deduplication".
FEATURES = {
    "encoder": ["jaccard", "title_jaccard", "lexical_cosine", "cosine", "close_cosine",
                "same_reporter", "entities_conflict", "entities_overlap"],
    "lexical": ["jaccard", "title_jaccard", "lexical_cosine", "same_reporter",
                "entities_conflict", "entities_overlap"],
}  # fmt: skip
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
FOLDS = 10
REGULARISATION = 10.0  # C of the logistic regression
FOLD_SEED = 0

Progress = Callable[[str], None]


def read_pairs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The labelled pairs of one or more CSV files, in order, with the file each comes from
    (column ``file``); ids are kept as text."""
    frames = []
    for path in paths:
        path = Path(path)
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise DataError(f"cannot read the pairs: {error}", path=path) from None
        missing = [column for column in PAIR_COLUMNS if column not in frame.columns]
        if missing:
            raise DataError(f"no column {', '.join(missing)} (needs {PAIR_COLUMNS})", path=path)
        bad = ~frame["same_case"].str.strip().isin(["0", "1"])
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"same_case must be 1 or 0, not {frame['same_case'].iloc[row]!r}",
                path=path, row=row + 2, column="same_case",
            )  # fmt: skip
        frames.append(frame.assign(file=path.name))
    pairs = pd.concat(frames, ignore_index=True)
    pairs["same_case"] = pairs["same_case"].str.strip().astype(int)
    if not 0 < pairs["same_case"].sum() < len(pairs):
        raise DataError("the pairs need both same-case (1) and different-case (0) examples")
    return pairs


@dataclass
class Mode:
    """A detector set-up (with the encoder or lexical) and what it computes of the data."""

    name: str  # "encoder" or "lexical"
    encoder: Encoder | None
    messages: list[DedupMessage]  # in time order
    features: list[MessageFeatures]  # of ``messages``, entities tagged
    x: pd.DataFrame  # the labelled pairs' features, one row per pair
    recorded: Recorded | None = None  # what a case build compares (see :func:`recorded`)

    @property
    def names(self) -> list[str]:
        return FEATURES[self.name]


def prepare_modes(
    messages: Sequence[Any],
    pairs: pd.DataFrame,
    encoder: Encoder | None,
    *,
    cache: Path | None = None,
) -> list[Mode]:
    """The modes to fit, lexical first: pipeline messages (in time order) prepared once, as
    ``wangge dedup`` prepares them; the encoder mode only with an ``encoder``. With a
    ``cache`` folder, the embeddings and tagged names are read from it when it holds those of
    the same messages, else written to it (the runs of a comparison then embed once)."""
    detector = DuplicateDetector(encoder)
    ordered, features = _prepared(detector, messages, cache)
    missing = sorted({str(i) for i in pd.concat([pairs["id_a"], pairs["id_b"]])}
                     - {m.id for m in ordered})  # fmt: skip
    if missing:
        raise DataError(f"{len(missing)} message ids of the pairs are not in the messages "
                        f"(or have no text): {', '.join(missing[:5])}")  # fmt: skip
    lexical = [replace(feature, vector=None) for feature in features]
    modes = [Mode("lexical", None, ordered, lexical, pair_rows(detector, ordered, lexical, pairs))]
    if encoder is not None:
        modes.append(
            Mode(
                "encoder", encoder, ordered, features, pair_rows(detector, ordered, features, pairs)
            )
        )
    return modes


def _prepared(
    detector: DuplicateDetector, messages: Sequence[Any], cache: Path | None
) -> tuple[list[DedupMessage], list[MessageFeatures]]:
    """The detector's messages and features, their places tagged (see :func:`prepare_modes`)."""
    key = hashlib.sha256(
        json.dumps([[m.id, m.title, m.content] for m in messages], ensure_ascii=False).encode()
        + str(detector.encoder is not None).encode()
    ).hexdigest()[:16]
    stored = cache / f"dedup_features_{key}.npz" if cache is not None else None
    if stored is not None and stored.is_file():
        saved = np.load(stored, allow_pickle=False)
        results = Triage(detector=DuplicateDetector(None)).pipe(messages)  # no encoder runs
        ordered = [result.dedup for result in results if result.dedup is not None]
        vectors = saved["vectors"] if saved["vectors"].size else None
        names = [frozenset(json.loads(text)) for text in saved["entities"]]
        return ordered, detector.features(ordered, vectors=vectors, entities=names)
    results = Triage(detector=detector).pipe(messages)
    ordered = [result.dedup for result in results if result.dedup is not None]
    features = [result.features for result in results if result.features is not None]
    for feature in features:
        detector.tagged(feature)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        vectors = [f.vector for f in features if f.vector is not None]
        np.savez(
            stored,
            vectors=np.stack(vectors) if vectors else np.zeros(0, np.float32),
            entities=np.array([json.dumps(sorted(f.entities or ()), ensure_ascii=False)
                               for f in features]),
        )  # fmt: skip
    return ordered, features


def pair_rows(
    detector: DuplicateDetector,
    messages: Sequence[DedupMessage],
    features: Sequence[MessageFeatures],
    pairs: pd.DataFrame,
) -> pd.DataFrame:
    """Every pair's features, as :class:`~wangge.models.dedup.PairWeights` weighs them."""
    by_id = {m.id: (m, f) for m, f in zip(messages, features, strict=True)}
    rows = []
    for a, b in pairs[["id_a", "id_b"]].values:
        (ma, fa), (mb, fb) = by_id[str(a)], by_id[str(b)]
        rows.append(feature_row(detector.pair_features(ma, fa, mb, fb)))
    return pd.DataFrame(rows).astype(float)


def fit_weights(mode: Mode, rows: np.ndarray, y: np.ndarray) -> PairWeights:
    """Logistic regression of the mode's features on the pairs ``rows``, rounded to 3
    decimals."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION, max_iter=1000).fit(
        mode.x[mode.names].to_numpy()[rows], y[rows]
    )
    fitted = dict(zip(mode.names, model.coef_[0].round(3).tolist(), strict=True))
    return PairWeights(**fitted, bias=round(float(model.intercept_[0]), 3))


def together(mode: Mode, pairs: pd.DataFrame, weights: PairWeights, threshold: float) -> np.ndarray:
    """Whether the cases built over all messages put each labelled pair together."""
    detector = DuplicateDetector(mode.encoder, weights=weights, threshold=threshold)
    case_of = {d.message_id: d.case_id for d in detector.add_many(mode.messages, mode.features)}
    return np.array([case_of[str(a)] == case_of[str(b)] for a, b in pairs[["id_a", "id_b"]].values])


def recorded(mode: Mode) -> Recorded:
    """What a case build of the mode's messages compares (recorded once a mode)."""
    if mode.recorded is None:
        mode.recorded = record_pairs(mode.encoder, mode.messages, mode.features)
    return mode.recorded


def together_replayed(
    mode: Mode, pairs: pd.DataFrame, weights: PairWeights, threshold: float
) -> np.ndarray:
    """:func:`together`, the cases built by replaying the recorded pairs (fast)."""
    replay = recorded(mode)
    cases = replay.cases(logistic_scores(replay, weights), threshold)
    case_of = {m.id: case for m, case in zip(replay.messages, cases, strict=True)}
    return np.array([case_of[str(a)] == case_of[str(b)] for a, b in pairs[["id_a", "id_b"]].values])


def prf(predicted: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of "same case"."""
    tp = int((predicted & gold).sum())
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(gold.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def cross_validate(
    mode: Mode,
    pairs: pd.DataFrame,
    *,
    folds: int = FOLDS,
    progress: Progress | None = None,
    replayed: bool = True,
) -> dict[float, np.ndarray]:
    """For each threshold, whether each pair was put in one case by weights fitted on the
    other folds (stratified, shuffled with :data:`FOLD_SEED`); the cases built by replaying
    the recorded pairs (:mod:`wangge.training.dedup_replay`), or with ``replayed=False`` by
    the detector itself."""
    build = together_replayed if replayed else together
    from sklearn.model_selection import StratifiedKFold

    y = pairs["same_case"].to_numpy() == 1
    predicted = {t: np.zeros(len(y), dtype=bool) for t in THRESHOLDS}
    splits = StratifiedKFold(folds, shuffle=True, random_state=FOLD_SEED).split(mode.x, y)
    for fold, (train, test) in enumerate(splits, 1):
        if progress is not None:
            progress(f"{mode.name}: fold {fold} of {folds}")
        weights = fit_weights(mode, train, y)
        for threshold in THRESHOLDS:
            predicted[threshold][test] = build(mode, pairs, weights, threshold)[test]
    return predicted


@dataclass(frozen=True)
class FittedMode:
    """The weights of one mode fitted on all pairs, the threshold chosen, and the
    cross-validated precision, recall and F1 at each threshold."""

    weights: ModeWeights
    cross_validated: dict[float, tuple[float, float, float]]


def fit_mode(
    mode: Mode, pairs: pd.DataFrame, *, folds: int = FOLDS, progress: Progress | None = None
) -> FittedMode:
    """Weights on all pairs, at the threshold of the best cross-validated F1."""
    y = pairs["same_case"].to_numpy() == 1
    if min(int(y.sum()), int((~y).sum())) < folds:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} pairs of each "
                        f"label; pass fewer --folds")  # fmt: skip
    weights = fit_weights(mode, np.arange(len(y)), y)
    replayed = CASE_RULE.former and replay_matches(
        mode.encoder, mode.features, recorded(mode), weights, THRESHOLDS[0]
    )
    # The case-level rule cannot be replayed: the cases are built with the detector (slow).
    predicted = cross_validate(mode, pairs, folds=folds, progress=progress, replayed=replayed)
    figures = {t: prf(predicted[t], y) for t in THRESHOLDS}
    chosen = max(THRESHOLDS, key=lambda t: figures[t][2])
    return FittedMode(ModeWeights(weights, chosen), figures)


@dataclass(frozen=True)
class FitResult:
    weights: DedupWeights
    fitted: dict[str, Any]  # what the weights were fitted on and how, for the JSON


def fit_dedup_weights(
    pairs_files: Sequence[str | Path],
    messages_file: str | Path,
    encoder_dir: str | Path,
    *,
    text_columns: list[str] | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    folds: int = FOLDS,
    progress: Progress = logger.info,
) -> FitResult:
    """Fit the weights and thresholds of both modes (see the module's description)."""
    pairs = read_pairs(pairs_files)
    encoder_info = encoder_record(encoder_dir)
    progress(f"{len(pairs)} labelled pairs ({int(pairs['same_case'].sum())} same case)")
    data = load_messages(
        messages_file, text_columns=text_columns, time_column=time_column, id_column=id_column,
        allow_empty=True,
    )  # fmt: skip
    _positions, messages = messages_in_time_order(data)
    progress(f"preparing {len(messages)} messages of {Path(messages_file).name}")
    modes = prepare_modes(messages, pairs, load_encoder(encoder_dir))
    fitted = {mode.name: fit_mode(mode, pairs, folds=folds, progress=progress) for mode in modes}
    weights = DedupWeights(encoder=fitted["encoder"].weights, lexical=fitted["lexical"].weights)
    return FitResult(weights, _provenance(pairs_files, pairs, messages_file, len(messages),
                                          encoder_info, folds, fitted))  # fmt: skip


def _provenance(
    pairs_files: Sequence[str | Path],
    pairs: pd.DataFrame,
    messages_file: str | Path,
    messages: int,
    encoder: EncoderRecord,
    folds: int,
    fitted: dict[str, FittedMode],
) -> dict[str, Any]:
    """The ``fitted`` section of the weights file: files by name and SHA-256 (not by path,
    which is the fitter's machine's), the encoder, the method and the figures."""
    from importlib.metadata import version

    return {
        "pairs": [
            {
                "file": Path(p).name,
                "sha256": file_sha256(Path(p)),
                "rows": int((pairs["file"] == Path(p).name).sum()),
            }
            for p in pairs_files
        ],  # fmt: skip
        "messages": {
            "file": Path(messages_file).name,
            "sha256": file_sha256(Path(messages_file)),
            "rows": messages,
        },  # fmt: skip
        "encoder": encoder.model_dump(exclude={"directory"}),
        "method": f"logistic regression (C={REGULARISATION}) on all pairs; the threshold of "
        f"{list(THRESHOLDS)} with the best pairwise F1 of cases in {folds}-fold "
        f"cross-validation (stratified, seed {FOLD_SEED})",
        "cross_validated": {
            name: {str(t): [round(v, 3) for v in prf] for t, prf in mode.cross_validated.items()}
            for name, mode in fitted.items()
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wangge_version": version("wangge"),
    }


def write_weights(path: str | Path, result: FitResult) -> None:
    """Write the weights (:meth:`~wangge.models.dedup.DedupWeights.as_dict`) and their
    ``fitted`` section as JSON."""
    payload = result.weights.as_dict() | {"fitted": result.fitted}
    Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", "utf-8")
