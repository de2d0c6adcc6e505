"""Why a person should check a result: review reason codes, with their labels for staff.

Files and the API carry the codes (``review_reason`` holds them comma-separated); the Chinese
labels are for the review page only.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ReviewReason(StrEnum):
    """A reason for review; its value is the code written to files, the API and the queue."""

    CATEGORY = "category"  # the category's probability is below the model's review threshold
    LOCATION = "location"  # the place is doubtful (low confidence, unknown or out of area)
    DUPLICATE = "duplicate"  # joined a case with a borderline same-case probability
    EMPTY = "empty"  # no text: nothing to classify or compare

    @property
    def label(self) -> str:
        """What the review page shows."""
        return LABELS[self]


LABELS = {
    ReviewReason.CATEGORY: "分类存疑",
    ReviewReason.LOCATION: "位置存疑",
    ReviewReason.DUPLICATE: "重复存疑",
    ReviewReason.EMPTY: "内容为空",
}


def join_reasons(reasons: Iterable[ReviewReason]) -> str:
    """The ``review_reason`` column of a file: the codes, comma-separated."""
    return ",".join(reasons)
