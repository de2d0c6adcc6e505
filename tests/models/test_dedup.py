"""The duplicate detector: repeats, rewordings, same template elsewhere, short texts, limits."""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from wangge.models.dedup import (
    ENCODER_THRESHOLD,
    ENCODER_WEIGHTS,
    ENTITY_CHARS,
    LEXICAL_THRESHOLD,
    LEXICAL_WEIGHTS,
    SKETCH_DIM,
    TITLE_CHARS,
    DedupMessage,
    DuplicateDetector,
    PairWeights,
    dedup_text,
    entity_relation,
    heat,
    lexical_sketches,
    tagged_entities,
)
from wangge.nlp.fields import normalized
from wangge.nlp.places import shared_broad

T0 = datetime(2024, 5, 1, 9, 0)
TOPICS = {"垃圾": 0, "噪音": 1, "吵": 1, "停车": 2, "路灯": 3}


class TopicEncoder:
    """A stand-in for a sentence encoder: texts about the same topic get the same direction."""

    dim = 8

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.full((len(texts), self.dim), 0.01, dtype=np.float32)
        for row, text in enumerate(texts):
            for word, axis in TOPICS.items():
                if word in text:
                    vectors[row, axis] = 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def message(id_: str, title: str, content: str, days: float = 0, **extra: object) -> DedupMessage:
    """A message as the pipeline hands it to the detector: its texts normalised."""
    return DedupMessage(
        id_,
        normalized(title),
        normalized(content),
        T0 + timedelta(days=days),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture()
def detector() -> DuplicateDetector:
    return DuplicateDetector(TopicEncoder())


def test_an_exact_repeat_joins_the_first_report(detector: DuplicateDetector) -> None:
    text = "金城花园小区东门口的垃圾堆了好几天没人清理，天热了臭气熏天，请尽快处理。"
    first, second = detector.add_many(
        [message("a", "金城花园垃圾没人清理", text), message("b", "金城花园垃圾没人清理", text, 3)]
    )
    assert (first.case_id, first.duplicate_of) == ("a", None)
    assert (second.case_id, second.duplicate_of, second.score) == ("a", "a", 1.0)
    assert second.evidence["closest"] == "a" and second.evidence["jaccard"] == 1.0


def test_a_reworded_report_of_the_same_place_joins(detector: DuplicateDetector) -> None:
    detector.add_many(
        [
            message(
                "a",
                "金城花园垃圾没人清理",
                "金城花园小区东门口的垃圾堆了好几天没人清理，臭气熏天。",
            )
        ]
    )
    [decision] = detector.add_many(
        [
            message(
                "b",
                "金城花园门口垃圾成山",
                "金城花园东门外面垃圾已经一个星期没人来收了，味道很大，苍蝇很多。",
                5,
            )
        ]
    )
    assert decision.case_id == "a" and decision.duplicate_of == "a"
    assert decision.evidence["entities"] == "overlap" and decision.evidence["cosine"] > 0.99
    assert decision.evidence["jaccard"] < 0.5  # not a near duplicate: the embedding found it


@pytest.mark.parametrize("encoder", [TopicEncoder(), None], ids=["encoder", "lexical"])
def test_the_same_template_at_another_compound_is_another_case(
    encoder: TopicEncoder | None,
) -> None:
    template = "{}小区物业乱收停车费，每个月三百元，业主多次反映没有结果，请相关部门查处。"
    first, second = DuplicateDetector(encoder).add_many(
        [
            message("a", "金城花园物业乱收停车费", template.format("金城花园")),
            message("b", "银河家园物业乱收停车费", template.format("银河家园"), 1),
        ]
    )
    assert second.case_id == "b" and second.duplicate_of is None
    assert any("different places or organisations" in b for b in second.evidence["blocked"])


def test_short_texts_match_only_exactly_without_an_encoder() -> None:
    detector = DuplicateDetector(None, entities=False)
    decisions = detector.add_many(
        [
            message("a", "", "路灯坏了"),
            message("b", "", "路灯坏了", 1),
            message("c", "", "路灯不亮", 2),
        ]
    )
    assert [d.case_id for d in decisions] == ["a", "a", "c"]


def test_time_window_places_and_categories_stop_merges() -> None:
    text = "幸福路与人民路交叉口的红绿灯坏了三天，早晚高峰非常堵，请尽快派人维修。"
    detector = DuplicateDetector(None, entities=False, window_days=30)
    decisions = detector.add_many(
        [
            message("a", "红绿灯坏了", text, place="330109001001"),
            message("b", "红绿灯坏了", text, 10, place="330109001"),  # street of a: nested, ok
            message("c", "红绿灯坏了", text, 11, place="330109002207"),  # another community
            message("d", "红绿灯坏了", text, 200),  # both cases silent for months
        ]
    )
    assert [d.case_id for d in decisions] == ["a", "a", "c", "d"]
    assert any("different places" in b for b in decisions[2].evidence["blocked"])
    confident = DuplicateDetector(None, entities=False)
    first, second = confident.add_many(
        [
            message("a", "红绿灯坏了", text, category="交通运输", category_confident=True),
            message("b", "红绿灯坏了", text, 1, category="城乡建设", category_confident=True),
        ]
    )
    assert second.case_id == "b"


def test_ids_must_be_new_and_query_does_not_index(detector: DuplicateDetector) -> None:
    detector.add_many([message("a", "垃圾", "小区垃圾桶满了没人清理，臭气熏天")])
    assert detector.query(message("x", "垃圾", "小区垃圾桶满了没人清理，臭气熏天")).case_id == "a"
    assert len(detector) == 1
    with pytest.raises(ValueError, match="already indexed"):
        detector.add_many([message("a", "再来", "同一个编号")])


def test_lac_runs_only_for_pairs_its_entities_could_decide(detector: DuplicateDetector) -> None:
    garbage = "金城花园小区东门口的垃圾堆了好几天没人清理，臭气熏天。"
    first, unrelated, reworded = (
        message("a", "金城花园垃圾没人清理", garbage),
        message("b", "路灯坏了", "滨江路的路灯晚上不亮，已经一个星期了。", 1),
        message("c", "金城花园门口垃圾堆积", "金城花园东门的垃圾好几天没人来清理了。", 2),
    )
    detector.add_many([first, unrelated])
    features = detector.features([reworded])
    assert features[0].entities is None
    assert detector.query(reworded, features[0]).duplicate_of == "a"
    assert features[0].entities is not None and "金城花园" in "".join(features[0].entities)
    # The lamp report was never close enough to anything for its places to matter.
    assert detector._rows[1].features.entities is None


def test_lac_and_title_grams_read_the_start_of_a_long_title_only(
    detector: DuplicateDetector,
) -> None:
    long = message("a", "金城花园" + "垃圾没人清理" * 3000, "东门口的垃圾" * 3000)
    features = detector.features([long])[0]
    assert features.opening == long.title[:ENTITY_CHARS] + "。" + long.content[:ENTITY_CHARS]
    assert features.title == dedup_text(long.title[:TITLE_CHARS], "")  # its 3-grams compared


def test_bulk_index_equals_one_by_one_and_keeps_vectors(detector: DuplicateDetector) -> None:
    texts = ["小区垃圾桶满了没人清理，臭气熏天", "夜里工地施工噪音太吵睡不着", "路灯坏了一个星期"]
    batch = [message(str(i), t[:4], t, i) for i, t in enumerate(texts)]
    detector.index(batch, ["0", "1", "0"], detector.features(batch))
    assert len(detector) == 3
    np.testing.assert_allclose(detector.vector("1"), TopicEncoder().encode(["夜里工地"])[0])
    repeat = detector.query(message("x", "夜里工地", texts[1], 5))
    assert (repeat.duplicate_of, repeat.case_id) == ("1", "1")
    with pytest.raises(ValueError, match="already indexed"):
        detector.index(batch[:1], ["0"], detector.features(batch[:1]))


def test_a_saved_hnsw_graph_is_restored_for_the_same_messages_only(tmp_path: Path) -> None:
    texts = ["小区垃圾桶满了没人清理，臭气熏天", "夜里工地施工噪音太吵睡不着", "路灯坏了一个星期"]
    batch = [message(str(i), t[:4], t, i) for i, t in enumerate(texts)]
    saved = DuplicateDetector(TopicEncoder())
    saved.index(batch, ["0", "1", "2"], saved.features(batch))
    saved.save_ann(tmp_path / "graph.hnsw")

    restored = DuplicateDetector(TopicEncoder())
    assert restored.restore_ann(tmp_path / "graph.hnsw", ["0", "1", "2", "3"]) == 3
    more = [*batch, message("3", "停车难", "小区停车位被外来车辆占用", 4)]
    restored.index(more, ["0", "1", "2", "3"], restored.features(more))
    np.testing.assert_allclose(restored.vector("1"), saved.vector("1"))  # from the graph
    np.testing.assert_allclose(restored.vector("3"), TopicEncoder().encode(["停车难"])[0])
    assert restored.query(message("x", "夜里工地", texts[1], 5)).duplicate_of == "1"
    # Another store (other ids), or a detector that already indexed, gets no graph.
    assert (
        DuplicateDetector(TopicEncoder()).restore_ann(tmp_path / "graph.hnsw", ["9", "8", "7"]) == 0
    )
    assert restored.restore_ann(tmp_path / "graph.hnsw", ["0", "1", "2"]) == 0
    assert DuplicateDetector(TopicEncoder()).restore_ann(tmp_path / "none.hnsw", ["0"]) == 0


def test_entities_drop_bare_city_and_district_names() -> None:
    tagged = [
        ("A市", "LOC"),
        ("A3区", "LOC"),
        ("金城花园", "LOC"),
        ("物业公司", "ORG"),
        ("路", "n"),
    ]
    assert tagged_entities(tagged) == frozenset({"金城花园", "物业公司"})


def test_heat_grows_with_reporters_and_fades_with_time() -> None:
    assert heat(10, 8, 0, 0, 0) > heat(10, 1, 0, 0, 0) > heat(1, 1, 0, 0, 0)
    assert heat(10, 8, 50, 0, 0) > heat(10, 8, 0, 0, 0)
    assert heat(10, 8, 0, 0, 30) == pytest.approx(heat(10, 8, 0, 0, 0) / 2)


# -- without an encoder: the lexical mode ---------------------------------------------------

GARBAGE = message(
    "a",
    "金城花园小区垃圾没人清理",
    "金城花园小区的垃圾堆了好几天没人清理，天气热了臭气熏天，苍蝇蚊子很多，请环卫部门尽快处理。",
)
GARBAGE_REWORDED = message(
    "b",
    "反映金城花园垃圾堆积问题",
    "我是金城花园的业主，小区里垃圾已经堆积一个星期了，一直没有人来清理，气味很大，苍蝇很多，"
    "希望有关部门尽快派人清运。",
    2,
)


def test_each_mode_has_its_own_weights_and_threshold() -> None:
    lexical = DuplicateDetector(None, entities=False)
    assert (lexical.weights, lexical.threshold) == (LEXICAL_WEIGHTS, LEXICAL_THRESHOLD)
    encoded = DuplicateDetector(TopicEncoder(), entities=False)
    assert (encoded.weights, encoded.threshold) == (ENCODER_WEIGHTS, ENCODER_THRESHOLD)
    assert LEXICAL_WEIGHTS.lexical_cosine > 0 and LEXICAL_WEIGHTS.cosine == 0
    assert DuplicateDetector(None, threshold=0.0).threshold == 0.0


def test_lexical_sketches_ignore_masks_digits_and_codes() -> None:
    body = "本人电话{}，住{}区，想咨询社保卡在哪里办理，需要什么材料。"
    masked = dedup_text("咨询社保卡办理", body.format("***********", "A3"))
    other_codes = dedup_text("咨询社保卡办理", body.format("13800001111", "K12"))
    noise = dedup_text("投诉夜间施工噪音", "电话***********，住A3区，楼下工地夜里施工到凌晨两点。")
    sketches = lexical_sketches([masked, other_codes, noise, ""])
    assert sketches.shape == (4, SKETCH_DIM)
    np.testing.assert_allclose(np.linalg.norm(sketches[:3], axis=1), 1.0, rtol=1e-5)
    assert float(sketches[0] @ sketches[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(sketches[0] @ sketches[2]) < 0.2  # the masks and codes they share do not count
    assert not sketches[3].any()


def test_lexical_sketches_hash_each_2gram_by_the_crc32_of_its_utf8_bytes() -> None:
    """The sketches are those of hashing each 2-gram's UTF-8 bytes with zlib's CRC-32, for
    characters of one to four UTF-8 bytes."""
    rng = random.Random(0)
    ranges = [(0x21, 0x7E), (0xA0, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    texts = ["路灯坏了", "", "灯", "é路🙂灯Ω", "A3区****电话"]
    texts += [
        "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 30)))
        for _ in range(200)
    ]
    expected = np.zeros((len(texts), SKETCH_DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        kept = re.sub(r"[A-Za-z0-9*]+", "", text)
        for i in range(len(kept) - 1):
            code = zlib.crc32(kept[i : i + 2].encode("utf-8"))
            expected[row, code % SKETCH_DIM] += 1.0 if code >> 31 else -1.0
    expected /= np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    np.testing.assert_array_equal(lexical_sketches(texts), expected)


def test_without_an_encoder_a_reworded_report_joins() -> None:
    detector = DuplicateDetector(None)
    first, second = detector.add_many([GARBAGE, GARBAGE_REWORDED])
    assert (second.case_id, second.duplicate_of) == ("a", "a")
    # Too few common 3-grams for the MinHash index: the sketches' HNSW index found it.
    assert second.evidence["jaccard"] < 0.15 and second.evidence["lexical_cosine"] > 0.3
    assert second.evidence["cosine"] is None and detector.vector("a") is None


def test_without_an_encoder_other_problems_sharing_masked_numbers_stay_apart() -> None:
    masks = "联系电话***********，身份证号******************，"
    detector = DuplicateDetector(None, entities=False)
    decisions = detector.add_many(
        [
            GARBAGE,
            message("c", "咨询社保卡办理", masks + "想咨询社保卡在哪里办理，需要什么材料。", 1),
            message("d", "投诉夜间施工噪音", masks + "楼下工地每天夜里施工到凌晨两点。", 2),
            message("e", "金城花园垃圾堆积", GARBAGE.content, 3),
        ]
    )
    assert [d.case_id for d in decisions] == ["a", "c", "d", "a"]


def test_a_snapshot_of_sketches_is_not_restored_into_a_detector_with_an_encoder(
    tmp_path: Path,
) -> None:
    class SketchSizedEncoder(TopicEncoder):
        dim = SKETCH_DIM  # same size as the sketches: only the recorded space tells them apart

    texts = ["小区垃圾桶满了没人清理，臭气熏天", "夜里工地施工噪音太吵睡不着"]
    batch = [message(str(i), t[:4], t, i) for i, t in enumerate(texts)]
    lexical = DuplicateDetector(None, entities=False)
    lexical.index(batch, ["0", "1"], lexical.features(batch))
    lexical.save_ann(tmp_path / "graph.hnsw")
    assert DuplicateDetector(None).restore_ann(tmp_path / "graph.hnsw", ["0", "1"]) == 2
    encoded = DuplicateDetector(SketchSizedEncoder())
    assert encoded.restore_ann(tmp_path / "graph.hnsw", ["0", "1"]) == 0


def test_names_written_a_little_differently_are_one_place() -> None:
    def relation(a: set[str], b: set[str]) -> int:
        return entity_relation(frozenset(a), frozenset(b))

    assert relation({"区晟通牡丹舸物业"}, {"市晟通牡丹舸", "物价局"}) == 1
    assert relation({"西地省师大星城实验学校"}, {"西地省师大附中星城实验学校"}) == 1
    assert relation({"金城花园"}, {"金城花园小区"}) == 1
    # Only generic words in common: two places.
    assert relation({"金城花园"}, {"银河家园"}) == -1
    assert relation({"西地省聚捷飞迈网络有限公司"}, {"西地省聚汇企信息科技有限公司"}) == -1
    assert relation({"金城花园"}, set()) == 0


def test_with_an_encoder_the_sketches_still_find_a_rewording_under_another_title(
    tmp_path: Path,
) -> None:
    # The reworded title is about parking: its embedding is closer to the ten fillers' (parking
    # and street lamps) than to the first report's (garbage), so the embeddings' ten nearest
    # neighbours miss that report; the sketches' index finds it.
    fillers = [
        message(
            f"f{i}", f"停车和路灯第{i}件事", f"想问一下关于第{i}件事情的办理流程和时间安排。", 1
        )
        for i in range(10)
    ]
    reworded = replace(GARBAGE_REWORDED, title="反映金城花园停车的问题")
    # Weights under which the pair joins once it is a candidate (what this test is about):
    # its sketches' cosine is 0.31 and both name 金城花园.
    weights = PairWeights(lexical_cosine=8.0, entities_overlap=2.0, bias=-4.0)
    detector = DuplicateDetector(TopicEncoder(), weights=weights, threshold=0.5)
    detector.add_many([GARBAGE, *fillers])
    [decision] = detector.add_many([reworded])
    assert (decision.case_id, decision.duplicate_of) == ("a", "a")
    assert decision.evidence["cosine"] < 0.5 and decision.evidence["jaccard"] < 0.15
    # Both graphs are saved, and a snapshot without the sketches' graph is not restored.
    detector.save_ann(tmp_path / "graph.hnsw")
    ids = ["a", *(f.id for f in fillers), "b"]
    assert DuplicateDetector(TopicEncoder()).restore_ann(tmp_path / "graph.hnsw", ids) == 12
    (tmp_path / "graph.hnsw.sketch").unlink()
    assert DuplicateDetector(TopicEncoder()).restore_ann(tmp_path / "graph.hnsw", ids) == 0


# -- places: only specific ones are evidence ----------------------------------------------


def test_a_town_name_in_common_is_no_overlap() -> None:
    assert entity_relation(frozenset({"星沙"}), frozenset({"星沙", "A市"})) == 0
    assert entity_relation(frozenset({"星沙", "金城花园"}), frozenset({"星沙", "银河家园"})) == -1
    assert entity_relation(frozenset({"暮云街道", "云塘路"}), frozenset({"云塘路"})) == 1
    assert shared_broad(frozenset({"星沙"}), frozenset({"星沙街道", "A市"}))
    assert not shared_broad(frozenset({"金城花园"}), frozenset({"金城花园"}))


def test_a_broad_only_overlap_no_longer_links_two_different_complaints() -> None:
    # Weights under which only a shared place lifts the pair over the threshold: a shared
    # specific place joins the two complaints, a shared town does not.
    weights = PairWeights(entities_overlap=6.0, broad_places=-0.5, bias=-3.0)
    noise = message("a", "星沙商演噪音扰民", "星沙某广场每晚商演，音响声音太大，影响休息。")
    fumes = message("b", "星沙门面油烟扰民", "星沙一门面餐馆油烟直排，居民无法开窗。", 1)

    def cases(places: list[set[str]]) -> list[str]:
        detector = DuplicateDetector(None, weights=weights, threshold=0.5)
        batch = [noise, fumes]
        features = detector.features(batch, entities=[frozenset(p) for p in places])
        return [d.case_id for d in detector.add_many(batch, features)]

    assert cases([{"星沙"}, {"星沙"}]) == ["a", "b"]
    assert cases([{"星沙", "A市"}, {"星沙街道"}]) == ["a", "b"]
    assert cases([{"星沙", "文化广场"}, {"文化广场"}]) == ["a", "a"]


def test_pair_features_carry_title_sketches_time_gap_and_broad_places() -> None:
    detector = DuplicateDetector(None)
    a = message("a", "星沙金城花园垃圾没人清理", "垃圾堆了好几天没人清理。")
    b = message("b", "星沙金城花园垃圾没人清理", "垃圾一直没人收。", 9)
    fa, fb = detector.features([a, b], entities=[frozenset({"星沙"}), frozenset({"星沙"})])
    pair = detector.pair_features(a, fa, b, fb)
    assert pair.title_lexical_cosine == pytest.approx(1.0, abs=1e-3)
    assert pair.log_days == pytest.approx(np.log1p(9))
    assert (pair.entities, pair.broad_places) == (0, True)
    assert pair.as_dict()["days"] == 9.0 and pair.as_dict()["broad_places"] is True
