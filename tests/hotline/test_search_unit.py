"""Search filters and scope, and the callbacks' due rule (H-CALLBACK-DUE, P6.2), as pure rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from common.errors import Forbidden
from common.principal import Principal, Role
from contracts.events.hotline import CaseReopened
from contracts.events.router import CaseClosed, CaseResolved
from services.hotline.domain import project_status
from services.hotline.domain.callback import (
    DEFAULT_CALLBACK_DUE_HOURS,
    callback_due_at,
    end_of_business_day,
    resolved_by_for_due_list,
)
from services.hotline.domain.search import CaseFilter, received_range, scoped_district, single_day
from services.hotline.schemas import CaseSearchIn
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore

pytestmark = pytest.mark.unit

CASE = "CQ-20260301-000001"
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def who(role: Role, district: str | None) -> Principal:
    return Principal(sub="u", role=role, district=district)


def test_an_operator_searches_the_whole_city_as_lookups_do() -> None:
    assert scoped_district(who(Role.OPERATOR, "500103"), None) is None
    assert scoped_district(who(Role.OPERATOR, "500103"), "500106") == "500106"


def test_a_district_coordinator_is_held_to_their_district() -> None:
    assert scoped_district(who(Role.COORDINATOR, "500106"), None) == "500106"
    assert scoped_district(who(Role.COORDINATOR, "500106"), "500106") == "500106"
    with pytest.raises(Forbidden) as refused:
        scoped_district(who(Role.COORDINATOR, "500106"), "500103")
    assert refused.value.field == "district" and "本区县" in refused.value.message_zh


def test_city_level_coordinators_and_admins_search_every_district() -> None:
    assert scoped_district(who(Role.COORDINATOR, "city"), None) is None
    assert scoped_district(who(Role.ADMIN, "500106"), "500103") == "500103"


def test_received_days_are_chongqing_calendar_days_with_the_last_included() -> None:
    first, before = received_range(date(2026, 3, 9), date(2026, 3, 10))
    assert first == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)
    assert before == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    assert received_range(None, None) == (None, None)
    assert single_day(date(2026, 3, 9), date(2026, 3, 9)) == "20260309"
    assert single_day(date(2026, 3, 9), date(2026, 3, 10)) is None


def test_the_callback_is_due_72_hours_after_the_resolution_by_default() -> None:
    assert DEFAULT_CALLBACK_DUE_HOURS == 72 and Settings().callback_due_hours == 72
    assert callback_due_at(T0, 72) == T0 + timedelta(days=3)


def test_the_worklist_holds_the_resolutions_due_by_the_end_of_the_chongqing_day() -> None:
    now = datetime(2026, 3, 5, 15, 30, tzinfo=UTC)  # 23:30 in Chongqing
    assert end_of_business_day(now) == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)
    assert resolved_by_for_due_list(now, 72, upcoming=False) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    assert resolved_by_for_due_list(now, 72, upcoming=True) is None


def test_a_resolution_awaits_its_callback_and_a_reopening_clears_it() -> None:
    resolved = CaseResolved(case_id=CASE, actor="w", outcome="ok", occurred_at=T0 + timedelta(hours=5))
    state = project_status(CASE, received_at=T0, emergency=False, events=[resolved])
    assert state.awaiting_callback and state.resolved_at == T0 + timedelta(hours=5)
    reopened = CaseReopened(case_id=CASE, operator_id="op", reason="x", occurred_at=T0 + timedelta(hours=6))
    state = project_status(CASE, received_at=T0, emergency=False, events=[resolved, reopened])
    assert not state.awaiting_callback and state.resolved_at is None


def test_a_case_closed_without_a_resolution_is_due_from_its_closing() -> None:
    closed = CaseClosed(case_id=CASE, actor="c", occurred_at=T0 + timedelta(hours=2))
    state = project_status(CASE, received_at=T0, emergency=False, events=[closed])
    assert state.awaiting_callback and state.resolved_at == T0 + timedelta(hours=2)


def test_search_filters_become_one_query() -> None:
    query = HotlineStore.search_query(
        CaseFilter(
            case_id="CQ-2026",
            phone_key="abc",
            name="王(",
            address="民族路",
            needs=("a", "b"),
            statuses=("resolved",),
            emergency=False,
            received_from=T0,
        )
    )
    assert query == {
        "_id": {"$regex": "^CQ\\-2026"},
        "phone_key": "abc",
        "event.caller.name": {"$regex": "王\\("},
        "$or": [{"event.place.address": {"$regex": "民族路"}}, {"event.place.township": {"$regex": "民族路"}}],
        "needs": {"$in": ["a", "b"]},
        "status_code": "resolved",
        "emergency": False,
        "received_at": {"$gte": T0},
    }
    assert HotlineStore.search_query(CaseFilter(case_id=CASE)) == {"_id": CASE, "day": "20260301"}
    assert HotlineStore.search_query(CaseFilter()) == {}


def test_search_parameters_are_normalised_and_checked() -> None:
    q = CaseSearchIn(reason="核对", phone="+86 139-1234-5678", case_id="cq-20260301", need=["homeless_cold"])
    assert q.phone == "13912345678" and q.case_id == "CQ-20260301"
    with pytest.raises(ValidationError) as bad:
        CaseSearchIn(reason="核对", received_from=date(2026, 3, 2), received_to=date(2026, 3, 1), page_size=0)
    fields = {e["loc"][0]: e["msg"] for e in bad.value.errors()}
    assert set(fields) == {"received_to", "page_size"} and "结束日期早于开始日期" in fields["received_to"]
    with pytest.raises(ValidationError, match="案件编号格式"):
        CaseSearchIn(reason="核对", case_id="CQ-20260301-00000X")


def test_the_slip_escapes_what_the_caller_said() -> None:
    from contracts.events.hotline import Caller, HelpRequested, Place
    from services.hotline.slip import render_slip

    event = HelpRequested(
        case_id=CASE,
        correlation_id=CASE,
        received_at=T0,
        operator_id="op-1",
        caller=Caller(name="<b>王五</b>", phone="13812345678"),
        place=Place(district="500103", address="<script>alert(1)</script>"),
        needs=("temp_assist_major",),
        description="<img src=x onerror=alert(1)>",
    )
    status = project_status(CASE, received_at=T0, emergency=False, events=[])
    page = render_slip(event, status, printed_by="王（op-1）", printed_at=T0)
    assert "<script>alert" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "2026-03-01 10:00" in page and "尚未派单" in page  # Chongqing time; not dispatched yet
