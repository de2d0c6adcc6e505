"""A real ``wangge serve`` (uvicorn's logging, a subprocess on loopback) writes no personal data
to its output, whatever requests carry it: paths, query strings, bodies, a request that fails."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from conftest import SEEDED_PII as SEEDED
from conftest import tiny_model, wangge_serve
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from wangge.serve.storage import make_engine


def _send_seeded_requests(base: str) -> list[int]:
    """Each seeded value in a path, a query string and a body; the status codes answered."""
    statuses = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for value in SEEDED:
            statuses += [
                client.get(f"/v1/cases/{quote(value)}").status_code,
                client.get(f"/{quote(value)}").status_code,
                client.get("/review/api/tasks", params={"reason": value}).status_code,
                client.post("/v1/classify", json={"title": "垃圾没人清理", "content": value,
                                                  "address": value}).status_code,
                client.post("/v1/messages", json={"content": f"垃圾没人清理，电话{value}",
                                                  "reporter": value}).status_code,
            ]  # fmt: skip
        # Refused (likes beyond the database's integers): the refusal logs no text of it.
        refused = {"content": f"楼道垃圾很臭 {SEEDED[0]} {SEEDED[5]}", "likes": 2**63}
        statuses.append(client.post("/v1/messages", json=refused).status_code)
    return statuses


def test_a_real_server_logs_no_seeded_personal_data(tmp_path: Path) -> None:
    tiny_model(tmp_path / "model")
    env = {
        "WANGGE_MODEL_DIR": str(tmp_path / "model"),
        "WANGGE_LOG_LEVEL": "debug",
        "WANGGE_DATABASE_URL": f"sqlite:///{tmp_path / 'logs.sqlite3'}",
    }
    log = tmp_path / "server.log"
    with wangge_serve(env, log) as (base, _server):
        statuses = _send_seeded_requests(base)
    output_text = log.read_text(encoding="utf-8")
    assert 200 in statuses and 404 in statuses and 422 in statuses and 500 not in statuses
    assert output_text.count(' HTTP/1.1" ') >= len(statuses)  # every request has its access line
    assert all(mask in output_text for mask in ("[手机号]", "[身份证号]", "[车牌号]", "[邮箱]"))
    assert "Logging error" not in output_text
    for value in [*SEEDED, "wang.li"]:  # and the local part alone, should a mask leave it
        for form in {value, quote(value), quote_plus(value)}:
            assert form not in output_text, form


def test_database_errors_do_not_show_the_statements_parameters() -> None:
    engine = make_engine("sqlite://")
    with pytest.raises(OperationalError) as error, engine.connect() as connection:
        connection.execute(text("SELECT :phone FROM no_such_table"), {"phone": SEEDED[0]})
    assert "no_such_table" in str(error.value) and SEEDED[0] not in str(error.value)
