"""The triage pipeline: components in order, reason codes, and batches in forked processes."""

from __future__ import annotations

import multiprocessing

import pytest

from wangge.models.classifier import MessageClassifier
from wangge.models.router import MessageRouter
from wangge.pipeline import Message, ReviewReason, Triage
from wangge.pipeline.triage import MIN_MESSAGES_PER_JOB, text_chunks


@pytest.fixture(scope="module")
def model(corpus: tuple[list[str], list[str]]) -> MessageClassifier:
    texts, labels = corpus
    return MessageClassifier().fit(texts, labels)


def messages_of(texts: list[str]) -> list[Message]:
    return [Message.of(content=text) for text in texts]


def test_pipe_in_two_processes_matches_sequential(
    model: MessageClassifier, corpus: tuple[list[str], list[str]]
) -> None:
    texts, _ = corpus
    many = (texts * (2 * MIN_MESSAGES_PER_JOB // len(texts) + 1))[: 2 * MIN_MESSAGES_PER_JOB]
    sequential = Triage(model).pipe(messages_of(many), jobs=1)
    parallel = Triage(model).pipe(messages_of(many), jobs=2)
    assert len(parallel) == len(many)
    assert [r.prediction for r in parallel] == [r.prediction for r in sequential]


def test_small_input_stays_in_process(
    model: MessageClassifier, corpus: tuple[list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, _ = corpus

    get_context = multiprocessing.get_context

    def no_fork(method: str | None = None) -> object:
        if method == "fork":
            raise AssertionError(f"forked worker processes for {len(texts)} messages")
        return get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    results = Triage(model).pipe(messages_of(texts), jobs=8)
    assert [r.prediction for r in results] == model.predict_explained(
        [m.text for m in messages_of(texts)]
    )


def test_message_is_normalised_once_on_the_way_in() -> None:
    message = Message.of(title="小區門口<br>路燈壞了", content="ＡＢＣ　１２３", grid_id="  ")
    assert message.title == "小区门口\n路灯坏了"
    assert message.content == "ABC 123"
    assert message.grid_id is None
    assert message.text == "小区门口\n路灯坏了\nABC 123"


def test_reasons_are_codes_in_pipeline_order(model: MessageClassifier) -> None:
    router = MessageRouter.load(ner=False)
    unsure = MessageClassifier(review_threshold=1.01).fit(*_two_class_corpus())
    results = Triage(unsure, router=router)(
        [Message.of(content="楼下垃圾没人管"), Message.of(address="萧山区北干街道荣庄村8号")]
    )
    assert results[0].reasons == (ReviewReason.CATEGORY, ReviewReason.UNLOCATED)
    assert results[1].prediction is None  # no text: nothing to classify, still routed
    assert results[1].reasons == (ReviewReason.EMPTY,)
    assert results[1].route is not None and results[1].route.location.community is not None
    assert [r.label for r in results[0].reasons] == ["分类存疑", "待定位"]


def test_without_a_classifier_nothing_is_predicted() -> None:
    results = Triage(router=MessageRouter.load(ner=False))(
        [Message.of(content="陈公桥社区路灯坏了")]
    )
    assert results[0].prediction is None and results[0].reasons == ()
    assert (
        results[0].route is not None
        and results[0].route.as_columns()["community_name"] == "陈公桥社区"
    )


def _two_class_corpus() -> tuple[list[str], list[str]]:
    texts = ["路灯坏了不亮", "路灯一直不亮", "垃圾没人清理", "垃圾堆满了"] * 5
    return texts, ["城建", "城建", "环保", "环保"] * 5


def test_text_chunks_bound_the_characters_of_each_run() -> None:
    messages = [Message.of(title="路灯", content="坏了" * n) for n in (1, 2, 30, 1, 1, 1)]
    # 4, 6, 62, 4, 4 and 4 characters
    chunks = text_chunks(messages, max_chars=10)
    assert [len(chunk) for chunk in chunks] == [2, 1, 2, 1]  # 4+6, 62 alone, 4+4, 4
    assert [m for chunk in chunks for m in chunk] == messages  # in order, none lost
    assert all(
        len(chunk) == 1 or sum(len(m.title) + len(m.content) for m in chunk) <= 10
        for chunk in chunks
    )
    assert text_chunks([], max_chars=10) == []


def test_a_batch_in_chunks_gives_what_it_gives_whole(
    model: MessageClassifier, corpus: tuple[list[str], list[str]]
) -> None:
    texts, _ = corpus
    messages = messages_of(texts[:40])
    router = MessageRouter.load(ner=False)
    whole = Triage(model, router=router)(messages)
    chunked = Triage(model, router=router, chunk_chars=60)(messages)
    assert [r.prediction for r in chunked] == [r.prediction for r in whole]
    assert [r.route for r in chunked] == [r.route for r in whole]
    assert [r.message for r in chunked] == messages
