"""Request and response bodies of the HTTP API.

``POST /v1/classify`` takes either one message object or a batch::

    {"title": "路灯不亮", "content": "小区东门路灯坏了一周", "id": "m-1"}
    {"messages": [{"id": "m-1", "title": "路灯不亮"}, {"id": "m-2", "content": "..."}]}

A body with a ``messages`` key is a batch, anything else is a single message. The response has
the same shape either way: ``results`` holds one entry per message, in input order.

Types are strict (a number where a string is expected is refused, not converted) and unknown
fields are refused, so that a misspelt ``contnet`` is reported instead of silently classifying
an empty message. The limits that depend on settings (batch size, text length) and the
non-blank rule are checked after parsing, in :func:`wangge.serve.dependencies.checked_messages`,
because they are configured at runtime.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    WithJsonSchema,
)

from wangge.pipeline.reasons import ReviewReason

_INPUT_CONFIG = ConfigDict(strict=True, extra="forbid")
MAX_INT = 2**31 - 1  # the database's INTEGER on PostgreSQL
JOINED_SHOWN = 20  # joined messages listed with a review task
MAX_ID_CHARS = 128  # the stored columns' lengths (messages.external_id, messages.reporter)
MAX_NAME_CHARS = 64  # users.username, the review task's category and claimed_by
MAX_CODE_CHARS = 32  # a street's code (review_tasks.street_code)
MAX_PASSWORD_CHARS = 256
MAX_ADDRESS_CHARS = 500  # a postal address is a few dozen characters
MAX_METADATA_CHARS = 10_000  # the caller's metadata, as JSON: echoed back, so kept small


def _storable(text: str) -> str:
    """Refuse what no database stores and UTF-8 cannot encode: lone surrogates, NUL."""
    if "\x00" in text:
        raise ValueError("contains a NUL character (\\u0000)")
    if any("\ud800" <= character <= "\udfff" for character in text):
        raise ValueError("contains a lone surrogate (\\ud800-\\udfff): not valid Unicode text")
    return text


Text = Annotated[str, AfterValidator(_storable)]
"""A text field: any length, storable."""
ShortText = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS), AfterValidator(_storable)]
"""An identifier: at most :data:`MAX_ID_CHARS` characters, storable."""
RowId = Annotated[int, Field(ge=1, le=MAX_INT)]
"""The id of a stored row (case, message, review task): a positive database INTEGER."""


def _small_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, default=str, allow_nan=False))
    except ValueError:  # Python's JSON parser takes NaN, Infinity and 1e400; JSON has none
        raise ValueError("holds NaN or an infinite number, which JSON does not have") from None
    if size > MAX_METADATA_CHARS:
        raise ValueError(f"is {size} characters as JSON; at most {MAX_METADATA_CHARS}")
    return metadata


Metadata = Annotated[dict[str, Any], AfterValidator(_small_metadata)]
"""What the caller wants echoed back: any JSON object of at most :data:`MAX_METADATA_CHARS`."""
Address = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_CHARS), AfterValidator(_storable)]


Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(_storable)]
"""A user's name or a category: as long as their columns (64), storable."""
Code = Annotated[str, StringConstraints(max_length=MAX_CODE_CHARS), AfterValidator(_storable)]
"""A street's code: as long as its column (32), storable."""
Password = Annotated[
    str, StringConstraints(max_length=MAX_PASSWORD_CHARS), AfterValidator(_storable)
]


def local_time(moment: datetime) -> datetime:
    """``moment`` as stored: naive, in the server's local time (what ``datetime.now()`` gives).
    A time with a UTC offset is converted, not stripped of it; a naive one is taken as local."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone().replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        raise ValueError("is out of range: years 1 to 9999 in the server's time zone") from None


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt]\d{2}:\d{2}:\d{2}|$)")


def _iso_text(value: Any) -> Any:
    """Only RFC 3339 text (``date-time``) or a date alone (midnight): no Unix time."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME.match(value)):
        return value
    raise ValueError("must be a date and time as ISO 8601 text, e.g. 2024-05-01T08:30:00+08:00")


InputTime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(local_time),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
    ),
]
"""A time a client sends: ISO 8601 text (a date alone is midnight; no number), stored as the
server's local time."""


def _with_offset(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        return moment
    try:
        return moment.astimezone()
    except (OverflowError, ValueError, OSError):  # at the ends of the datetime range
        offset = datetime.now().astimezone().tzinfo
        return moment.replace(tzinfo=offset)


Timestamp = Annotated[datetime, AfterValidator(_with_offset)]
"""A stored time in a response: the server's local time with its UTC offset (RFC 3339)."""


class MessageIn(BaseModel):
    """One resident's message: at least one of ``title`` and ``content`` must be non-blank."""

    model_config = _INPUT_CONFIG

    id: ShortText | None = Field(default=None, description="Caller's identifier, echoed back.")
    title: Text | None = Field(default=None, description="Subject line of the message.")
    content: Text | None = Field(default=None, description="Body of the message.")
    address: Address | None = Field(
        default=None, description="Structured address of the problem; wins over the text."
    )
    latitude: float | None = Field(
        default=None, ge=-90, le=90, description="WGS84 latitude of the problem (with longitude)."
    )
    longitude: float | None = Field(
        default=None, ge=-180, le=180, description="WGS84 longitude of the problem."
    )
    grid_id: ShortText | None = Field(default=None, description="The reporter's registered grid.")
    metadata: Metadata | None = Field(
        default=None, description="Anything the caller wants back; not used for scoring."
    )


class MessageBatch(BaseModel):
    """Several messages scored in one request (up to the server's ``max_batch_size``)."""

    model_config = _INPUT_CONFIG

    messages: list[MessageIn]


def _request_shape(body: Any) -> str | None:
    """Tag of the union: a body with a ``messages`` key is a batch, another object a message."""
    if isinstance(body, dict):
        return "batch" if "messages" in body else "single"
    if isinstance(body, MessageBatch):
        return "batch"
    if isinstance(body, MessageIn):
        return "single"
    return None


class OneOrBatch:
    """What both request bodies offer: one message or a batch, read the same way."""

    root: Any

    @property
    def is_batch(self) -> bool:
        return isinstance(self.root, MessageBatch)

    @property
    def messages(self) -> list[Any]:
        """The messages in input order (a single message is a batch of one)."""
        return self.root.messages if isinstance(self.root, MessageBatch) else [self.root]


_SHAPE = Discriminator(
    _request_shape,
    custom_error_type="invalid_request_shape",
    custom_error_message=(
        'expected a JSON object: a message {"title": ..., "content": ...} or a batch '
        '{"messages": [...]}'
    ),
)


class ClassifyRequest(
    OneOrBatch,
    RootModel[
        Annotated[
            Annotated[MessageBatch, Tag("batch")] | Annotated[MessageIn, Tag("single")], _SHAPE
        ]
    ],
):
    """Body of ``POST /v1/classify``: one message or a batch."""


class IngestMessage(MessageIn):
    """A message to store: a classify message plus when and by whom it was reported."""

    created_at: InputTime | None = Field(
        default=None,
        strict=False,
        description="When it was reported (ISO 8601; without a UTC offset: the server's local "
        "time); default: now.",
    )
    reporter: ShortText | None = Field(default=None, description="Who reported it (a user id).")
    likes: int = Field(
        default=0, ge=0, le=MAX_INT, description="Likes (点赞数), for the heat of its case."
    )
    dislikes: int = Field(default=0, ge=0, le=MAX_INT, description="Dislikes (反对数).")


class IngestBatch(MessageBatch):
    messages: list[IngestMessage]  # type: ignore[assignment]


class IngestRequest(
    OneOrBatch,
    RootModel[
        Annotated[
            Annotated[IngestBatch, Tag("batch")] | Annotated[IngestMessage, Tag("single")], _SHAPE
        ]
    ],
):
    """Body of ``POST /v1/messages``: one message or a batch."""


CLASSIFY_EXAMPLES = {
    "single": {
        "summary": "One message",
        "value": {
            "id": "m-1",
            "title": "路灯不亮",
            "content": "小区东门的路灯坏了一个星期，晚上很黑。",
            "metadata": {"source": "hotline"},
        },
    },
    "batch": {
        "summary": "A batch",
        "value": {
            "messages": [
                {"id": "m-1", "title": "路灯不亮", "content": "小区东门的路灯坏了一个星期。"},
                {"id": "m-2", "content": "楼道里的垃圾三天没人清理了。"},
            ]
        },
    },
}


class CategoryScore(BaseModel):
    category: str
    probability: float


class DepartmentOut(BaseModel):
    department: str
    score: float = Field(description="Combined strength of the reasons, 0 to 1.")
    reasons: list[str] = Field(description="The routing rules (or model) behind the score.")


class MessageResult(BaseModel):
    """The prediction for one message."""

    id: str | None = Field(description="The message's ``id``; null when none was given.")
    category: str = Field(description="The most probable category.")
    probability: float = Field(description="Calibrated probability of ``category``.")
    top_k: list[CategoryScore] = Field(description="The best categories, most probable first.")
    needs_review: bool = Field(description="True when a person should check the category.")
    review_reasons: list[str] = Field(description="Why ``needs_review`` is true; else empty.")
    evidence: list[str] = Field(
        description="Words and word pairs of the message that weighed most for ``category``."
    )
    street_code: str = Field(default="", description="Street/town code; empty when unknown.")
    street_name: str = ""
    community_code: str = Field(default="", description="Village/community code, or empty.")
    community_name: str = ""
    grid_id: str = Field(default="", description="Grid id, or empty.")
    out_of_area: bool = Field(default=False, description="The place is outside the district.")
    route_confidence: float = Field(default=0.0, description="Confidence of the location.")
    route_evidence: list[str] = Field(
        default_factory=list, description="Place names matched and how they were resolved."
    )
    department: str = Field(default="", description="The most likely handling department.")
    departments: list[DepartmentOut] = Field(
        default_factory=list, description="Top departments with scores and reasons."
    )
    metadata: dict[str, Any] | None = Field(description="The message's ``metadata``, echoed.")


class IngestResult(MessageResult):
    """A stored message: its prediction, its case and the duplicate it matched."""

    message_id: str = Field(description="wangge's id of the stored message.")
    case_id: str = Field(description="The case it belongs to (its first message's id).")
    duplicate_of: str | None = Field(description="The stored message it repeats, if any.")
    dup_score: float = Field(description="Same-case probability of that match; 0 for a new case.")
    dup_evidence: dict[str, Any] = Field(
        default_factory=dict, description="The closest message and the similarities behind it."
    )
    replayed: bool = Field(
        description="True when a message with this id was stored before: nothing new was stored."
    )


class IngestResponse(BaseModel):
    model_version: str
    results: list[IngestResult]


class CaseMessage(BaseModel):
    message_id: str
    id: str | None
    title: str
    created_at: Timestamp
    duplicate_of: str | None
    dup_score: float


class CaseOut(BaseModel):
    """A case: the reports of one problem."""

    case_id: str
    title: str = Field(description="Its first message's title.")
    first_at: Timestamp
    last_at: Timestamp
    reports: int
    reporters: int = Field(description="Distinct reporters (anonymous reports count one each).")
    likes: int
    dislikes: int
    category: str | None
    street_code: str | None
    community_code: str | None
    heat: float = Field(default=0.0, description="See GET /v1/hot-issues.")
    merged_into: str | None = Field(
        default=None,
        description="The case this one was merged into (by a reviewer, or automatically when a "
        "message showed them to be one case): its messages are there now.",
    )
    messages: list[CaseMessage] = Field(default_factory=list)


class HotIssuesResponse(BaseModel):
    since: Timestamp | None
    until: Timestamp
    cases: list[CaseOut]


class ClassifyResponse(BaseModel):
    model_version: str
    results: list[MessageResult] = Field(description="One result per message, in input order.")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_name: str
    model_version: str


class ErrorResponse(BaseModel):
    """Body of an error response other than 422: what went wrong, in a sentence."""

    detail: str


ERRORS = {
    401: "No valid credentials: a missing or unknown API key (/v1/), no live session "
    "(/review/api/).",
    403: "A revoked API key, or an action for administrators only.",
    404: "No such case or task.",
    409: "A conflict with the current state: the task changed since it was loaded, someone "
    "else holds it, or the service runs without a model store.",
    413: "The request body is larger than the server's limit (`WANGGE_MAX_BODY_BYTES`).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each answered with :class:`ErrorResponse`."""
    return {code: {"model": ErrorResponse, "description": ERRORS[code]} for code in codes}


class LivenessResponse(BaseModel):
    status: Literal["ok"]


class ReadinessResponse(BaseModel):
    status: Literal["ready", "unavailable"]
    failed: list[Literal["database", "model"]] = Field(
        description="The checks that failed: the database did not answer, no model is loaded."
    )


class ModelInfo(BaseModel):
    """The model being served, from its ``meta.json``."""

    name: str
    version: str
    created_at: str
    labels: list[str] = Field(description="Every category the model can return.")
    review_threshold: float | None = Field(
        description="Probability below which a prediction is flagged ``needs_review``."
    )
    metrics: dict[str, Any] = Field(description="Hold-out evaluation written at training time.")


class LoginRequest(BaseModel):
    model_config = _INPUT_CONFIG

    username: Name = Field(min_length=1)
    password: Password = Field(min_length=1)


class LoginResponse(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer TOKEN` to /review/api/.")
    username: str
    role: str
    expires_in_s: int


class JoinedMessage(BaseModel):
    """A message of the task's case that joined the task instead of getting its own."""

    message_id: int
    external_id: str | None = Field(description="Its 留言编号.")
    title: str
    created_at: Timestamp


class ReviewTaskOut(BaseModel):
    """A review task with its message and what the models said of it."""

    task_id: int
    version: int = Field(description="Send it back with claim and decision: stale ones get 409.")
    status: str
    reasons: list[str]
    priority: float
    claimed_by: str | None
    message_id: int
    external_id: str | None = Field(description="The message's 留言编号 (its id at intake).")
    title: str
    content: str
    created_at: Timestamp
    prediction: dict[str, Any]
    joined: list[JoinedMessage] = Field(
        default_factory=list,
        description=f"The first {JOINED_SHOWN} messages of its case that joined this task (one "
        "open task per case): evidence for the decision, which applies to this message only.",
    )
    joined_total: int = Field(default=0, description="How many joined it in all.")


class ReviewTaskList(BaseModel):
    tasks: list[ReviewTaskOut]


class ReviewGridList(BaseModel):
    """Grids matching a name (``GET /review/api/grids``), best first."""

    grids: list[dict[str, str]] = Field(
        description="id, name, community_name, street_name, and the name matched"
    )
    total: int = Field(description="how many grids matched in all")


class ReviewChoices(BaseModel):
    """What a correction may set; empty departments and grids: the service does not route."""

    categories: list[str]
    departments: list[str]
    streets: list[dict[str, str]] = Field(description="code and name, for the queue filter")
    reasons: dict[str, str] = Field(
        default_factory=lambda: {reason.value: reason.label for reason in ReviewReason},
        description="review reason codes and the labels the page shows",
    )


class ClaimRequest(BaseModel):
    model_config = _INPUT_CONFIG

    version: int = Field(ge=0, le=MAX_INT)


class Corrections(BaseModel):
    """What a reviewer corrects: only the fields sent are changed (``duplicate_of: null``
    makes the message a case of its own)."""

    model_config = _INPUT_CONFIG

    category: Name | None = None
    department: ShortText | None = None
    grid_id: ShortText | None = None
    duplicate_of: RowId | None = Field(
        default=None, description="The stored message it repeats; null: none."
    )

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class DecisionRequest(BaseModel):
    model_config = _INPUT_CONFIG

    version: int = Field(ge=0, le=MAX_INT)
    action: Literal["accept", "correct", "invalid"]
    corrections: Corrections = Field(
        default_factory=lambda: Corrections(),
        description="With `correct` (and only then): the new values, among "
        "`GET /review/api/choices`.",
    )


class PromoteRequest(BaseModel):
    model_config = _INPUT_CONFIG

    version: str = Field(min_length=1, max_length=128)


class PromoteResponse(BaseModel):
    version: str = Field(description="The version served from the next request on.")
