"""Grid search for the review page's correction form (``GET /review/api/grids?q=``).

A reviewer types part of a grid's, community's or street's name (or an alias: a compound, a
bare name such as 西河路 for 西河路社区) and gets the grids it may mean. The index is built once
per district (:meth:`GridIndex.of`): every name is a term pointing at its grids, and every
character at the terms containing it, so a query reads the terms sharing its rarest character
instead of scanning the district (a district of 10,000+ grids answers in well under a
millisecond per query).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from wangge.nlp.registry import Registry, Unit

# how a term matched, best first: the grid's own id or name, the name of its community or
# street, an alias; whole, at the start, or inside
EXACT, PREFIX, INSIDE = 0, 1, 2


@dataclass(frozen=True)
class GridHit:
    id: str
    name: str
    community_name: str
    street_name: str
    matched: str  # the name the query matched

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "community_name": self.community_name,
                "street_name": self.street_name, "matched": self.matched}  # fmt: skip


class GridIndex:
    """Names of grids, communities and streets (with aliases and bare names) → grids."""

    def __init__(self, grids: Iterable[tuple[GridHit, Iterable[str]]]) -> None:
        self.grids: list[GridHit] = []
        self._term_grids: dict[str, list[int]] = defaultdict(list)
        for number, (grid, terms) in enumerate(grids):
            self.grids.append(grid)
            for term in dict.fromkeys(t for t in terms if t):
                self._term_grids[term].append(number)
        self._char_terms: dict[str, set[str]] = defaultdict(set)
        for term in self._term_grids:
            for char in term:
                self._char_terms[char].add(term)

    @classmethod
    def of(cls, registry: Registry | None) -> GridIndex:
        """The index of ``registry``'s grids (empty without a registry)."""
        if registry is None:
            return cls(())
        entries = []
        for grid in sorted(registry.of_level("grid"), key=lambda unit: unit.id):
            street = registry.ancestor(grid.id, "street")
            community = registry.ancestor(grid.id, "community")
            hit = GridHit(grid.id, grid.name, community.name if community else "",
                          street.name if street else "", "")  # fmt: skip
            entries.append((hit, [*_names(grid), *_names(community), *_names(street)]))
        return cls(entries)

    def search(self, query: str, limit: int = 20) -> tuple[list[GridHit], int]:
        """The grids ``query`` may mean, best match first (exact, then at the start, then
        inside a name; shorter names first; then by id), at most ``limit``; and how many grids
        matched in all."""
        query = "".join(query.split())
        if not query:
            return [], 0
        postings = [self._char_terms.get(char, set()) for char in set(query)]
        matched = [
            (
                EXACT if term == query else PREFIX if term.startswith(query) else INSIDE,
                len(term),
                term,
            )
            for term in min(postings, key=len)
            if query in term
        ]
        # each term has a grid: the best `limit` terms mostly fill the answer; all, if not
        hits = self._best(heapq.nsmallest(limit, matched), limit)
        if len(hits) < limit and len(matched) > limit:
            hits = self._best(sorted(matched), limit)
        total = len(set().union(*(self._term_grids[term] for _, _, term in matched)))
        return hits, total

    def _best(self, ranked: list[tuple[int, int, str]], limit: int) -> list[GridHit]:
        """The first ``limit`` grids of the terms ``ranked`` (a grid's first term is its best)."""
        hits: dict[int, GridHit] = {}
        for _, _, term in ranked:
            for number in self._term_grids[term]:
                if len(hits) == limit:
                    return list(hits.values())
                if number not in hits:
                    hits[number] = _matched(self.grids[number], term)
        return list(hits.values())


def _names(unit: Unit | None) -> list[str]:
    if unit is None:
        return []
    return [unit.id, unit.name, *unit.aliases, *([unit.bare_name] if unit.bare_name else [])]


def _matched(grid: GridHit, term: str) -> GridHit:
    return GridHit(grid.id, grid.name, grid.community_name, grid.street_name, term)
