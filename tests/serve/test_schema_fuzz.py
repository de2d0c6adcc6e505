"""Schemathesis fuzzes every operation of the service's OpenAPI schema: no answer may be a
server error, a status code the schema does not document, a body or content type that does not
match the schema, or an acceptance of a request the schema rules out.

Each operation runs schemathesis's examples, coverage and fuzzing phases with valid and invalid
data, derandomized (the same requests every run) and without deadlines; the fuzzing phase draws
``WANGGE_FUZZ_EXAMPLES`` examples (default 100; fewer for a quick local run), an operation
without parameters the one request it has. Every check runs but positive_data_acceptance (see
the test). The service runs in-process, routing through the shipped district, on a model store
of two promoted versions (so that rollback has somewhere to go, and back), with API keys on and
an administrator's session for the review API; each operation gets a fresh database: SQLite,
and PostgreSQL when WANGGE_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_model
from hypothesis import HealthCheck, settings
from sqlalchemy import select

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) fuzzes")
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from wangge.models.router import MessageRouter  # noqa: E402
from wangge.pipeline.store import promote  # noqa: E402
from wangge.serve import auth  # noqa: E402
from wangge.serve.app import create_app, prepare_router  # noqa: E402
from wangge.serve.config import Settings  # noqa: E402
from wangge.serve.migrate import open_store  # noqa: E402
from wangge.serve.storage import ReviewTaskRow, Store  # noqa: E402

EXAMPLES = int(os.environ.get("WANGGE_FUZZ_EXAMPLES", "100"))
PASSWORD = "correct horse battery"


# The schema is the app's: it does not depend on settings or the database.
schema = schemathesis.openapi.from_dict(create_app(Settings(api_keys=True)).openapi())


@dataclass
class Fuzzed:
    app: Any
    api_key: str
    admin_token: str
    store: Store


@pytest.fixture(scope="module")
def district() -> MessageRouter:
    """The shipped district's router, loaded once: addresses, coordinates and grid ids are
    fuzzed through it."""
    settings = Settings(route=True)
    router = prepare_router(settings)
    assert router is not None
    return router


@pytest.fixture()
def fuzzed(database_url: str, tmp_path: Path, district: MessageRouter) -> Iterator[Fuzzed]:
    """The service on ``database_url`` with an API key, an administrator logged in and three
    stored messages under review."""
    models = tmp_path / "models"
    tiny_model(models / "v1", review_threshold=0.99)
    tiny_model(models / "v2", review_threshold=0.9)
    promote(models, "v1")
    promote(models, "v2")  # rollback has a version to go back to, and back again
    store = open_store(database_url, upgrade=True)
    auth.add_user(store, "boss", PASSWORD, "admin")
    api_key = auth.create_key(store, "fuzz")
    token = auth.log_in(store, "boss", PASSWORD)
    assert token is not None
    app_settings = Settings(
        database_url=database_url, model_store=models, encoder_dir=None, api_keys=True
    )
    app = create_app(app_settings, router=district)
    try:
        with asgi.get_client(app) as client:  # starts the app's lifespan until shutdown
            for n, text in enumerate(["垃圾没人清理", "工地噪音很大", "楼道垃圾很臭"]):
                stored = client.post("/v1/messages", json={"id": f"m{n}", "content": text},
                                     headers={"X-API-Key": api_key})  # fmt: skip
                assert stored.status_code == 200, stored.text
        _hold_tasks(store)
        yield Fuzzed(app, api_key, token, store)
    finally:
        asgi.shutdown_lifespans()
        store.engine.dispose()


def _hold_tasks(store: Store) -> None:
    """The administrator holds every task at version 0, the first version the fuzzer tries:
    decisions get past the version check to the corrections (and claims succeed)."""
    with store.session() as session:
        for task in session.scalars(select(ReviewTaskRow)):
            task.status, task.claimed_by, task.claimed_at = "claimed", "boss", datetime.now()
            task.version = 0


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(case: Any, fuzzed: Fuzzed) -> None:
    path = case.operation.path
    headers: dict[str, str] = {}
    if path.startswith("/v1/"):
        headers["Authorization"] = f"Bearer {fuzzed.api_key}"
    elif path == "/review/api/logout":  # ends its session: a fresh one each time
        token = auth.log_in(fuzzed.store, "boss", PASSWORD)
        headers["Authorization"] = f"Bearer {token}"
    elif path.startswith("/review/api/") and path != "/review/api/login":
        headers["Authorization"] = f"Bearer {fuzzed.admin_token}"
    # Not positive_data_acceptance: the service refuses (422) schema-valid requests by rules a
    # JSON schema does not hold (a message needs a non-blank title or content, both
    # coordinates or neither; a version must exist in the store).
    case.call_and_validate(app=fuzzed.app, headers=headers,
                           excluded_checks=[positive_data_acceptance])  # fmt: skip
