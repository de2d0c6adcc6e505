"""The responsibility catalogue: which department handles each kind of matter (事项清单).

A 12345 centre forwards by a catalogue of matters: each matter has one responsible
department, sometimes co-handlers, and local exceptions. A district directory may hold it as
``matters.csv`` (UTF-8, header row), one row a matter:

``一级分类,二级分类,三级分类`` — the matter, named as in the category taxonomy
    (``data/taxonomy.csv``) or, for matters the taxonomy lacks (欠薪, 宅基地 …), named anew
    under one of its first-level categories (or 其他) with the optional ``关键词`` column
    (``|``-separated words a message of the matter contains);
``department`` — the responsible department, a ``department`` of ``departments.csv`` or
    ``{street}`` (the street or town where the matter is, 属地);
``co_handlers`` — departments that may share it, ``|``-separated;
``exceptions`` — streets whose matter goes elsewhere, ``街道=部门|街道=部门`` (names or codes
    of ``units.csv``' streets);
``note`` — the basis, for the people who maintain the file.

:func:`validate_matters` lists every problem (unknown departments or streets, malformed
exceptions, a matter twice, a matter without a department, taxonomy matters the catalogue
lacks); :meth:`MatterCatalogue.load` raises the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wangge.errors import DataError
from wangge.models.departments import STREET_PLACEHOLDER, street_keys
from wangge.models.taxonomy import TaxonomyNode
from wangge.nlp.registry import Problem, Registry, read_csv_rows, split_names

MATTERS_FILE = "matters.csv"
MATTER_COLUMNS = ("一级分类", "二级分类", "三级分类", "department", "co_handlers", "exceptions")
# The first-level name of matters outside the taxonomy's categories.
OTHER_CATEGORY = "其他"


@dataclass(frozen=True)
class Matter:
    """One row of the catalogue."""

    level1: str
    level2: str
    level3: str
    department: str
    co_handlers: tuple[str, ...]
    exceptions: tuple[tuple[str, str], ...]  # (street code, department)
    keywords: tuple[str, ...]
    note: str
    row: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.level1, self.level2, self.level3)

    @property
    def name(self) -> str:
        """The matter as staff read it: 城乡建设 / 物业管理 / 物业服务."""
        return " / ".join(level for level in self.key if level)

    def department_in(self, street: str | None) -> str:
        """The responsible department in ``street`` (a street code; None: not known)."""
        return dict(self.exceptions).get(street or "", self.department)


class MatterCatalogue:
    """A district's matters, looked up by their taxonomy path."""

    def __init__(self, matters: Iterable[Matter]) -> None:
        self.matters = {matter.key: matter for matter in matters}

    def __len__(self) -> int:
        return len(self.matters)

    def get(self, level1: str, level2: str = "", level3: str = "") -> Matter | None:
        """The matter of a taxonomy path, else of its second-level parent."""
        return self.matters.get((level1, level2, level3)) or self.matters.get((level1, level2, ""))

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        registry: Registry,
        departments: Iterable[str],
        taxonomy: Sequence[TaxonomyNode] = (),
    ) -> MatterCatalogue | None:
        """The catalogue of ``directory``'s ``matters.csv`` (None when it has none); the first
        problem :func:`validate_matters` finds is raised as a :class:`DataError`."""
        path = Path(directory) / MATTERS_FILE
        if not path.exists():
            return None
        matters, problems = _read(path, registry, set(departments), taxonomy)
        if problems:
            raise problems[0].as_error()
        return cls(matters)


def validate_matters(
    directory: str | Path,
    *,
    registry: Registry,
    departments: Iterable[str],
    taxonomy: Sequence[TaxonomyNode] = (),
) -> list[Problem]:
    """Every problem of ``directory``'s ``matters.csv`` (none when there is no such file)."""
    path = Path(directory) / MATTERS_FILE
    if not path.exists():
        return []
    try:
        return _read(path, registry, set(departments), taxonomy)[1]
    except DataError as error:
        return [Problem(error.path or str(path), error.row, error.column, error.message)]


def _read(
    path: Path, registry: Registry, known: set[str], taxonomy: Sequence[TaxonomyNode]
) -> tuple[list[Matter], list[Problem]]:
    streets = street_keys(registry)
    known = known | {STREET_PLACEHOLDER}
    matters: list[Matter] = []
    problems: list[Problem] = []
    first_row: dict[tuple[str, str, str], int] = {}
    for number, values in read_csv_rows(path, MATTER_COLUMNS):

        def problem(column: str | None, message: str, row: int = number) -> None:
            problems.append(Problem(str(path), row, column, message))

        key = (values["一级分类"], values["二级分类"], values["三级分类"])
        if not key[0] or not key[1]:
            problem(
                "二级分类" if key[0] else "一级分类", "a matter needs its first and second level"
            )
            continue
        if key in first_row:
            problem("三级分类", f"{' / '.join(filter(None, key))} is already row {first_row[key]}")
            continue
        first_row[key] = number
        department = values["department"]
        if not department:
            problem("department", "a matter needs its responsible department")
        elif department not in known:
            problem("department", f"{department!r} is not in departments.csv")
        co_handlers = split_names(values["co_handlers"])
        for name in co_handlers:
            if name not in known:
                problem("co_handlers", f"{name!r} is not in departments.csv")
        exceptions = []
        for item in split_names(values["exceptions"]):
            street, _, other = (part.strip() for part in item.partition("="))
            if not street or not other:
                problem("exceptions", f"{item!r} is not 街道=部门")
            elif street not in streets:
                problem("exceptions", f"unknown street {street!r} in this district")
            elif other not in known:
                problem("exceptions", f"{other!r} is not in departments.csv")
            else:
                exceptions.append((streets[street].id, other))
        matters.append(
            Matter(*key, department, co_handlers, tuple(exceptions),
                   split_names(values.get("关键词", "")), values.get("note", ""), number)
        )  # fmt: skip
    listed = set(first_row)
    for node in taxonomy:
        key = (node.level1, node.level2, node.level3)
        if key not in listed:
            problems.append(
                Problem(
                    str(path), None, None, f"no row for the taxonomy's matter {' / '.join(key)}"
                )
            )
    return matters, problems


@dataclass(frozen=True)
class MatterScore:
    """A matter a message may be about: how probable, and the words that say so."""

    matter: Matter
    probability: float
    keywords: tuple[str, ...]


# A first-level category's probability counts from this floor: a matter whose words are in the
# text stays possible when the category model doubts its category.
CATEGORY_FLOOR = 0.15
# The prior of matters whose first level the category model does not predict (政法, 民政,
# 其他 …) and of every matter when no category probabilities are given.
UNKNOWN_CATEGORY_PRIOR = 0.15
# Added to the matched matters' total before normalising: one weak match is not a certainty.
SMOOTHING = 0.5


class MatterMatcher:
    """Which matters of a catalogue a message is about, without labels at that level.

    A matter's words are its taxonomy keywords and its own ``关键词``; each word found in a
    message counts 1 / (the number of matters that have it), and a matter's score is that sum
    times the category model's probability of its first level (from :data:`CATEGORY_FLOOR`;
    0 when the model predicts that category but not among the message's top ones;
    :data:`UNKNOWN_CATEGORY_PRIOR` for first levels outside ``model_categories``), normalised
    over the matters found with :data:`SMOOTHING`.
    """

    def __init__(
        self,
        catalogue: MatterCatalogue,
        taxonomy: Sequence[TaxonomyNode],
        model_categories: Iterable[str] = (),
    ) -> None:
        import ahocorasick

        self.model_categories = frozenset(model_categories)
        words: dict[tuple[str, str, str], set[str]] = {key: set() for key in catalogue.matters}
        for node in taxonomy:
            key = (node.level1, node.level2, node.level3)
            if key in words:
                words[key].update(node.keywords)
        for key, matter in catalogue.matters.items():
            words[key].update(matter.keywords)
        self.catalogue = catalogue
        self._matters_of: dict[str, list[tuple[str, str, str]]] = {}
        for key, found in words.items():
            for word in found:
                self._matters_of.setdefault(word, []).append(key)
        self._automaton = ahocorasick.Automaton()
        for word in self._matters_of:
            self._automaton.add_word(word, word)
        if self._matters_of:
            self._automaton.make_automaton()

    def match(
        self, text: str, categories: Mapping[str, float] | None = None, top_k: int = 3
    ) -> list[MatterScore]:
        """The ``top_k`` matters of ``text``, most probable first."""
        if not self._matters_of:
            return []
        found = {word for _end, word in self._automaton.iter(text)}
        raw: dict[tuple[str, str, str], float] = {}
        words: dict[tuple[str, str, str], list[str]] = {}
        for word in found:
            keys = self._matters_of[word]
            for key in keys:
                raw[key] = raw.get(key, 0.0) + 1.0 / len(keys)
                words.setdefault(key, []).append(word)
        scores = {}
        for key, value in raw.items():
            prior = UNKNOWN_CATEGORY_PRIOR
            if categories is not None and key[0] in self.model_categories:
                prior = categories.get(key[0], 0.0)
            scores[key] = value * (prior + CATEGORY_FLOOR)
        total = sum(scores.values()) + SMOOTHING
        ranked = sorted(scores.items(), key=lambda item: -item[1])[:top_k]
        return [
            MatterScore(self.catalogue.matters[key], score / total, tuple(sorted(words[key])))
            for key, score in ranked
        ]
