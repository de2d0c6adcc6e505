"""Tests for wangge.models.classifier.MessageClassifier on a small synthetic corpus."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from wangge.errors import TrainingError
from wangge.models.classifier import MessageClassifier, Prediction
from wangge.nlp.segment import Tokenizer

# Clearly worded messages that are not in the training corpus, with their category.
HELD_OUT = [
    ("工厂偷偷排放污水，河里的鱼都死了", "环境保护"),
    ("晚上KTV噪音太吵，影响休息", "环境保护"),
    ("公交车太少了，每天等车一个小时", "交通运输"),
    ("出租车司机乱收费还拒载", "交通运输"),
    ("学校老师乱收补课费", "教育文体"),
    ("幼儿园收费太贵了", "教育文体"),
    ("医院医生态度很差，看病排队太久", "卫生计生"),
    ("疫苗接种排队时间太长", "卫生计生"),
]
HELD_OUT_TEXTS = [text for text, _ in HELD_OUT]
HELD_OUT_LABELS = [label for _, label in HELD_OUT]


@pytest.fixture(scope="module")
def texts_labels(corpus: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
    return corpus


@pytest.fixture(scope="module")
def fitted(texts_labels: tuple[list[str], list[str]]) -> MessageClassifier:
    texts, labels = texts_labels
    return MessageClassifier().fit(texts, labels)


@pytest.fixture(scope="module")
def presegmented(texts_labels: tuple[list[str], list[str]]) -> list[str]:
    """The corpus as a cleaned, pre-segmented training file would hold it."""
    tokenizer = Tokenizer()
    return [" ".join(tokenizer(text)) for text in texts_labels[0]]


# -- fit / predict --------------------------------------------------------------------------
def test_classifier_fit_sets_learned_state(fitted: MessageClassifier) -> None:
    assert list(fitted.classes_) == ["交通运输", "卫生计生", "教育文体", "环境保护"]
    assert fitted.temperature_ > 0
    assert fitted.coef_t_.shape[1] == len(fitted.classes_)
    assert [name for name, _ in fitted.features_.transformer_list] == ["words", "chars", "taxonomy"]
    assert isinstance(fitted.tokenizer_, Tokenizer)


def test_classifier_fit_returns_self(texts_labels: tuple[list[str], list[str]]) -> None:
    model = MessageClassifier()
    assert model.fit(*texts_labels) is model


def test_classifier_predicts_held_out_raw(fitted: MessageClassifier) -> None:
    assert list(fitted.predict(HELD_OUT_TEXTS)) == HELD_OUT_LABELS


def test_classifier_predicts_training_data(
    fitted: MessageClassifier, texts_labels: tuple[list[str], list[str]]
) -> None:
    texts, labels = texts_labels
    assert np.mean(fitted.predict(texts) == np.asarray(labels)) >= 0.95
    assert fitted.score(texts, labels) >= 0.95


def test_classifier_fit_on_presegmented_predicts_raw(
    presegmented: list[str], texts_labels: tuple[list[str], list[str]], fitted: MessageClassifier
) -> None:
    model = MessageClassifier().fit(presegmented, texts_labels[1])
    assert list(model.predict(HELD_OUT_TEXTS)) == HELD_OUT_LABELS
    # Raw and pre-segmented training texts become (nearly: see test_segment's HMM case) the
    # same tokens, hence nearly the same model.
    np.testing.assert_allclose(
        model.predict_proba(HELD_OUT_TEXTS), fitted.predict_proba(HELD_OUT_TEXTS), atol=0.02
    )


def test_classifier_raw_and_presegmented_inputs_agree(
    fitted: MessageClassifier, presegmented: list[str], texts_labels: tuple[list[str], list[str]]
) -> None:
    np.testing.assert_array_equal(fitted.predict(presegmented), fitted.predict(texts_labels[0]))
    np.testing.assert_allclose(
        fitted.predict_proba(presegmented), fitted.predict_proba(texts_labels[0]), atol=0.02
    )


def test_classifier_predict_proba_rows_sum_to_one(fitted: MessageClassifier) -> None:
    texts = [*HELD_OUT_TEXTS, "", "的了吗", "完全无关的一句话"]
    proba = fitted.predict_proba(texts)
    assert proba.shape == (len(texts), len(fitted.classes_))
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_classifier_predict_proba_columns_follow_classes(fitted: MessageClassifier) -> None:
    proba = fitted.predict_proba(HELD_OUT_TEXTS)
    np.testing.assert_array_equal(
        fitted.classes_[proba.argmax(axis=1)], fitted.predict(HELD_OUT_TEXTS)
    )
    for row, label in zip(proba, HELD_OUT_LABELS, strict=True):
        assert row[list(fitted.classes_).index(label)] == row.max()


def test_classifier_tokenize_matches_tokenizer(fitted: MessageClassifier) -> None:
    assert fitted.tokenize(["小区门口的路灯坏了"]) == [Tokenizer()("小区门口的路灯坏了")]
    np.testing.assert_allclose(
        fitted.predict_proba_tokens(fitted.tokenize(HELD_OUT_TEXTS)),
        fitted.predict_proba(HELD_OUT_TEXTS),
    )


def test_classifier_fit_tokens_equals_fit(
    texts_labels: tuple[list[str], list[str]], fitted: MessageClassifier
) -> None:
    texts, labels = texts_labels
    model = MessageClassifier()
    model.fit_tokens(model.tokenize(texts), labels)
    np.testing.assert_array_equal(
        model.predict_proba(HELD_OUT_TEXTS), fitted.predict_proba(HELD_OUT_TEXTS)
    )


@pytest.mark.parametrize("method", ["predict_proba", "predict_explained"])
def test_classifier_predict_proba_before_fit_raises(method: str) -> None:
    with pytest.raises(NotFittedError):
        getattr(MessageClassifier(), method)(["路灯坏了"])


def test_classifier_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        MessageClassifier().predict(["路灯坏了"])


def test_classifier_two_classes(texts_labels: tuple[list[str], list[str]]) -> None:
    texts, labels = texts_labels
    keep = [i for i, label in enumerate(labels) if label in ("交通运输", "卫生计生")]
    model = MessageClassifier().fit([texts[i] for i in keep], [labels[i] for i in keep])
    held = [(t, y) for t, y in HELD_OUT if y in ("交通运输", "卫生计生")]
    proba = model.predict_proba([t for t, _ in held])
    assert proba.shape == (len(held), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.predict([t for t, _ in held])) == [y for _, y in held]


def test_classifier_calibrated_temperature(texts_labels: tuple[list[str], list[str]]) -> None:
    # With half of 48 messages held out there are >= 5 per category: the temperature is fitted.
    model = MessageClassifier(calibration_fraction=0.5).fit(*texts_labels)
    assert model.temperature_ != 1.0
    assert np.exp(-6) - 1e-9 <= model.temperature_ <= np.exp(3) + 1e-9
    proba = model.predict_proba(HELD_OUT_TEXTS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_[proba.argmax(axis=1)]) == HELD_OUT_LABELS


def test_classifier_small_data_keeps_temperature_one(fitted: MessageClassifier) -> None:
    # 15 % of 48 messages is too few to calibrate 4 categories (5 each needed).
    assert fitted.temperature_ == 1.0


# -- predict_explained ----------------------------------------------------------------------
def test_classifier_predict_explained_top_k_sorted(fitted: MessageClassifier) -> None:
    proba = fitted.predict_proba(HELD_OUT_TEXTS)
    for top_k in (1, 2, 3, 10):
        predictions = fitted.predict_explained(HELD_OUT_TEXTS, top_k=top_k)
        assert len(predictions) == len(HELD_OUT_TEXTS)
        for prediction, row, label in zip(predictions, proba, HELD_OUT_LABELS, strict=True):
            assert isinstance(prediction, Prediction)
            assert len(prediction.top) == min(top_k, len(fitted.classes_))
            scores = [score for _, score in prediction.top]
            assert scores == sorted(scores, reverse=True)
            assert prediction.top[0] == (prediction.category, prediction.confidence)
            assert prediction.category == label
            assert prediction.confidence == pytest.approx(row.max(), abs=1e-4)
            assert len({category for category, _ in prediction.top}) == len(prediction.top)


def test_classifier_predict_explained_full_top_sums_to_one(fitted: MessageClassifier) -> None:
    for prediction in fitted.predict_explained(HELD_OUT_TEXTS, top_k=4):
        assert sum(score for _, score in prediction.top) == pytest.approx(1.0, abs=1e-3)
        assert {c for c, _ in prediction.top} == set(fitted.classes_)


@pytest.mark.parametrize(
    ("threshold", "flagged"), [(0.0, False), (1.01, True)], ids=["never", "always"]
)
def test_classifier_needs_review_follows_threshold(
    fitted: MessageClassifier, threshold: float, flagged: bool
) -> None:
    model = pickle.loads(pickle.dumps(fitted)).set_params(review_threshold=threshold)
    predictions = model.predict_explained(HELD_OUT_TEXTS)
    assert all(p.needs_review is flagged for p in predictions)


def test_classifier_review_threshold_param_used_by_fit(
    texts_labels: tuple[list[str], list[str]],
) -> None:
    model = MessageClassifier(review_threshold=1.01, taxonomy_weight=0).fit(*texts_labels)
    assert all(p.needs_review for p in model.predict_explained(HELD_OUT_TEXTS[:2]))


def test_classifier_needs_review_set_after_fit(fitted: MessageClassifier) -> None:
    model = pickle.loads(pickle.dumps(fitted))
    proba = model.predict_proba(HELD_OUT_TEXTS).max(axis=1)
    model.review_threshold = float(np.median(proba))
    predictions = model.predict_explained(HELD_OUT_TEXTS)
    assert [p.needs_review for p in predictions] == [
        p.confidence < model.review_threshold for p in predictions
    ]
    assert any(p.needs_review for p in predictions) and not all(p.needs_review for p in predictions)


# -- errors ---------------------------------------------------------------------------------
def test_classifier_single_class_raises() -> None:
    with pytest.raises(TrainingError, match="at least two categories"):
        MessageClassifier().fit(["路灯坏了", "路灯不亮", "路灯闪"], ["城乡建设"] * 3)


def test_classifier_class_with_one_example_raises(
    texts_labels: tuple[list[str], list[str]],
) -> None:
    texts, labels = texts_labels
    with pytest.raises(TrainingError, match=r"民政 \(1\)"):
        MessageClassifier().fit([*texts, "低保申请被拒"], [*labels, "民政"])


@pytest.mark.parametrize("extra_labels", [1, -1])
def test_classifier_mismatched_lengths_raise(
    texts_labels: tuple[list[str], list[str]], extra_labels: int
) -> None:
    texts, labels = texts_labels
    labels = labels + ["环境保护"] if extra_labels > 0 else labels[:-1]
    with pytest.raises(TrainingError, match="texts but"):
        MessageClassifier().fit(texts, labels)


def test_classifier_training_error_is_wangge_error() -> None:
    from wangge.errors import WanggeError

    with pytest.raises(WanggeError) as caught:
        MessageClassifier().fit_tokens([["路灯"]], ["城乡建设"])
    assert caught.value.code == "W300"


# -- options --------------------------------------------------------------------------------
def test_classifier_taxonomy_weight_zero(texts_labels: tuple[list[str], list[str]]) -> None:
    model = MessageClassifier(taxonomy_weight=0).fit(*texts_labels)
    assert [name for name, _ in model.features_.transformer_list] == ["words", "chars"]
    assert list(model.predict(HELD_OUT_TEXTS)) == HELD_OUT_LABELS
    np.testing.assert_allclose(model.predict_proba(HELD_OUT_TEXTS).sum(axis=1), 1.0)


def test_classifier_taxonomy_features_add_one_column_per_class(fitted: MessageClassifier) -> None:
    taxonomy = dict(fitted.features_.transformer_list)["taxonomy"]
    assert list(taxonomy.categories_) == list(fitted.classes_)
    row = taxonomy.transform(fitted.tokenize(["幼儿园学费太贵，老师体罚学生"])).toarray()[0]
    assert row[list(fitted.classes_).index("教育文体")] == row.max() > 0


def test_classifier_custom_tokenizer_is_used(texts_labels: tuple[list[str], list[str]]) -> None:
    tokenizer = Tokenizer(stopwords=["噪音"])
    model = MessageClassifier(tokenizer=tokenizer, taxonomy_weight=0).fit(*texts_labels)
    assert model.tokenizer_ is tokenizer
    assert "噪音" not in model.tokenize(["KTV噪音扰民"])[0]


def test_classifier_deterministic(texts_labels: tuple[list[str], list[str]]) -> None:
    first = MessageClassifier(calibration_fraction=0.5).fit(*texts_labels)
    second = MessageClassifier(calibration_fraction=0.5).fit(*texts_labels)
    assert first.temperature_ == second.temperature_
    np.testing.assert_array_equal(
        first.predict_proba(HELD_OUT_TEXTS), second.predict_proba(HELD_OUT_TEXTS)
    )


def test_classifier_pickle_round_trip(fitted: MessageClassifier) -> None:
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        restored.predict_proba(HELD_OUT_TEXTS), fitted.predict_proba(HELD_OUT_TEXTS)
    )


# -- scikit-learn contract ------------------------------------------------------------------
def test_classifier_get_params_round_trip() -> None:
    tokenizer = Tokenizer(user_words=["陈公桥社区"])
    model = MessageClassifier(
        tokenizer=tokenizer, min_df=1, alpha=0.5, char_ngram_range=(1, 2), review_threshold=0.7
    )
    params = model.get_params()
    assert params["tokenizer"] is tokenizer
    assert params["alpha"] == 0.5 and params["min_df"] == 1 and params["review_threshold"] == 0.7
    assert MessageClassifier(**params).get_params() == params
    model.set_params(alpha=2.0, word_ngram_max=1)
    assert model.get_params()["alpha"] == 2.0 and model.word_ngram_max == 1


def test_classifier_clone(
    fitted: MessageClassifier, texts_labels: tuple[list[str], list[str]]
) -> None:
    fresh = clone(fitted)
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "classes_")
    assert {k: v for k, v in fresh.get_params().items() if k != "tokenizer"} == {
        k: v for k, v in fitted.get_params().items() if k != "tokenizer"
    }
    fresh.fit(*texts_labels)
    np.testing.assert_array_equal(
        fresh.predict_proba(HELD_OUT_TEXTS), fitted.predict_proba(HELD_OUT_TEXTS)
    )


def test_classifier_clone_with_tokenizer(texts_labels: tuple[list[str], list[str]]) -> None:
    model = MessageClassifier(tokenizer=Tokenizer(user_words=["回澜南苑"]), alpha=0.5)
    fresh = clone(model)
    assert fresh.alpha == 0.5
    assert fresh.tokenizer.user_words == ("回澜南苑",)
    assert fresh.tokenize(["回澜南苑路灯坏了"])[0][0] == "回澜南苑"


def test_classifier_evidence_comes_from_the_message(fitted: MessageClassifier) -> None:
    text = "化工厂夜里偷排污水，河水发黑发臭"
    [prediction] = fitted.predict_explained([text], evidence=3)
    assert 1 <= len(prediction.evidence) <= 3
    tokens = fitted.tokenize([text])[0]
    ngrams = set(tokens) | {" ".join(pair) for pair in zip(tokens, tokens[1:], strict=False)}
    assert set(prediction.evidence) <= ngrams


def test_classifier_evidence_can_be_switched_off(fitted: MessageClassifier) -> None:
    [prediction] = fitted.predict_explained(["化工厂夜里偷排污水"], evidence=0)
    assert prediction.evidence == []


def test_classifier_refit_uses_the_new_tokenizer(texts_labels: tuple[list[str], list[str]]) -> None:
    texts, labels = texts_labels
    model = MessageClassifier().fit(texts, labels)
    custom = Tokenizer(stopwords=["噪音"])
    model.set_params(tokenizer=custom)
    model.fit_tokens([custom(text) for text in texts], labels)
    assert model.tokenizer_ is custom
    assert "噪音" not in model.tokenize(["夜间噪音扰民"])[0]


def test_two_categories_predict_and_explain() -> None:
    texts = ["垃圾没人清理", "垃圾桶满了", "楼道垃圾很臭"]
    texts += ["工地噪音很大", "晚上施工太吵", "装修噪音"]
    labels = ["环境卫生"] * 3 + ["噪音"] * 3
    model = MessageClassifier(min_df=1, taxonomy_weight=0).fit(texts, labels)
    [prediction] = model.predict_explained(["小区垃圾没人清理"])
    assert prediction.category == "环境卫生" and "垃圾" in prediction.evidence
    assert model.predict_proba(["晚上噪音"]).shape == (1, 2)


# -- per-category review thresholds ---------------------------------------------------------
def test_per_category_review_thresholds(fitted: MessageClassifier) -> None:
    probabilities = np.zeros((2, len(fitted.classes_)))
    probabilities[0, 0] = probabilities[1, 1] = 0.6
    first, second = (str(c) for c in fitted.classes_[:2])
    model = clone(fitted).set_params(review_threshold=0.5, review_thresholds={first: 0.7})
    model.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    flags = [p.needs_review for p in model.explain(probabilities)]
    assert flags == [True, False]  # first: its own 0.7; second: the global 0.5
    shared = [p.needs_review for p in model.explain(probabilities, threshold=0.65)]
    assert shared == [True, True]  # a threshold given alone applies to every category
    assert [p.category for p in model.explain(probabilities)] == [first, second]


def test_model_pickled_before_per_category_thresholds_loads(fitted: MessageClassifier) -> None:
    old = pickle.loads(pickle.dumps(fitted))
    del old.__dict__["review_thresholds"]  # as a model saved before they existed
    old.review_threshold = 0.99
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.review_thresholds is None
    assert "review_thresholds" in loaded.get_params()
    predictions = loaded.predict_explained(["小区 路灯 坏 了"])
    assert predictions[0].needs_review == (predictions[0].confidence < 0.99)
