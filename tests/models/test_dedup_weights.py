"""The duplicate detector's pair weights: read from the shipped data/dedup_weights.json, and
refused when a weights file is not of their form."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from conftest import REPO_ROOT

from wangge.models import dedup
from wangge.models.dedup import SHIPPED_WEIGHTS, DedupWeights, DuplicateDetector


class UnitEncoder:
    dim = 2

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0], dtype=np.float32), (len(texts), 1))


def test_the_default_weights_are_the_shipped_files() -> None:
    shipped = json.loads((REPO_ROOT / "data" / "dedup_weights.json").read_text(encoding="utf-8"))
    assert SHIPPED_WEIGHTS == DedupWeights.from_dict(shipped)
    for mode in ("encoder", "lexical"):
        assert asdict(getattr(SHIPPED_WEIGHTS, mode).weights) == shipped[mode]["weights"]
    assert (dedup.ENCODER_WEIGHTS, dedup.ENCODER_THRESHOLD) == (
        SHIPPED_WEIGHTS.encoder.weights, shipped["encoder"]["threshold"]
    )  # fmt: skip
    assert (dedup.LEXICAL_WEIGHTS, dedup.LEXICAL_THRESHOLD) == (
        SHIPPED_WEIGHTS.lexical.weights, shipped["lexical"]["threshold"]
    )  # fmt: skip
    lexical, encoded = DuplicateDetector(entities=False), DuplicateDetector(UnitEncoder())
    assert (lexical.weights, lexical.threshold) == (
        SHIPPED_WEIGHTS.lexical.weights, SHIPPED_WEIGHTS.lexical.threshold
    )  # fmt: skip
    assert (encoded.weights, encoded.threshold) == (
        SHIPPED_WEIGHTS.encoder.weights, SHIPPED_WEIGHTS.encoder.threshold
    )  # fmt: skip


def test_weights_round_trip_through_their_dict() -> None:
    assert DedupWeights.from_dict(SHIPPED_WEIGHTS.as_dict()) == SHIPPED_WEIGHTS


def broken(edit: Any) -> dict[str, Any]:
    values = SHIPPED_WEIGHTS.as_dict()
    edit(values)
    return values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (broken(lambda v: v.pop("lexical")), "lexical: expected"),
        (broken(lambda v: v["encoder"]["weights"].update(jacard=1.0)), "unknown ['jacard']"),
        (broken(lambda v: v["encoder"]["weights"].update(bias="1")), "must be a number"),
        (broken(lambda v: v["encoder"]["weights"].update(bias=True)), "must be a number"),
        (broken(lambda v: v["lexical"].update(threshold=1.5)), "lexical.threshold"),
        (broken(lambda v: v["lexical"].pop("threshold")), "got None"),
    ],
)
def test_malformed_weights_are_refused_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        DedupWeights.from_dict(values)
    assert message in str(error.value)
