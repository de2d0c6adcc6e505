"""Personal data is found and masked, in text and in log records."""

from __future__ import annotations

import logging
import sys

import pytest
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from wangge.nlp.pii import PiiMaskingFilter, find_pii, mask_pii
from wangge.serve.server import log_config

TEXT = "我是王先生，电话13812345678，座机0571-87654321，身份证330109199001011234，车牌浙A12345。"


def test_each_kind_is_found_and_masked() -> None:
    assert [span.kind for span in find_pii(TEXT)] == [
        "cell_phone", "landline_phone", "id_card", "licence_plate",
    ]  # fmt: skip
    assert (
        mask_pii(TEXT) == "我是王先生，电话[手机号]，座机[电话]，身份证[身份证号]，车牌[车牌号]。"
    )
    assert mask_pii("小区门口路灯坏了") == "小区门口路灯坏了"


@pytest.mark.parametrize(
    ("value", "mask"),
    [
        ("13812345678", "[手机号]"),
        ("１３８１２３４５６７８", "[手机号]"),
        ("138 1234 5678", "[手机号]"),
        ("１３８　１２３４　５６７８", "[手机号]"),
        ("330109199001011234", "[身份证号]"),
        ("３３０１０９１９９００１０１１２３４", "[身份证号]"),
        ("3301091990 0101 1234", "[身份证号]"),
        ("330109 19900101 123X", "[身份证号]"),
        ("330109-19900101-123X", "[身份证号]"),
        ("138–1234–5678", "[手机号]"),  # en dashes
        ("浙A12345", "[车牌号]"),
        ("浙Ａ１２３４５", "[车牌号]"),
        ("wang.li@example.com", "[邮箱]"),
        ("ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "[邮箱]"),
        ("/v1/cases/wang.li@example.com", "/v1/cases/[邮箱]"),
        ("wang+tag@example.com", "[邮箱]"),
        ("wang%li@example.com", "[邮箱]"),
    ],
)
def test_half_width_full_width_and_spaced_values_are_masked(value: str, mask: str) -> None:
    assert mask_pii(f"联系我：{value}，谢谢") == f"联系我：{mask}，谢谢"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("/x?to=wang@example.com&y=1", "/x?to=[邮箱]&y=1"),  # jionlp alone found none of these
        ("'wang@example.com'", "'[邮箱]'"),
        ("wang@example.com!", "[邮箱]!"),
        ("a|wang@example.com|b", "a|[邮箱]|b"),
        ("wang@example.com/", "[邮箱]/"),
    ],
)
def test_e_mails_next_to_ascii_punctuation_are_masked(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


def test_overlapping_values_are_masked_as_one() -> None:
    # 浙ab1234 reads as a plate too: masking only it left the address's domain.
    assert mask_pii("联系浙ab1234@example.com谢谢") == "联系[邮箱]谢谢"
    assert mask_pii("车牌浙A12345，谢谢") == "车牌[车牌号]，谢谢"


def test_numbers_that_are_not_personal_data_keep_their_blanks() -> None:
    for text in ("房号 12 单元 3", "2026-12-03 08:29:06 INFO", "路灯坏了 3 天 12 户"):
        assert mask_pii(text) == text


def test_log_records_are_masked_with_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("wangge.test_pii")
    caplog.handler.addFilter(PiiMaskingFilter())
    with caplog.at_level(logging.INFO, logger="wangge.test_pii"):
        logger.info("message %s from %s", "垃圾没人清理", "13812345678")
    assert caplog.records[0].getMessage() == "message 垃圾没人清理 from [手机号]"
    assert "13812345678" not in caplog.text


def test_the_service_log_config_masks_on_every_handler() -> None:
    config = log_config("info")
    assert all("mask_pii" in h["filters"] for h in config["handlers"].values())


def _access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it (the arguments its formatter reads)."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:50000", "GET", path, "1.1", 200), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "path",
    ["/v1/cases/13812345678", "/review/api/tasks?reason=138%201234%205678",
     "/x?q=%EF%BC%91%EF%BC%93%EF%BC%98%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98"],
)  # fmt: skip
def test_uvicorns_access_line_stays_whole_and_is_masked(path: str) -> None:
    record = _access_record(path)
    assert PiiMaskingFilter().filter(record)
    line = AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False).format(
        record
    )
    assert line.startswith('INFO:     127.0.0.1:50000 - "GET /')
    assert line.endswith('[手机号] HTTP/1.1" 200 OK')


def test_an_e_mail_in_a_query_string_is_masked_in_the_access_line() -> None:
    record = _access_record("/v1/cases?reporter=wang@example.com&limit=5")
    assert PiiMaskingFilter().filter(record)
    assert record.getMessage().endswith('"GET /v1/cases?reporter=[邮箱]&limit=5 HTTP/1.1" 200')


def test_an_access_line_without_personal_data_is_unchanged() -> None:
    record = _access_record("/v1/cases/12?page=2")
    PiiMaskingFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:50000 - "GET /v1/cases/12?page=2 HTTP/1.1" 200'


def test_exception_text_is_masked() -> None:
    try:
        raise ValueError("no case for 13812345678 (3301091990 0101 1234)")
    except ValueError:
        record = logging.LogRecord(
            "wangge", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    PiiMaskingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "ValueError: no case for [手机号] ([身份证号])" in text
    assert "13812345678" not in text and "1234" not in text.split("ValueError")[-1]
