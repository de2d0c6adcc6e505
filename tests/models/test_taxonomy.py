"""Tests for wangge.models.taxonomy: loading the tree, keyword selection, keyword features."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from wangge.errors import DataError
from wangge.models.taxonomy import (
    TaxonomyKeywordFeatures,
    TaxonomyNode,
    category_keywords,
    load_taxonomy,
)


def two_char_segment(text: str) -> list[str]:
    """A predictable stand-in for jieba: split a name into two-character pieces."""
    return [text[i : i + 2] for i in range(0, len(text), 2)]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- load_taxonomy --------------------------------------------------------------------------
def test_load_taxonomy_shipped_file() -> None:
    nodes = load_taxonomy()
    assert len(nodes) == 517
    assert len({node.level1 for node in nodes}) == 15
    assert all(isinstance(node, TaxonomyNode) for node in nodes)
    assert all(node.level1 and node.level2 and node.level3 for node in nodes)
    assert nodes[0].level1 == "城乡建设"


def test_load_taxonomy_shipped_keywords_follow_data_readme() -> None:
    nodes = load_taxonomy()
    assert all(3 <= len(node.keywords) <= 12 for node in nodes)
    assert all(len(k) <= 10 and not re.search(r"\s", k) for node in nodes for k in node.keywords)
    owners: dict[str, set[str]] = defaultdict(set)
    for node in nodes:
        for keyword in node.keywords:
            owners[keyword].add(node.level1)
    assert {k for k, cats in owners.items() if len(cats) > 1} == {"公积金"}


def test_load_taxonomy_custom_csv(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "tax.csv",
        "一级分类,二级分类,三级分类,关键词\n"
        "城乡建设, 市政 ,路灯, 路灯 |灯杆||\n"
        "环境保护,噪音污染,施工噪音,\n",
    )
    nodes = load_taxonomy(path)
    assert nodes == [
        TaxonomyNode("城乡建设", "市政", "路灯", ("路灯", "灯杆")),
        TaxonomyNode("环境保护", "噪音污染", "施工噪音", ()),
    ]


def test_load_taxonomy_without_keyword_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "tax.csv", "一级分类,二级分类,三级分类\n城乡建设,市政,路灯\n")
    assert load_taxonomy(path) == [TaxonomyNode("城乡建设", "市政", "路灯", ())]


def test_load_taxonomy_accepts_bom(tmp_path: Path) -> None:
    path = tmp_path / "tax.csv"
    path.write_bytes(
        "一级分类,二级分类,三级分类,关键词\n城乡建设,市政,路灯,灯杆\n".encode("utf-8-sig")
    )
    assert load_taxonomy(path)[0].level1 == "城乡建设"


@pytest.mark.parametrize("missing", ["一级分类", "二级分类", "三级分类"])
def test_load_taxonomy_missing_column(tmp_path: Path, missing: str) -> None:
    columns = [c for c in ("一级分类", "二级分类", "三级分类", "关键词") if c != missing]
    path = write_csv(
        tmp_path / "tax.csv", ",".join(columns) + "\n" + ",".join("x" * len(columns)) + "\n"
    )
    with pytest.raises(DataError) as caught:
        load_taxonomy(path)
    assert missing in str(caught.value)
    assert caught.value.path == str(path)


def test_load_taxonomy_empty_first_level_names_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "tax.csv",
        "一级分类,二级分类,三级分类,关键词\n"
        "城乡建设,市政,路灯,灯杆\n"
        "环境保护,噪音,施工噪音,噪音\n"
        "  ,噪音,其他,扰民\n",
    )
    with pytest.raises(DataError) as caught:
        load_taxonomy(path)
    error = caught.value
    assert error.row == 4  # header is row 1
    assert error.column == "一级分类"
    assert "row 4" in str(error) and "一级分类" in str(error)


def test_load_taxonomy_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_taxonomy(tmp_path / "missing.csv")


# -- category_keywords ----------------------------------------------------------------------
NODES = [
    TaxonomyNode("城乡建设", "路灯管理", "路灯维修", ("灯杆", "亮", "井盖", "垃圾")),
    TaxonomyNode("城乡建设", "物业服务", "物业收费", ("物业费", "业委会")),
    TaxonomyNode("环境保护", "噪音污染", "施工噪音", ("夜间施工", "扰民", "垃圾")),
    TaxonomyNode("环境保护", "大气、水污染", "其他", ("油烟", "臭")),
]


@pytest.fixture(scope="module")
def keywords() -> dict[str, set[str]]:
    return category_keywords(NODES, two_char_segment)


def test_category_keywords_keeps_curated_keywords(keywords: dict[str, set[str]]) -> None:
    assert {"灯杆", "井盖", "物业费", "业委会"} <= keywords["城乡建设"]
    assert {"夜间施工", "扰民", "油烟"} <= keywords["环境保护"]


def test_category_keywords_keeps_whole_and_segmented_names(keywords: dict[str, set[str]]) -> None:
    assert {"路灯管理", "路灯维修", "路灯", "维修", "物业服务", "物业", "物业收费"} <= keywords[
        "城乡建设"
    ]
    # 、 separates name parts: each part counts, whole and segmented.
    assert {"大气", "水污染", "噪音污染", "噪音", "施工噪音", "施工"} <= keywords["环境保护"]


def test_category_keywords_drops_generic_words(keywords: dict[str, set[str]]) -> None:
    everything = set().union(*keywords.values())
    assert not everything & {"管理", "服务", "其他"}


def test_category_keywords_drops_one_character_words(keywords: dict[str, set[str]]) -> None:
    everything = set().union(*keywords.values())
    assert "亮" not in everything and "臭" not in everything
    assert all(len(word) >= 2 for word in everything)


def test_category_keywords_drops_words_of_two_categories(keywords: dict[str, set[str]]) -> None:
    assert "垃圾" not in keywords["城乡建设"] and "垃圾" not in keywords["环境保护"]
    # 噪音 comes from two nodes (噪音污染, 施工噪音) of the same category: kept.
    assert "噪音" in keywords["环境保护"]


def test_category_keywords_word_shared_through_name_and_keyword() -> None:
    nodes = [
        TaxonomyNode("交通运输", "出租车", "其他", ("网约车",)),
        TaxonomyNode("商贸旅游", "旅游", "其他", ("出租车", "导游")),
    ]
    found = category_keywords(nodes, two_char_segment)
    assert "出租车" not in found["交通运输"] and "出租车" not in found["商贸旅游"]
    assert found == {"交通运输": {"网约车", "出租"}, "商贸旅游": {"旅游", "导游"}}


def test_category_keywords_shipped_taxonomy() -> None:
    import rjieba

    found = category_keywords(load_taxonomy(), rjieba.cut)
    assert len(found) == 15
    assert all(found.values())
    everything = [word for words in found.values() for word in words]
    assert len(everything) == len(set(everything))  # no word points to two categories
    assert "公积金" not in everything
    assert all(len(word) >= 2 for word in everything)


# -- TaxonomyKeywordFeatures ----------------------------------------------------------------
KEYWORDS = {"城乡建设": {"路灯", "井盖", "物业费"}, "环境保护": {"噪音", "油烟", "扰民"}}


def test_keyword_features_count_hits_per_category() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit(
        [[]], ["城乡建设", "环境保护"]
    )
    matrix = features.transform(
        [
            ["路灯", "坏", "井盖", "丢"],  # 2 hits for 城乡建设
            ["噪音", "扰民", "噪音"],  # 3 hits for 环境保护
            ["路灯", "噪音"],  # 1 and 1
            ["天气", "不错"],  # none
            [],
        ]
    ).toarray()
    expected = np.log1p([[2, 0], [0, 3], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_allclose(matrix, expected)


def test_keyword_features_match_keyword_split_across_tokens() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit(
        [[]], ["城乡建设", "环境保护"]
    )
    # jieba split 物业费 into 物业 / 费: the tokens joined without spaces still contain it.
    matrix = features.transform([["物业", "费", "上涨"], ["油", "烟", "扰", "民"]]).toarray()
    np.testing.assert_allclose(matrix, np.log1p([[1, 0], [0, 2]]))


def test_keyword_features_unknown_categories_get_zero_columns() -> None:
    labels = ["环境保护", "城乡建设", "纪检监察", "环境保护"]
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit([[]] * 4, labels)
    assert list(features.categories_) == ["城乡建设", "环境保护", "纪检监察"]
    matrix = features.transform([["路灯", "噪音", "贪污"]]).toarray()
    np.testing.assert_allclose(matrix, np.log1p([[1, 1, 0]]))


def test_keyword_features_categories_not_in_labels_are_ignored() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit(
        [[]], ["城乡建设", "民政"]
    )
    assert list(features.categories_) == ["城乡建设", "民政"]
    matrix = features.transform([["噪音", "扰民", "路灯"]]).toarray()
    np.testing.assert_allclose(matrix, np.log1p([[1, 0]]))


def test_keyword_features_columns_follow_sorted_labels() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit(
        [[]] * 3, ["环境保护", "城乡建设", "环境保护"]
    )
    assert list(features.get_feature_names_out()) == ["taxonomy=城乡建设", "taxonomy=环境保护"]
    row = features.transform([["噪音"]]).toarray()[0]
    assert row[0] == 0 and row[1] > 0


def test_keyword_features_without_labels_use_keyword_categories() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS).fit([["路灯"]])
    assert list(features.categories_) == ["城乡建设", "环境保护"]


@pytest.mark.parametrize("weight", [0.3, 1.0, 2.5])
def test_keyword_features_weight_scales_values(weight: float) -> None:
    tokens = [["路灯", "井盖", "噪音"]]
    labels = ["城乡建设", "环境保护"]
    unit = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=1.0).fit([[]], labels)
    scaled = TaxonomyKeywordFeatures(keywords=KEYWORDS, weight=weight).fit([[]], labels)
    np.testing.assert_allclose(
        scaled.transform(tokens).toarray(), weight * unit.transform(tokens).toarray()
    )


def test_keyword_features_default_weight() -> None:
    features = TaxonomyKeywordFeatures(keywords=KEYWORDS).fit([[]], ["城乡建设", "环境保护"])
    np.testing.assert_allclose(features.transform([["路灯"]]).toarray(), [[0.3 * np.log(2), 0]])


@pytest.mark.parametrize("keywords", [None, {}, {"民政": {"低保"}}])
def test_keyword_features_without_matching_keywords_are_zero(keywords) -> None:  # type: ignore[no-untyped-def]
    features = TaxonomyKeywordFeatures(keywords=keywords).fit([[]], ["城乡建设", "环境保护"])
    assert features.n_keywords_ == 0
    matrix = features.transform([["路灯", "噪音"], []])
    assert matrix.shape == (2, 2) and matrix.nnz == 0


def test_keyword_features_pickle_round_trip() -> None:
    import pickle

    features = TaxonomyKeywordFeatures(keywords=KEYWORDS).fit([[]], ["城乡建设", "环境保护"])
    restored = pickle.loads(pickle.dumps(features))
    tokens = [["路灯", "噪音", "噪音"], ["物业", "费"]]
    np.testing.assert_array_equal(
        restored.transform(tokens).toarray(), features.transform(tokens).toarray()
    )


# -- packaging ------------------------------------------------------------------------------
def test_taxonomy_runtime_dependency_declared(repo_root: Path) -> None:
    # taxonomy.py imports ``ahocorasick``: a fresh ``pip install -e .`` (scripts/setup.sh, CI)
    # must bring it in, or wangge.models cannot be imported.
    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()
        for requirement in project["dependencies"]
    }
    assert "pyahocorasick" in declared
