"""The same cases everywhere (issue 18): ``wangge dedup`` on a file and ``POST /v1/messages``
of the same messages in the same order build the same cases; automatic merges are recorded as
the system's and undone by a reviewer's unmerge; the hot issues of the API and the dashboard
agree."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_cases import client  # noqa: F401 (a fixture)
from test_review_api import log_in, model  # noqa: F401 (a fixture)

from wangge.batch.dedup import dedup_file
from wangge.models.cases import AUTO_ACTOR
from wangge.models.classifier import MessageClassifier
from wangge.models.dedup import DuplicateDetector
from wangge.pipeline.artifact import ModelMeta
from wangge.serve.app import create_app
from wangge.serve.config import Settings
from wangge.serve.storage import AuditRow, CaseRow, MessageRow, Store

PLACES = ["金城花园", "幸福里小区", "东湖苑", "阳光家园", "锦绣华庭", "和平新村", "滨江一号",
          "翠竹园", "紫荆城", "星河湾", "桂花苑", "银杏小区"]  # fmt: skip
TEMPLATES = [  # each: three rewordings of one complaint, {p} the place
    ("{p}垃圾没人清理", ["{p}东门口的垃圾堆了好几天没人清理，臭气熏天，请尽快处理",
                    "{p}门口垃圾堆积多日无人清运，气味难闻，希望物业处理",
                    "反映{p}东门垃圾好几天没人清理，夏天太臭了"]),
    ("{p}夜间施工噪音", ["{p}旁边的工地每天晚上十二点还在施工，噪音太大无法睡觉",
                     "{p}附近工地夜间施工扰民，半夜还在打桩",
                     "投诉{p}边上的工地深夜施工，噪音严重影响休息"]),
    ("{p}电梯经常故障", ["{p}三栋的电梯一个月坏了五次，老人被困在里面",
                     "{p}3栋电梯频繁故障，多次困人，物业不维修",
                     "{p}电梯老是坏，上周又困人了，请监管部门督促维修"]),
    ("{p}停车位被占", ["{p}的消防通道被私家车长期占用，车位也被外来车辆占满",
                    "{p}消防通道停满车辆，业主车位被占，物业不管",
                    "{p}外来车辆占用消防通道和业主车位，存在安全隐患"]),
    ("{p}自来水发黄", ["{p}最近一周自来水发黄有异味，不敢饮用",
                    "{p}的自来水颜色发黄，烧开后有沉淀，请检测水质",
                    "{p}自来水浑浊发黄已经七天了，希望尽快解决"]),
    ("{p}路灯不亮", ["{p}门前道路的路灯坏了一个多月，晚上走路很危险",
                  "{p}外面的路灯一直不亮，夜间出行不安全",
                  "{p}附近路灯损坏很久没人修，晚上一片漆黑"]),
]  # fmt: skip
HEADER = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"]


def generated() -> list[list[str]]:
    """Templates × places × rewordings (216 messages) in a fixed shuffled order, ten minutes
    apart, each by its own reporter."""
    rows = [(title.format(p=place), text.format(p=place), f"{t}-{p}-{r}")
            for t, (title, texts) in enumerate(TEMPLATES)
            for p, place in enumerate(PLACES)
            for r, text in enumerate(texts)]  # fmt: skip
    random.Random(18).shuffle(rows)
    start = datetime(2024, 3, 1, 8)
    return [[f"m{i:03d}", f"u{key}", title, (start + timedelta(minutes=10 * i)).isoformat(), text]
            for i, (title, text, key) in enumerate(rows)]  # fmt: skip


def partition(case_of: dict[str, str]) -> set[frozenset[str]]:
    cases: dict[str, set[str]] = defaultdict(set)
    for message, case in case_of.items():
        cases[case].add(message)
    return {frozenset(members) for members in cases.values()}


def test_the_file_and_the_service_build_the_same_cases(
    client: TestClient,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    rows = generated()
    source, output = tmp_path / "messages.csv", tmp_path / "cases.csv"
    pd.DataFrame(rows, columns=HEADER).to_csv(source, index=False, encoding="utf-8")
    dedup_file(source, output, detector=DuplicateDetector())  # lexical, as the service here
    frame = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    batch = dict(zip(frame["留言编号"], frame["case_id"], strict=True))
    for start in range(0, len(rows), 50):
        body = [
            {"id": id_, "reporter": reporter, "title": title, "created_at": at, "content": text}
            for id_, reporter, title, at, text in rows[start : start + 50]
        ]
        response = client.post("/v1/messages", json={"messages": body})  # fmt: skip
        assert response.status_code == 200, response.text
    with Store(database_url).session() as session:
        stored = session.execute(select(MessageRow.external_id, MessageRow.case_id)).all()
    served = {external: str(case) for external, case in stored}
    assert len(partition(batch)) < len(rows)  # repeats were found
    assert partition(served) == partition(batch)


RUBBISH = "金城花园小区东门口的垃圾堆了好几天没人清理，臭气熏天，请尽快处理"


def test_an_automatic_merge_is_recorded_and_undone_by_an_unmerge(
    client: TestClient,  # noqa: F811
    database_url: str,
    model: tuple[MessageClassifier, ModelMeta],  # noqa: F811
) -> None:
    """A store holding two cases of one complaint (as one built before case-level decisions
    may), then a third copy that fits both: the service merges them, as the system."""
    for id_, text in (("A-1", RUBBISH), ("A-2", RUBBISH + "谢谢")):
        assert client.post("/v1/messages", json={"id": id_, "content": text}).status_code == 200
    with Store(database_url).session() as session:
        second = session.scalar(select(MessageRow).where(MessageRow.external_id == "A-2"))
        assert second is not None
        a, b = second.case_id, second.id
        session.add(CaseRow(id=b, title=second.title, first_at=second.created_at,
                            last_at=second.created_at, reports=1))  # fmt: skip
        session.flush()
        second.case_id, second.duplicate_of = b, None
    settings = Settings(database_url=database_url, encoder_dir=None, route=False)
    with TestClient(create_app(settings, model=model[0], meta=model[1])) as restarted:
        wang = log_in(restarted, "wang")
        third = restarted.post("/v1/messages", json={"id": "A-3", "content": RUBBISH + "拜托"})
        assert third.json()["results"][0]["case_id"] == str(a)
        with Store(database_url).session() as session:
            [record] = session.scalars(select(AuditRow).where(AuditRow.action == "merge")).all()
            assert record.actor == AUTO_ACTOR and record.after["automatic"] is True
            assert record.after["case_id"] == b and record.after["merged_into"] == a
        merged = restarted.get(f"/v1/cases/{b}").json()
        assert merged["merged_into"] == str(a) and merged["reports"] == 0
        assert restarted.get(f"/v1/cases/{a}").json()["reports"] == 3
        view = restarted.get(f"/review/api/cases/{a}", headers=wang).json()
        assert "自动并入" in view["history"][0]["text"]
        undone = restarted.post(f"/review/api/cases/{b}/unmerge", headers=wang)
        assert undone.status_code == 200, undone.text
        assert undone.json()["reports"] == 1 and undone.json()["merged_into"] is None
        # kept apart by the unmerge: a fourth copy joins one case and merges nothing
        fourth = restarted.post("/v1/messages", json={"id": "A-4", "content": RUBBISH + "谢谢"})
        assert fourth.json()["results"][0]["case_id"] == str(b)
        with Store(database_url).session() as session:
            merges = session.scalars(select(AuditRow).where(AuditRow.action == "merge")).all()
            assert len(merges) == 1


def test_the_hot_issues_of_the_api_and_the_dashboard_agree(
    client: TestClient,  # noqa: F811
) -> None:
    rows = generated()[:120]
    body = [{"id": id_, "reporter": reporter, "title": title, "created_at": at, "content": text}
            for id_, reporter, title, at, text in rows]  # fmt: skip
    assert client.post("/v1/messages", json={"messages": body}).status_code == 200
    wang = log_in(client, "wang")
    stats = client.get("/review/api/stats", params={"hot_days": 7}, headers=wang).json()
    until = datetime.fromisoformat(rows[-1][3])
    window = {"since": (until - timedelta(days=7)).isoformat(), "until": until.isoformat()}
    api = client.get("/v1/hot-issues", params=window | {"limit": 200}).json()["cases"]
    repeated = [case for case in api if case["reports"] > 1][:5]
    assert len(stats["hot_issues"]) == 5
    assert [(str(c["case_id"]), c["reports"], c["reporters"], c["heat"])
            for c in stats["hot_issues"]] == [(c["case_id"], c["reports"], c["reporters"],
                                              c["heat"]) for c in repeated]  # fmt: skip


def test_no_reviewer_can_take_the_name_of_the_automatic_merges(tmp_path: Path) -> None:
    from wangge.serve.auth import AccountError, add_user
    from wangge.serve.migrate import open_store

    store = open_store(f"sqlite:///{tmp_path}/users.sqlite3", upgrade=True)
    with pytest.raises(AccountError, match="audit log"):
        add_user(store, AUTO_ACTOR, "a long enough password", "reviewer")
