"""Why a person should check a result: review reason codes, with their labels for staff.

Files and the API carry the codes (``review_reason`` holds them comma-separated); the Chinese
labels are for the review page only.

A doubtful place has one of five codes. Four name a doubt a person can settle from the
message and its evidence, and become review tasks in the service: ``ambiguous_place`` (a
community or village name several streets have, 同名社区), ``conflicting_places`` (the named
community belongs to another street than the one named), ``out_of_area`` (places elsewhere
named beside the district's own: ours or not?) and ``location`` (any other place below the
review threshold). The fifth, ``unlocated``, says the message names no community of the
district (at most a street, or places the registry does not know): nobody can decide that from
the message alone, so the service puts it on the street's (or the district's) 待定位 list,
where a dispatcher who knows the area assigns grids to many messages at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ReviewReason(StrEnum):
    """A reason for review; its value is the code written to files, the API and the queue."""

    CATEGORY = "category"  # the category's probability is below the model's review threshold
    LOCATION = "location"  # a place below the review threshold, none of the doubts below
    AMBIGUOUS_PLACE = "ambiguous_place"  # a community name several streets have
    CONFLICTING_PLACES = "conflicting_places"  # the community is in another street than named
    OUT_OF_AREA = "out_of_area"  # places elsewhere named beside the district's: ours or not?
    UNLOCATED = "unlocated"  # no community named: to the 待定位 list, not a task
    DUPLICATE = "duplicate"  # joined a case with a borderline same-case probability
    EMPTY = "empty"  # no text: nothing to classify or compare

    @property
    def label(self) -> str:
        """What the review page shows."""
        return LABELS[self]

    @property
    def is_task(self) -> bool:
        """Whether the service queues a message for this reason (``unlocated`` is listed
        for locating instead)."""
        return self is not ReviewReason.UNLOCATED


LABELS = {
    ReviewReason.CATEGORY: "分类存疑",
    ReviewReason.LOCATION: "位置存疑",
    ReviewReason.AMBIGUOUS_PLACE: "地名重名",
    ReviewReason.CONFLICTING_PLACES: "地点矛盾",
    ReviewReason.OUT_OF_AREA: "疑似辖区外",
    ReviewReason.UNLOCATED: "待定位",
    ReviewReason.DUPLICATE: "重复存疑",
    ReviewReason.EMPTY: "内容为空",
}

#: The codes of a doubtful place (``unlocated`` included).
LOCATION_REASONS = frozenset(
    {
        ReviewReason.LOCATION,
        ReviewReason.AMBIGUOUS_PLACE,
        ReviewReason.CONFLICTING_PLACES,
        ReviewReason.OUT_OF_AREA,
        ReviewReason.UNLOCATED,
    }
)


def join_reasons(reasons: Iterable[ReviewReason]) -> str:
    """The ``review_reason`` column of a file: the codes, comma-separated."""
    return ",".join(reasons)
