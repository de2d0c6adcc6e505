"""The 待定位 list over HTTP (``/review/api/locating``), for logged-in reviewers: list the
messages that name no community, by street, and assign a grid to many at once. See
:mod:`wangge.serve.locating`. An unknown grid answers 422, messages located or changed by
someone else meanwhile 409 (nothing is located then), both with a message in Chinese."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from wangge.serve.dependencies import LoadedModelDep, RouterDep, StoreDep, refused
from wangge.serve.locating import (
    DISTRICT,
    MAX_ASSIGN,
    LocatingConflict,
    LocatingError,
    UnlocatedFilter,
    assign,
    list_unlocated,
    open_by_street,
    unlocated_out,
)
from wangge.serve.routes.review import ReviewerDep, _choices
from wangge.serve.schemas import Code, Name, RowId, ShortText, Timestamp, error_responses

router = APIRouter(prefix="/review/api/locating", tags=["review"])
NO_DISTRICT = "本服务未配置辖区网格（WANGGE_DISTRICT_DIR），无法定位"


class UnlocatedOut(BaseModel):
    message_id: int
    version: int = Field(description="Send it back with an assignment: a changed entry fails.")
    title: str
    content: str
    created_at: Timestamp
    street_code: str = Field(description="The list it is on: a street's code, empty for the "
                             "district's own (messages naming no street).")  # fmt: skip
    street_name: str
    category: str
    case_id: int | None
    hints: list[str] = Field(description="The place names found (registered or not).")


class UnlocatedList(BaseModel):
    total: int = Field(description="How many open entries match the filter.")
    offset: int
    items: list[UnlocatedOut]


class StreetCount(BaseModel):
    code: str = Field(description="Street code; empty for the district's own list.")
    name: str
    open: int


class UnlocatedStreets(BaseModel):
    total: int
    streets: list[StreetCount]


class Listed(BaseModel):
    message_id: RowId
    version: Annotated[int, Field(ge=1)]


class AssignRequest(BaseModel):
    grid_id: ShortText
    messages: list[Listed] = Field(min_length=1, max_length=MAX_ASSIGN)


class AssignResponse(BaseModel):
    located: int
    grid_id: str
    grid_name: str
    street_name: str
    community_name: str


def _street_names(district: RouterDep) -> dict[str, str]:
    if district is None:
        return {}
    return {unit.id: unit.name for unit in district.registry.of_level("street")}


@router.get("")
def unlocated(
    store: StoreDep,
    district: RouterDep,
    _: ReviewerDep,
    street: Annotated[
        Code | None,
        Query(description="a street's code; empty: the district's own list; absent: every list"),
    ] = None,  # fmt: skip
    q: Annotated[Name | None, Query(description="a word of the title or text")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ASSIGN)] = 50,
) -> UnlocatedList:
    """The 待定位 list: messages naming no community, oldest first, a page at a time."""
    names = _street_names(district)
    with store.session() as session:
        total, rows = list_unlocated(session, UnlocatedFilter(street, q or None), offset, limit)
        items = [UnlocatedOut(**unlocated_out(entry, message, names)) for entry, message in rows]
    return UnlocatedList(total=total, offset=offset, items=items)


@router.get("/streets")
def unlocated_streets(store: StoreDep, district: RouterDep, _: ReviewerDep) -> UnlocatedStreets:
    """How many messages wait on each street's list (the district's own: code empty)."""
    names = _street_names(district)
    with store.session() as session:
        counts = open_by_street(session)
    streets = [StreetCount(code=code, name=names.get(code, "") if code else "未写街道", open=n)
               for code, n in sorted(counts.items())]  # fmt: skip
    return UnlocatedStreets(total=sum(counts.values()), streets=streets)


@router.post("/assign", responses=error_responses(409, 413))
def assign_grid(
    body: AssignRequest,
    request: Request,
    store: StoreDep,
    user: ReviewerDep,
    loaded: LoadedModelDep,
    district: RouterDep,
) -> AssignResponse:
    """Locate the listed messages in one grid, all or nothing; each is audited."""
    if district is None:
        raise HTTPException(409, NO_DISTRICT)
    place = _choices(request, loaded.meta.labels, district).grids.get(body.grid_id)
    entries = [(m.message_id, m.version) for m in body.messages]
    try:
        with store.session() as session:
            located = assign(session, entries, body.grid_id, place, user.username)
    except LocatingConflict as error:
        raise HTTPException(409, str(error)) from error
    except LocatingError as error:
        raise refused("locating_refused", ("body", "grid_id"), str(error)) from error
    assert place is not None
    return AssignResponse(located=len(located), grid_id=body.grid_id, grid_name=place["grid_name"],
                          street_name=place["street_name"],
                          community_name=place["community_name"])  # fmt: skip


__all__ = ["DISTRICT", "router"]
