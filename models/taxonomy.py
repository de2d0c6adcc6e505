"""The category taxonomy and the keyword evidence it gives the classifier.

``data/taxonomy.csv`` is the three-level category tree (一级分类 / 二级分类 / 三级分类) with
keywords for each leaf. The names and keywords are knowledge that a training set of a few
thousand messages cannot hold: a message about 退役运动员 belongs to 教育文体 (体育 / 运动员权益)
even if no training message ever mentioned athletes. :class:`TaxonomyKeywordFeatures` turns that
knowledge into one feature per category, which the linear model learns to weigh from the
frequent keywords and then applies to the rare ones.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ahocorasick
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from wangge.errors import DataError

TAXONOMY_COLUMNS = ("一级分类", "二级分类", "三级分类", "关键词")
# Words of node names that say nothing about the topic on their own.
_GENERIC_NAME_WORDS = frozenset(
    "其他 管理 问题 服务 建设 政策 工作 发展 处理 标准 规划 市场 监管 行业 事业 纠纷 人员 "
    "权益 待遇 安全 补偿 安置 使用 办理 审批 手续 公共 城区 报告 资金 专项 创建 设施".split()
)
_NAME_SEPARATORS = re.compile(r"[、,，/和与及]")


Segmenter = Callable[[str], list[str]]


@dataclass(frozen=True)
class TaxonomyNode:
    level1: str
    level2: str
    level3: str
    keywords: tuple[str, ...]


def load_taxonomy(path: str | Path | None = None) -> list[TaxonomyNode]:
    """Read a taxonomy CSV (default: the shipped ``data/taxonomy.csv``)."""
    if path is None:
        text = resources.files("wangge.data").joinpath("taxonomy.csv").read_text(encoding="utf-8")
        source = "data/taxonomy.csv"
    else:
        text, source = Path(path).read_text(encoding="utf-8-sig"), str(path)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in TAXONOMY_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"missing columns {missing}; expected {list(TAXONOMY_COLUMNS)}", path=source
        )
    nodes = []
    for row_number, row in enumerate(reader, start=2):
        level1 = (row["一级分类"] or "").strip()
        if not level1:
            raise DataError(
                "empty first-level category", path=source, row=row_number, column="一级分类"
            )
        keywords = tuple(k.strip() for k in (row.get("关键词") or "").split("|") if k.strip())
        nodes.append(
            TaxonomyNode(
                level1, (row["二级分类"] or "").strip(), (row["三级分类"] or "").strip(), keywords
            )
        )
    return nodes


def _name_terms(name: str, segment: Segmenter) -> set[str]:
    terms = set()
    for part in _NAME_SEPARATORS.split(name):
        part = part.strip()
        if part:
            terms.add(part)
            terms.update(segment(part))
    return terms


def category_keywords(
    nodes: Iterable[TaxonomyNode],
    segment: Segmenter,
) -> dict[str, set[str]]:
    """Keywords of each first-level category that point to it and to no other.

    Terms come from the node names (whole and segmented) and the curated keywords. A term of
    one or fewer characters, a generic word, or one that several categories share is dropped:
    it would be evidence for nothing in particular.
    """
    terms: dict[str, set[str]] = defaultdict(set)
    for node in nodes:
        found = terms[node.level1]
        for name in (node.level2, node.level3):
            found.update(_name_terms(name, segment))
        found.update(node.keywords)
    owners: dict[str, set[str]] = defaultdict(set)
    for category, words in terms.items():
        for word in words:
            owners[word].add(category)
    return {
        category: {
            w for w in words if len(w) >= 2 and w not in _GENERIC_NAME_WORDS and len(owners[w]) == 1
        }
        for category, words in terms.items()
    }


class TaxonomyKeywordFeatures(TransformerMixin, BaseEstimator):
    """One feature per category: ``weight * log(1 + keyword hits)`` in the message.

    Input is a list of token lists (stop words already removed); keywords are matched in the
    tokens joined without spaces, so a keyword that the segmenter split still counts.
    Categories of the training labels that the taxonomy does not know get a zero column.

    Parameters
    ----------
    keywords:
        Category name -> keywords (see :func:`category_keywords`).
    weight:
        Scale of the features relative to the TF-IDF block (whose rows have unit norm).
    """

    def __init__(self, *, keywords: dict[str, set[str]] | None = None, weight: float = 0.3) -> None:
        self.keywords = keywords
        self.weight = weight

    def fit(self, tokens: Sequence[Sequence[str]], labels: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
        keywords = self.keywords or {}
        categories = sorted(set(labels)) if labels is not None else sorted(keywords)
        self.categories_ = np.asarray(categories, dtype=object)
        automaton = ahocorasick.Automaton()
        index = {c: i for i, c in enumerate(categories)}
        for category, words in keywords.items():
            if category in index:
                for word in words:
                    automaton.add_word(word, index[category])
        self.n_keywords_ = len(automaton)
        if self.n_keywords_:
            automaton.make_automaton()
        self.automaton_ = automaton
        return self

    def transform(self, tokens: Sequence[Sequence[str]]) -> sp.csr_matrix:
        check_is_fitted(self, "automaton_")
        counts = np.zeros((len(tokens), len(self.categories_)), dtype=np.float64)
        if self.n_keywords_:
            iterate = self.automaton_.iter
            for row, doc in enumerate(tokens):
                for _end, column in iterate("".join(doc)):
                    counts[row, column] += 1
        return sp.csr_matrix(self.weight * np.log1p(counts))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "categories_")
        return np.asarray([f"taxonomy={c}" for c in self.categories_], dtype=object)
