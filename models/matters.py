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

An optional ``matter_examples.csv`` (``一级分类,二级分类,三级分类,example``) holds example
messages of the matters, one a row: with the matters' names and words they are what
:class:`MatterMatcher` recognises a matter by.

:func:`validate_matters` lists every problem (unknown departments or streets, malformed
exceptions, a matter twice, a matter without a department, taxonomy matters the catalogue
lacks, examples of a matter it does not have or without text); :meth:`MatterCatalogue.load`
raises the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from wangge.errors import DataError
from wangge.models.departments import STREET_PLACEHOLDER, street_keys
from wangge.models.taxonomy import TaxonomyNode
from wangge.nlp.fields import normalized
from wangge.nlp.registry import Problem, Registry, read_csv_rows, split_names

MATTERS_FILE = "matters.csv"
EXAMPLES_FILE = "matter_examples.csv"
MATTER_COLUMNS = ("一级分类", "二级分类", "三级分类", "department", "co_handlers", "exceptions")
EXAMPLE_COLUMNS = ("一级分类", "二级分类", "三级分类", "example")
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
    examples: tuple[str, ...] = ()

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
    """Every problem of ``directory``'s ``matters.csv`` and ``matter_examples.csv`` (none when
    there is no catalogue)."""
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
    matters, example_problems = _with_examples(path.parent / EXAMPLES_FILE, matters)
    problems += example_problems
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


def _with_examples(path: Path, matters: list[Matter]) -> tuple[list[Matter], list[Problem]]:
    """``matters`` with their examples from ``path`` (when there is such a file)."""
    if not path.exists():
        return matters, []
    known = {matter.key for matter in matters}
    examples: dict[tuple[str, str, str], list[str]] = {}
    problems = []
    for number, values in read_csv_rows(path, EXAMPLE_COLUMNS):
        key = (values["一级分类"], values["二级分类"], values["三级分类"])
        if key not in known:
            message = f"{' / '.join(filter(None, key))} is not a matter of {MATTERS_FILE}"
            problems.append(Problem(str(path), number, "三级分类", message))
        elif not values["example"].strip():
            problems.append(Problem(str(path), number, "example", "an example needs its text"))
        else:
            examples.setdefault(key, []).append(values["example"])
    return [replace(m, examples=tuple(examples.get(m.key, ()))) for m in matters], problems


@dataclass(frozen=True)
class MatterScore:
    """A matter a message may be about: how probable, and the matter's words it contains."""

    matter: Matter
    probability: float
    keywords: tuple[str, ...]


# How sharply similarity decides between matters: a matter's probability is the softmax of
# its profile's cosine similarity to the message divided by this (0.03: the lowest log-loss
# when each example of the shipped catalogue was predicted from the others).
TEMPERATURE = 0.03
# The prior of a matter is the category model's probability of its first level plus this
# floor: a matter whose words fit stays possible when the model doubts its category.
CATEGORY_FLOOR = 0.15
# The prior of matters whose first level the category model does not predict (政法, 民政,
# 其他 …) and of every matter when no category probabilities are given.
UNKNOWN_CATEGORY_PRIOR = 0.15


class MatterMatcher:
    """Which matters of a catalogue a message is about, without messages labelled by matter.

    Each matter has a profile: the centroid of its example messages (``matter_examples.csv``)
    and its description (its names, the taxonomy's keywords, its own ``关键词``), as TF-IDF of
    character 1-2-grams of its words as the category model cuts them
    (:class:`~wangge.nlp.segment.Tokenizer`, the shipped stop words). A message's matters are
    the softmax over matters of ``cosine(message, profile) / TEMPERATURE + log(prior)``, the
    prior coming from the category model (:data:`CATEGORY_FLOOR`,
    :data:`UNKNOWN_CATEGORY_PRIOR` for first levels outside ``model_categories``). The
    matter's words found in the message are returned as its evidence.
    """

    def __init__(
        self,
        catalogue: MatterCatalogue,
        taxonomy: Sequence[TaxonomyNode],
        model_categories: Iterable[str] = (),
    ) -> None:
        import ahocorasick
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        from wangge.models.features import CharNgramVectorizer
        from wangge.nlp.segment import Tokenizer

        self.catalogue = catalogue
        self.model_categories = frozenset(model_categories)
        self._keys = list(catalogue.matters)
        words: dict[tuple[str, str, str], set[str]] = {key: set() for key in self._keys}
        for node in taxonomy:
            key = (node.level1, node.level2, node.level3)
            if key in words:
                words[key].update(node.keywords)
        documents: list[str] = []
        owners: list[int] = []
        for index, key in enumerate(self._keys):
            matter = catalogue.matters[key]
            words[key].update(matter.keywords)
            description = " ".join([matter.level2, matter.level3, *sorted(words[key])])
            for text in (description, *matter.examples):
                documents.append(normalized(text))
                owners.append(index)
        self._tokenizer = Tokenizer()
        self._vectorizer = CharNgramVectorizer(ngram_range=(1, 2), min_df=1)
        vectors = normalize(
            self._vectorizer.fit_transform([self._tokenizer(text) for text in documents])
        )
        membership = sp.csr_matrix(
            (np.ones(len(owners)), (owners, np.arange(len(owners)))),
            shape=(len(self._keys), len(owners)),
        )
        self._profiles = normalize(membership @ vectors).tocsr()
        self._level1_names = sorted({key[0] for key in self._keys})
        self._level1_of = np.array([self._level1_names.index(key[0]) for key in self._keys])
        self._words = words
        self._automaton = ahocorasick.Automaton()
        for word in {word for found in words.values() for word in found}:
            self._automaton.add_word(word, word)
        if len(self._automaton):
            self._automaton.make_automaton()

    def match(
        self, text: str, categories: Mapping[str, float] | None = None, top_k: int = 3
    ) -> list[MatterScore]:
        """The ``top_k`` matters of ``text`` (normalised), most probable first."""
        return self.match_many([text], [categories], top_k=top_k)[0]

    def match_many(
        self,
        texts: Sequence[str],
        categories: Sequence[Mapping[str, float] | None] | None = None,
        *,
        top_k: int = 3,
    ) -> list[list[MatterScore]]:
        """:meth:`match` of each text, with its category probabilities (or None), at once."""
        from sklearn.preprocessing import normalize

        if not self._keys or not texts:
            return [[] for _ in texts]
        vectors = normalize(self._vectorizer.transform([self._tokenizer(t) for t in texts]))
        logits = (vectors @ self._profiles.T).toarray() / TEMPERATURE
        logits += np.log(self._priors(categories or [None] * len(texts)))
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        results = []
        for text, row, indices in zip(texts, probabilities, best, strict=True):
            present = (
                {word for _end, word in self._automaton.iter(text)}
                if len(self._automaton)
                else set()
            )
            results.append(
                [
                    MatterScore(
                        self.catalogue.matters[self._keys[index]],
                        float(row[index]),
                        tuple(sorted(present & self._words[self._keys[index]])),
                    )
                    for index in indices
                ]
            )
        return results

    def _priors(self, categories: Sequence[Mapping[str, float] | None]) -> np.ndarray:
        """Each message's prior of each matter (messages × matters)."""

        priors = np.full((len(categories), len(self._level1_names)), UNKNOWN_CATEGORY_PRIOR)
        for row, given in enumerate(categories):
            if given is None:
                continue
            for column, level1 in enumerate(self._level1_names):
                if level1 in self.model_categories:
                    priors[row, column] = given.get(level1, 0.0) + CATEGORY_FLOOR
        return priors[:, self._level1_of]
