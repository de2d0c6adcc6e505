"""Send a file of messages to a running service (``POST /v1/messages``), in batches.

For intake systems that export files, and for loading a backlog: the file is read and checked
by the same loaders as the batch commands (:mod:`wangge.batch.files`), each row with text
becomes a message with its id, title, body (normalised), time, reporter, likes and place
fields, and batches are sent in file order. The service stores a batch before it answers,
and ids make sending again safe (stored messages come back ``replayed``), so an interrupted
run is simply run again. A batch with more characters than the service takes in one request
is sent in halves. A message the service refuses stops the run with the file, row and
column at fault. A row without text is not sent (the service refuses a message without text):
it is counted in the summary with its file, row and column, unless ``strict``, where it stops
the run before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from wangge.batch.dedup import message_times
from wangge.batch.files import LoadedMessages, find_column, load_messages
from wangge.batch.messages import file_messages
from wangge.errors import DataError, WanggeError

DEFAULT_BATCH = 64
COUNTS = ("likes", "dislikes")


class ServiceError(WanggeError):
    """The service could not be reached, refused the credentials, or failed."""

    code = "W400"


@dataclass
class IngestSummary:
    """What the service did with the file's messages."""

    stored: int = 0
    replayed: int = 0
    needs_review: int = 0  # with a doubt a person decides one at a time
    unlocated: int = 0  # naming no community: to a 待定位 list
    new_cases: int = 0
    model_versions: set[str] = field(default_factory=set)
    empty: list[DataError] = field(default_factory=list)  # rows without text, not sent


def ingest_messages(data: LoadedMessages, positions: Sequence[int]) -> list[dict[str, Any]]:
    """The ``POST /v1/messages`` body of the rows at ``positions`` (ids from the id column,
    else the file name and row)."""
    frame = data.frame
    times = message_times(data, positions) if data.columns.time else None
    counts = {name: find_column(frame, name) for name in COUNTS}
    bodies = []
    messages = file_messages(data, times=times, positions=positions)
    for index, message in zip(positions, messages, strict=True):
        body: dict[str, Any] = message.routing_fields() | {
            "id": str(frame[data.columns.id].iloc[index])
            if data.columns.id
            else f"{data.path.name}:{data.rows[index]}",  # stable, so sending again is safe
            "reporter": (message.reporter or "").strip() or None,
            "created_at": message.time.isoformat() if message.time else None,
        }
        for name, column in counts.items():
            if column and str(frame[column].iloc[index]).strip():
                value = str(frame[column].iloc[index]).strip()
                if not value.isdigit():
                    raise DataError(
                        f"{name} must be a whole number, not {value!r}",
                        path=data.path, row=data.rows[index], column=column,
                    )  # fmt: skip
                body[name] = int(value)
        bodies.append(body)
    return bodies


def ingest_file(
    path: str | Path,
    client: httpx.Client,
    *,
    batch_size: int = DEFAULT_BATCH,
    text_columns: Sequence[str] | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> IngestSummary:
    """Send every row of ``path`` with text through ``client`` (its ``base_url`` is the
    service, its headers carry the API key); ``progress(sent, total)`` after each batch."""
    data = load_messages(
        path, text_columns=text_columns, time_column=time_column, id_column=id_column,
        allow_empty=not strict,
    )  # fmt: skip
    summary = IngestSummary(empty=data.empty_errors())
    empty = set(data.empty)
    sent = [index for index in range(len(data.frame)) if index not in empty]
    messages = ingest_messages(data, sent)
    for start in range(0, len(sent), batch_size):
        rows = sent[start : start + batch_size]
        batch = messages[start : start + batch_size]
        for answer in _send(client, data, rows, batch):
            summary.model_versions.add(answer["model_version"])
            for result in answer["results"]:
                if result["replayed"]:
                    summary.replayed += 1
                    continue
                summary.stored += 1
                reasons = set(result["review_reasons"])
                summary.needs_review += bool(reasons - {"unlocated"})
                summary.unlocated += "unlocated" in reasons
                summary.new_cases += result["duplicate_of"] is None
        if progress is not None:
            progress(start + len(batch), len(sent))
    return summary


def _send(
    client: httpx.Client, data: LoadedMessages, rows: list[int], batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The service's answer to ``batch`` (the file's rows at ``rows``); or, when it has more
    characters than the service takes in one request (``request_too_large``), the answers to
    its halves, in order."""
    body = {"messages": [{k: v for k, v in m.items() if v is not None} for m in batch]}
    try:
        response = client.post("/v1/messages", json=body)
    except httpx.HTTPError as error:
        raise ServiceError(f"cannot reach the service at {client.base_url}: {error}") from error
    if response.status_code == 422:
        answer = response.json()
        detail = answer.get("detail")
        kind = detail[0].get("type") if isinstance(detail, list) and detail else None
        if kind == "request_too_large" and len(batch) > 1:
            half = len(batch) // 2
            return [
                *_send(client, data, rows[:half], batch[:half]),
                *_send(client, data, rows[half:], batch[half:]),
            ]
        raise _refused(answer, data, rows)
    if response.status_code in (401, 403):
        raise ServiceError(
            f"the service refused the API key ({response.status_code}): create one with "
            "`wangge keys create NAME` and pass it with --api-key or WANGGE_API_KEY"
        )
    if response.status_code != 200:
        raise ServiceError(
            f"the service answered {response.status_code} for rows "
            f"{data.rows[rows[0]]}-{data.rows[rows[-1]]}: {response.text[:300]}"
        )
    return [response.json()]


def _refused(answer: dict[str, Any], data: LoadedMessages, rows: list[int]) -> WanggeError:
    """A 422 answer for the batch of ``rows`` (positions in ``data``) as an error naming the
    file's row (and column, when the field is a text)."""
    detail = answer.get("detail")
    if isinstance(detail, list) and detail:
        first = detail[0]
        loc = [part for part in first.get("loc", ()) if part not in ("body", "batch")]
        if len(loc) >= 2 and loc[0] == "messages" and isinstance(loc[1], int):
            field_name = str(loc[2]) if len(loc) > 2 else None
            text = data.columns.text
            column = {"title": text[0] if len(text) > 1 else None, "content": text[-1]}.get(
                field_name or ""
            )
            return DataError(
                f"the service refused it: {first.get('msg')}",
                path=data.path, row=data.rows[rows[loc[1]]], column=column,
            )  # fmt: skip
    return ServiceError(f"the service refused the batch from row {data.rows[rows[0]]}: {detail}")
