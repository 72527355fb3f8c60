"""Search filters and scope, and the callbacks' due rule (H-CALLBACK-DUE, P6.2), as pure rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from common.errors import Forbidden
from common.principal import Principal, Role
from common.text_terms import query_terms, text_terms
from contracts.events.hotline import Caller, CaseReopened, HelpRequested, Place
from contracts.events.router import CaseClosed, CaseResolved
from services.hotline.domain import project_status
from services.hotline.domain.callback import (
    DEFAULT_CALLBACK_DUE_HOURS,
    callback_due_at,
    end_of_business_day,
    resolved_by_for_due_list,
)
from services.hotline.domain.search import (
    CaseFilter,
    days_between,
    entry_matches,
    index_equalities,
    received_range,
    scoped_district,
    search_entry,
    single_day,
)
from services.hotline.schemas import CaseSearchIn
from services.hotline.settings import Settings

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


def test_search_filters_the_index_answers_by_equality_are_equalities() -> None:
    query = index_equalities(
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
    assert query == {"phone_key": "abc", "status": "resolved", "emergency": False}  # the rest: entry_matches
    assert index_equalities(CaseFilter(case_id=CASE)) == {"_id": CASE, "day": "20260301"}
    assert index_equalities(CaseFilter(case_id="CQ-20260301-00", needs=("a",))) == {"day": "20260301", "needs": "a"}
    assert index_equalities(CaseFilter()) == {}


def test_every_substring_of_a_text_is_found_by_terms_the_text_is_filed_under() -> None:
    text = "幸福路 6666 号（Ａ座）"
    filed = text_terms("a", text)
    for query in ("幸", "幸福路", "路 66", "6666 号", "66", "a座", "Ａ座", "福路6666号"):
        assert query_terms("a", query) and set(query_terms("a", query)) <= filed, query
    assert query_terms("a", "幸福路 6666")[0] == "a:6666"  # a house number is the most telling term
    assert not set(query_terms("a", "幸福路 7")) <= filed and query_terms("n", " ") == []


def test_a_candidate_is_a_result_only_when_it_answers_every_filter() -> None:
    event = HelpRequested(
        case_id=CASE,
        correlation_id=CASE,
        received_at=T0,
        operator_id="op",
        caller=Caller(name="上官婉儿", phone="13887654321", id_card="11010519491231002X"),
        place=Place(district="500106", township="小龙坎街道", address="天陈路 88 号"),
        needs=("temp_assist_major",),
        emergency=True,
    )
    status = project_status(CASE, received_at=T0, emergency=True, events=[])
    entry = search_entry(event, {"phone": "k1", "id_card": "k2"}, status)
    assert entry["caller_name"] == "上***" and entry["phone_masked"] == "138****4321"
    assert "13887654321" not in str(entry) and "11010519491231002X" not in str(entry)
    found = (
        CaseFilter(case_id="CQ-20260301"),
        CaseFilter(phone_key="k1", id_card_key="k2", district="500106", emergency=True, day="20260301"),
        CaseFilter(name="婉儿", address="陈路 88", needs=("x", "temp_assist_major"), statuses=("received",)),
        CaseFilter(address="小龙坎", received_from=T0, received_before=T0 + timedelta(seconds=1)),
    )
    missed = (
        CaseFilter(case_id="CQ-20260302"),
        CaseFilter(phone_key="k2"),
        CaseFilter(name="婉 儿x"),
        CaseFilter(address="路 88 号 1"),
        CaseFilter(needs=("homeless_cold",)),
        CaseFilter(statuses=("resolved",)),
        CaseFilter(emergency=False),
        CaseFilter(received_before=T0),
        CaseFilter(district="500103"),
    )
    assert all(entry_matches(f, entry) for f in found)
    assert not any(entry_matches(f, entry) for f in missed)


def test_a_range_of_days_is_walked_newest_first_within_its_bounds() -> None:
    days = ["20260301", "20260303", "20260302", "20260305"]
    start, end = received_range(date(2026, 3, 2), date(2026, 3, 3))
    assert days_between(days, CaseFilter(received_from=start, received_before=end)) == ["20260303", "20260302"]
    assert days_between(days, CaseFilter()) == ["20260305", "20260303", "20260302", "20260301"]
    assert days_between(days, CaseFilter(day="20260302")) == ["20260302"]


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
