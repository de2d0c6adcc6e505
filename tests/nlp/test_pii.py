"""Personal data is found and masked, in text and in log records."""

from __future__ import annotations

import logging

import pytest

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
