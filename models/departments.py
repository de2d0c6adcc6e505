"""Department routing: which office must handle a message, from an editable routing table.

A district directory holds two files staff can edit:

``departments.csv`` — ``department,function,office_patterns,handles,street``
    Every department the table may name, the function it stands for (住建, 城管 …: the
    same function has different office names in different cities), and ``|``-separated
    patterns by which replies and documents name such an office (住房和城乡建设|住建局 …).
    The department ``{street}`` stands for the street or town a message is routed to (属地),
    or, when the place is not known, for "属地街道/镇（待定位）". A department whose optional
    ``street`` names a street (name or code) is that street's own office, as a 管委会 is of
    the functional area it governs: there ``{street}`` is that department.

``routing.csv`` — ``department,category,keywords,street,weight,note``
    A rule fires for a message when its ``category`` (if given) is among the predicted
    categories, one of its ``|``-separated ``keywords`` (if given) is in the text, and its
    ``street`` (if given, name or code) is the street the message is routed to. A category
    rule scores ``weight`` times the category's probability; a keyword rule scores ``weight``;
    a rule with both scores their product. A street's rules are its overrides: give them a
    higher weight than the district-wide rule they replace.

A district that also has a responsibility catalogue (``matters.csv``, see
:mod:`wangge.models.matters`) routes mainly by the matters of each message: the responsible
department of each of its top matters scores :data:`MATTER_WEIGHT` times the matter's
probability, each co-handler :data:`CO_HANDLER_WEIGHT` times it; of ``routing.csv`` the
street rules apply as they are, the district-wide keyword rules at :data:`RULES_BESIDE_MATTERS`
of their weight, and the category rules not at all.

A department's score combines its rules or matters (and a learned department classifier,
when the model has one) as independent evidence, ``1 - Π(1 - s)``, so two weak reasons beat
one. The top departments come back with the reasons behind each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ahocorasick

from wangge.errors import DataError
from wangge.nlp.registry import Registry, Unit, default_district_dir, read_csv_rows, split_names

if TYPE_CHECKING:
    from wangge.models.matters import MatterMatcher, MatterScore

STREET_PLACEHOLDER = "{street}"
DEPARTMENT_COLUMNS = ("department", "function", "office_patterns")
RULE_COLUMNS = ("department", "category", "keywords", "street", "weight")
# The street office when the street is not known yet: someone must still find it.
UNKNOWN_STREET = "属地街道/镇（待定位）"
# A category below this probability does not fire its rules: noise, not evidence.
MIN_CATEGORY_PROBABILITY = 0.05
# What a matter of the catalogue (matters.csv) adds to its responsible department's and its
# co-handlers' evidence, times the matter's probability (wangge.models.matters.MatterMatcher).
MATTER_WEIGHT = 0.9
CO_HANDLER_WEIGHT = 0.3
# What a district-wide keyword rule of routing.csv counts for, times its weight, in a district
# with a catalogue: a word (停电, 盗窃) that no example of the matter has still counts, but less
# than the matters (docs/benchmarks.md, the labelled department messages).
RULES_BESIDE_MATTERS = 0.3


@dataclass(frozen=True)
class Department:
    name: str
    function: str
    office_pattern: re.Pattern[str] | None
    handles: str = ""
    street: str | None = None  # the id of the street whose own office it is


@dataclass(frozen=True)
class RoutingRule:
    department: str
    category: str | None
    keywords: tuple[str, ...]
    street: str | None
    weight: float
    note: str
    row: int


@dataclass(frozen=True)
class DepartmentScore:
    """One candidate department with its score and the reasons behind it."""

    department: str
    function: str
    score: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "department": self.department,
            "score": round(self.score, 3),
            "reasons": self.reasons,
        }


class RoutingTable:
    """The departments and rules of one district, checked against its registry."""

    def __init__(
        self,
        departments: list[Department],
        rules: list[RoutingRule],
        matters: MatterMatcher | None = None,
    ) -> None:
        self.departments = {d.name: d for d in departments}
        self._offices = {d.street: d.name for d in departments if d.street is not None}
        self.rules = rules
        self.matters = matters
        self._keywords = ahocorasick.Automaton()
        for keyword in {k for rule in rules for k in rule.keywords}:
            self._keywords.add_word(keyword, keyword)
        if len(self._keywords):
            self._keywords.make_automaton()

    @classmethod
    def load(
        cls, directory: str | Path | None = None, *, registry: Registry | None = None
    ) -> RoutingTable:
        """Read ``departments.csv`` and ``routing.csv``, streets checked against ``registry``."""
        directory = Path(directory) if directory is not None else default_district_dir()
        departments_path, rules_path = directory / "departments.csv", directory / "routing.csv"
        streets = street_keys(registry) if registry is not None else None
        departments = []
        for number, values in read_csv_rows(departments_path, DEPARTMENT_COLUMNS):
            patterns = split_names(values["office_patterns"])
            if not values["department"] or not values["function"]:
                column = "department" if not values["department"] else "function"
                raise DataError(
                    "must not be empty", path=departments_path, row=number, column=column
                )
            office_of = values.get("street") or None
            if office_of is not None and streets is not None:
                if office_of not in streets:
                    raise DataError(
                        f"unknown street {office_of!r} in this district",
                        path=departments_path, row=number, column="street",
                    )  # fmt: skip
                office_of = streets[office_of].id
            departments.append(
                Department(
                    values["department"],
                    values["function"],
                    re.compile("|".join(map(re.escape, patterns))) if patterns else None,
                    values.get("handles", ""),
                    office_of,
                )
            )
        known = {d.name for d in departments}
        rules = []
        for number, values in read_csv_rows(rules_path, RULE_COLUMNS):

            def fail(column: str, message: str, row: int = number) -> DataError:
                return DataError(message, path=rules_path, row=row, column=column)

            if values["department"] not in known:
                raise fail("department", f"{values['department']!r} is not in departments.csv")
            try:
                weight = float(values["weight"])
            except ValueError:
                raise fail("weight", f"not a number: {values['weight']!r}") from None
            if not 0 < weight <= 1:
                raise fail("weight", f"must be in (0, 1], got {weight}")
            keywords = split_names(values["keywords"])
            if not values["category"] and not keywords:
                raise fail("keywords", "a rule needs a category, keywords or both")
            street = values["street"] or None
            if street is not None and streets is not None and street not in streets:
                raise fail("street", f"unknown street {street!r} in this district")
            rules.append(
                RoutingRule(
                    values["department"], values["category"] or None, keywords,
                    streets[street].id if street and streets else street, weight,
                    values.get("note", ""), number,
                )
            )  # fmt: skip
        matters = None
        if registry is not None:
            from wangge.models.matters import MatterCatalogue, MatterMatcher
            from wangge.models.taxonomy import load_taxonomy

            taxonomy = load_taxonomy()
            # Taxonomy matters the catalogue lacks are for `wangge district validate` to list;
            # routing uses the rows there are.
            catalogue = MatterCatalogue.load(directory, registry=registry, departments=known)
            if catalogue is not None:
                model_categories = {rule.category for rule in rules if rule.category}
                matters = MatterMatcher(catalogue, taxonomy, model_categories)
        return cls(departments, rules, matters)

    def functions_named(self, text: str) -> list[str]:
        """Functions of the offices ``text`` names, in order of first mention (for replies)."""
        found: list[tuple[int, str]] = []
        for department in self.departments.values():
            if department.office_pattern is not None:
                match = department.office_pattern.search(text)
                if match:
                    found.append((match.start(), department.function))
        return list(dict.fromkeys(function for _start, function in sorted(found)))

    def route(
        self,
        text: str,
        *,
        categories: Mapping[str, float] | None = None,
        street: Unit | None = None,
        learned: Mapping[str, float] | None = None,
        top_k: int = 3,
    ) -> list[DepartmentScore]:
        """The ``top_k`` departments for a message, best first, each with its reasons.

        ``text`` is normalised (:func:`wangge.nlp.fields.normalized`), ``categories`` are the
        classifier's probabilities, ``street`` the routed street, ``learned`` a department
        classifier's probabilities.
        """
        return self.route_many(
            [text], categories=[categories], streets=[street], learned=[learned], top_k=top_k
        )[0]

    def route_many(
        self,
        texts: Sequence[str],
        *,
        categories: Sequence[Mapping[str, float] | None] | None = None,
        streets: Sequence[Unit | None] | None = None,
        learned: Sequence[Mapping[str, float] | None] | None = None,
        top_k: int = 3,
    ) -> list[list[DepartmentScore]]:
        """:meth:`route` of each message (its matters are found for all at once)."""
        found = (
            self.matters.match_many(texts, categories)
            if self.matters is not None
            else [[] for _ in texts]
        )
        return [
            self._route(
                text,
                categories[index] if categories is not None else None,
                streets[index] if streets is not None else None,
                learned[index] if learned is not None else None,
                found[index],
                top_k,
            )
            for index, text in enumerate(texts)
        ]

    def _route(
        self,
        text: str,
        categories: Mapping[str, float] | None,
        street: Unit | None,
        learned: Mapping[str, float] | None,
        matters: Sequence[MatterScore],
        top_k: int,
    ) -> list[DepartmentScore]:
        present = (
            {keyword for _end, keyword in self._keywords.iter(text)}
            if len(self._keywords)
            else set()
        )
        evidence: dict[str, list[tuple[float, str]]] = {}
        for rule in self.rules:
            if rule.street is not None and (street is None or street.id != rule.street):
                continue
            beside_matters = self.matters is not None and rule.street is None
            if beside_matters and rule.category is not None:
                continue  # a matter says more than its first level
            score, reasons = rule.weight * (RULES_BESIDE_MATTERS if beside_matters else 1.0), []
            if rule.category is not None:
                probability = (categories or {}).get(rule.category, 0.0)
                if probability < MIN_CATEGORY_PROBABILITY:
                    continue
                score *= probability
                reasons.append(f"类别 {rule.category} ({probability:.2f})")
            if rule.keywords:
                matched = [k for k in rule.keywords if k in present]
                if not matched:
                    continue
                reasons.append("关键词 " + "、".join(matched[:3]))
            name = self._named(rule.department, street)
            if rule.street is not None:
                reasons.append("本街道规则")
            reason = f"{' + '.join(reasons)} → 规则第{rule.row}行 ×{rule.weight:g}"
            evidence.setdefault(name, []).append((score, reason))
        for found in matters:
            matter, probability = found.matter, found.probability
            words = f", 关键词 {'、'.join(found.keywords[:3])}" if found.keywords else ""
            why = f"事项 {matter.name} ({probability:.2f}{words}) → 事项清单第{matter.row}行"
            responsible = matter.department_in(street.id if street is not None else None)
            evidence.setdefault(self._named(responsible, street), []).append(
                (MATTER_WEIGHT * probability, why)
            )
            for other in matter.co_handlers:
                evidence.setdefault(self._named(other, street), []).append(
                    (CO_HANDLER_WEIGHT * probability, f"{why} 协办")
                )
        for name, probability in (learned or {}).items():
            if probability >= MIN_CATEGORY_PROBABILITY:
                evidence.setdefault(name, []).append((probability, f"部门模型 ({probability:.2f})"))
        scored = []
        for name, items in evidence.items():
            remaining = 1.0
            for score, _reason in items:
                remaining *= 1.0 - score
            items.sort(key=lambda item: -item[0])
            function = self._function(name, street)
            scored.append(DepartmentScore(name, function, 1.0 - remaining, [r for _s, r in items]))
        scored.sort(key=lambda d: -d.score)
        return scored[:top_k]

    def _named(self, department: str, street: Unit | None) -> str:
        """A department as a route names it: ``{street}`` becomes the routed street's office
        (the street itself, or the department that is its office)."""
        if department != STREET_PLACEHOLDER:
            return department
        if street is None:
            return UNKNOWN_STREET
        return self._offices.get(street.id, street.name)

    def _function(self, name: str, street: Unit | None) -> str:
        if name == UNKNOWN_STREET or (street is not None and name == street.name):
            return self.departments[STREET_PLACEHOLDER].function
        department = self.departments.get(name)
        return department.function if department else name


def street_keys(registry: Registry) -> dict[str, Unit]:
    """Streets by name and by code, as a rule or an exception may give either."""
    keys: dict[str, Unit] = {}
    for street in registry.of_level("street"):
        keys[street.name] = street
        keys[street.id] = street
    return keys
