"""Routing a message: where it belongs (street, community, grid) and which offices handle it.

:class:`MessageRouter` joins the :class:`~wangge.nlp.locate.LocationExtractor` and the
:class:`~wangge.models.departments.RoutingTable` of one district. It needs no trained model;
given the classifier's category probabilities (and a department classifier's, when the model
has one) it routes by category as well as by keywords.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wangge.models.departments import DepartmentScore, RoutingTable
from wangge.nlp.fields import message_text
from wangge.nlp.locate import DEFAULT_REVIEW_THRESHOLD, Location, LocationExtractor
from wangge.nlp.registry import Registry

#: The fields of a message the router reads; all optional.
ROUTING_FIELDS = ("title", "content", "address", "latitude", "longitude", "grid_id")


@dataclass(frozen=True)
class Route:
    """Routing of one message."""

    location: Location
    departments: list[DepartmentScore]
    needs_review: bool

    def as_columns(self) -> dict[str, Any]:
        columns = self.location.as_columns()
        columns["department"] = self.departments[0].department if self.departments else ""
        columns["departments"] = [d.as_dict() for d in self.departments]
        return columns


class MessageRouter:
    """Locates messages and proposes departments, for one district.

    Parameters
    ----------
    extractor, table:
        The district's location extractor and routing table.
    review_threshold:
        Locations with a lower confidence need review, and so do those whose places conflict
        (a community of another street than the one named).
    """

    def __init__(
        self,
        extractor: LocationExtractor,
        table: RoutingTable,
        *,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    ) -> None:
        self.extractor = extractor
        self.table = table
        self.review_threshold = review_threshold
        self.load_seconds = 0.0

    @classmethod
    def load(
        cls,
        district_dir: str | Path | None = None,
        *,
        grid_file: str | Path | None = None,
        ner: bool = True,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    ) -> MessageRouter:
        """The router of a district directory (default: the shipped 萧山区)."""
        started = time.perf_counter()
        registry = Registry.load(district_dir, grid_file=grid_file)
        router = cls(
            LocationExtractor(registry, ner=ner, review_threshold=review_threshold),
            RoutingTable.load(district_dir, registry=registry),
            review_threshold=review_threshold,
        )
        router.load_seconds = time.perf_counter() - started
        return router

    @property
    def registry(self) -> Registry:
        return self.extractor.registry

    def route_many(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        categories: Sequence[Mapping[str, float] | None] | None = None,
        learned: Sequence[Mapping[str, float] | None] | None = None,
        top_k: int = 3,
        normalized: bool = False,
    ) -> list[Route]:
        """Routes for ``messages`` (dicts with any of :data:`ROUTING_FIELDS`), in order.

        ``normalized`` says their text fields are normalised already (as the triage pipeline's
        messages are); ``categories`` and ``learned`` hold, per message, the category and
        department models' probabilities, or ``None``.
        """
        if not normalized:
            messages = [self.extractor.normalized(message) for message in messages]
        locations = self.extractor.locate_many(messages, normalized=True)
        local = [i for i, location in enumerate(locations) if not location.out_of_area]
        routed = self.table.route_many(
            [
                message_text(
                    (
                        messages[i].get("title"),
                        messages[i].get("content"),
                        messages[i].get("address"),
                    )
                )
                for i in local
            ],
            categories=[categories[i] for i in local] if categories is not None else None,
            streets=[locations[i].street for i in local],
            learned=[learned[i] for i in local] if learned is not None else None,
            top_k=top_k,
        )
        departments = dict(zip(local, routed, strict=True))
        routes = []
        for index, location in enumerate(locations):
            doubtful = location.needs_review(self.review_threshold) or (
                "conflict" in location.doubts()  # two places disagree: a person can tell
            )
            found = departments[index] if index in departments else [forwarding(location)]
            routes.append(Route(location, found, doubtful))
        return routes


FORWARD_FUNCTION = "转办"
UNKNOWN_ELSEWHERE = "辖区外（待定）"


def forwarding(location: Location) -> DepartmentScore:
    """The department of an out-of-area message: forwarding to where its places are
    (``转办：北京市朝阳区``), not a department of the district."""
    target = location.forward_to or UNKNOWN_ELSEWHERE
    places = "；".join(location.evidence[:3])
    return DepartmentScore(
        f"{FORWARD_FUNCTION}：{target}", FORWARD_FUNCTION, 1.0, [f"辖区外（{places}）→ 转办"]
    )
