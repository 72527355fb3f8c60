"""Working-day deadlines (P6.2, P4.1): targets in days count the State Council's 2026 schedule of public
holidays and make-up workdays (调休); a year the calendar does not hold counts weekdays only; emergencies
and hours targets run round the clock; pauses shift a working-day deadline by working time only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.notify.domain.case import CaseState, apply, timers
from services.notify.domain.clocks import Clock
from services.notify.domain.pauses import pause, resume
from services.notify.domain.policy import load_policy, packaged_calendar
from services.notify.domain.workdays import CalendarError, WorkCalendar, parse_years
from tests.support.events import dispatched, help_requested, new_case_id

pytestmark = pytest.mark.unit
CQ = timezone(timedelta(hours=8))
POLICY = load_policy()
HEADER = "date,weekday,kind,name_zh,name_en\n"


def cq(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=CQ)


def standard_case(at: datetime) -> CaseState:
    return apply(None, dispatched(new_case_id(), at=at, sla_class="standard"), POLICY)


def citizen(state: CaseState) -> Clock:
    assert state.citizen is not None
    return state.citizen


def lead_clock(state: CaseState) -> Clock:
    clock = state.open_lead()
    assert clock is not None
    return clock


def test_the_packaged_2026_schedule_marks_the_spring_festival_week_off_and_its_make_up_saturdays_worked() -> None:
    calendar = packaged_calendar(CQ)
    assert [d for d in range(15, 24) if calendar.is_working(date(2026, 2, d))] == []  # 2026-02-15..23 off
    assert calendar.is_working(date(2026, 2, 14)) and calendar.is_working(date(2026, 2, 28))  # make-up Saturdays
    assert not calendar.is_working(date(2026, 2, 7))  # an ordinary Saturday rests
    assert calendar.is_working(date(2026, 2, 24))  # the first workday after the holiday
    assert [d for d in range(1, 8) if calendar.is_working(date(2026, 10, d))] == []  # National Day week
    assert calendar.is_working(date(2026, 9, 20)) and calendar.is_working(date(2026, 10, 10))  # Sun, Sat worked


def test_five_working_days_from_the_last_workday_before_the_spring_festival_fall_due_after_it_P6_2() -> None:
    # Received on Saturday 14 February, a make-up workday: 24, 25, 26, 27 and 28 February (Saturday,
    # another make-up workday) are the five working days.
    state = standard_case(cq(2026, 2, 14))
    assert citizen(state).due("resolution") == cq(2026, 2, 28)
    assert citizen(state).due("first_contact") == cq(2026, 2, 24)  # one working day: after the holiday
    assert lead_clock(state).due("resolution") == cq(2026, 2, 28)  # the department's clock counts the same
    assert citizen(state).targets["resolution"].working_days
    # On Friday the 13th the make-up Saturday is the first of the five.
    assert citizen(standard_case(cq(2026, 2, 13))).due("resolution") == cq(2026, 2, 27)


def test_a_case_received_during_the_holiday_waits_for_the_first_workday_then_counts_whole_days() -> None:
    state = standard_case(cq(2026, 2, 15))  # Sunday, the first day off
    assert citizen(state).due("resolution") == datetime(2026, 3, 1, 0, 0, tzinfo=CQ)  # end of 28 February


def test_national_day_week_and_its_make_up_saturday_count_as_the_schedule_says_P6_2() -> None:
    # Wednesday 30 September: 1-7 October off, then 8 (Thu), 9 (Fri), 10 (Sat, make-up), 12 and 13 October.
    assert citizen(standard_case(cq(2026, 9, 30))).due("resolution") == cq(2026, 10, 13)
    # Friday 18 September: Sunday the 20th is a make-up workday, Saturday the 19th is not.
    assert citizen(standard_case(cq(2026, 9, 18))).due("resolution") == cq(2026, 9, 24)


def test_the_warning_comes_at_three_quarters_of_the_working_time() -> None:
    state = standard_case(cq(2026, 2, 14))
    warning = next(
        t
        for t in timers(state, POLICY)
        if t.payload["clock"] == "citizen" and t.payload["target"] == "resolution" and t.payload["stage"] == "warning"
    )
    # 5 working days less a quarter of them (30 h of working time) before 28 Feb 10:00: 27 Feb 04:00.
    assert warning.at == cq(2026, 2, 27, 4)


def test_emergencies_and_hours_targets_run_round_the_clock_over_the_holiday_P2_2_P4_1() -> None:
    emergency = apply(None, dispatched(new_case_id(), at=cq(2026, 2, 15), sla_class="emergency"), POLICY)
    assert citizen(emergency).due("resolution") == cq(2026, 2, 15, 12)
    same_day = apply(None, dispatched(new_case_id(), at=cq(2026, 2, 15), sla_class="same_day"), POLICY)
    assert citizen(same_day).due("resolution") == datetime(2026, 2, 16, 0, 0, tzinfo=CQ)  # local midnight
    standard = standard_case(cq(2026, 2, 15))
    assert citizen(standard).due("sign_for") == cq(2026, 2, 15, 18)  # 8 hours, holiday or not
    # A standard-class case flagged as an emergency keeps its day targets round the clock.
    call = dispatched(new_case_id(), at=cq(2026, 2, 15), sla_class="standard").model_copy(update={"emergency": True})
    flagged = apply(None, call, POLICY)
    assert citizen(flagged).due("resolution") == cq(2026, 2, 20)
    assert not citizen(flagged).targets["resolution"].working_days


def test_a_pause_over_the_weekend_shifts_the_deadline_by_the_working_time_it_took() -> None:
    cid = new_case_id()
    state = apply(None, dispatched(cid, at=cq(2026, 3, 4), sla_class="standard"), POLICY)  # Wednesday
    assert citizen(state).due("resolution") == cq(2026, 3, 11)
    state = pause(state, POLICY, department=None, reason="waiting_for_caller", by="w-1", at=cq(2026, 3, 6, 18))
    state = resume(state, by="w-1", at=cq(2026, 3, 9, 8))  # Friday 18:00 to Monday 08:00: 14 h of working time
    # 14 h after Wednesday 10:00, not 2.5 calendar days later
    assert citizen(state).due("resolution") == cq(2026, 3, 12, 0)
    # A pause inside the holiday takes no working time at all.
    held = standard_case(cq(2026, 2, 14))
    held = pause(held, POLICY, department=None, reason="caller_unreachable", by="w-1", at=cq(2026, 2, 16))
    held = resume(held, by="w-1", at=cq(2026, 2, 20))
    assert citizen(held).due("resolution") == cq(2026, 2, 28)


def test_a_target_running_past_the_calendar_counts_weekdays_only_and_says_so_once() -> None:
    told: list[int] = []
    calendar = packaged_calendar(CQ)
    calendar.on_uncovered = told.append
    policy = load_policy(work_calendar=calendar)
    first = apply(None, dispatched(new_case_id(), at=cq(2026, 12, 28), sla_class="standard"), policy)
    second = apply(None, dispatched(new_case_id(), at=cq(2026, 12, 30), sla_class="standard"), policy)
    # 2027's schedule is not published in our data: 29, 30, 31 Dec, then Friday 1 and Monday 4 January.
    assert citizen(first).due("resolution") == cq(2027, 1, 4)
    assert citizen(second).due("resolution") == cq(2027, 1, 6)
    assert citizen(first).targets["resolution"].weekdays_only == [2027]
    assert told == [2027]  # one warning, however many deadlines


def test_a_year_added_later_counts_from_then_on() -> None:
    calendar = packaged_calendar(CQ)
    rows = [
        "2027-01-01,Fri,holiday,元旦,New Year's Day",
        *(f"2027-02-{d:02d},{wd},holiday,春节,Spring Festival" for d, wd in ((8, "Mon"), (9, "Tue"), (10, "Wed"))),
        *(f"2027-02-{d:02d},{wd},holiday,春节,Spring Festival" for d, wd in ((11, "Thu"),)),
        "2027-02-20,Sat,workday,春节调休上班,Spring Festival make-up workday",
        *(f"2027-10-0{d},{wd},holiday,国庆节,National Day" for d, wd in ((1, "Fri"), (4, "Mon"), (5, "Tue"))),
        *(f"2027-10-0{d},{wd},holiday,国庆节,National Day" for d, wd in ((6, "Wed"), (7, "Thu"))),
        "2027-10-09,Sat,workday,国庆节调休上班,National Day make-up workday",
        *(f"2027-05-0{d},{wd},holiday,劳动节,Labour Day" for d, wd in ((3, "Mon"), (4, "Tue"))),
        "2027-04-05,Mon,holiday,清明节,Qingming Festival",
        "2027-06-09,Wed,holiday,端午节,Dragon Boat Festival",
        "2027-09-15,Wed,holiday,中秋节,Mid-Autumn Festival",
    ]  # an illustration of the format with 13 net days off, not the real 2027 schedule
    calendar.add_year(parse_years(HEADER + "\n".join(rows) + "\n", source="test", only=2027)[2027])
    policy = load_policy(work_calendar=calendar)
    state = apply(None, dispatched(new_case_id(), at=cq(2026, 12, 30), sla_class="standard"), policy)
    assert citizen(state).due("resolution") == cq(2027, 1, 7)  # 1 January is a holiday now
    assert citizen(state).targets["resolution"].weekdays_only == []


@pytest.mark.parametrize(
    ("rows", "field", "says"),
    [
        ("2026-02-30,Mon,holiday,春节,Spring Festival", "line 2: date", "is not a date"),
        ("2026-02-16,Tue,holiday,春节,Spring Festival", "line 2: weekday", "is a Mon"),
        ("2026-02-16,Mon,workday,调休,Make-up", "line 2: kind", "falls on a Saturday or a Sunday"),
        ("2026-02-16,Mon,day_off,春节,Spring Festival", "line 2: kind", "must be holiday or workday"),
        ("2027-02-16,Tue,holiday,春节,Spring Festival", "line 2: date", "is not in 2026"),
        ("2026-02-16,Mon,holiday,春节,Spring Festival", "body", "incomplete"),
    ],
)
def test_a_schedule_that_is_wrong_or_incomplete_is_refused_naming_the_line_and_why(rows, field, says) -> None:
    with pytest.raises(CalendarError) as refused:
        parse_years(HEADER + rows + "\n", source="test", only=2026)
    assert refused.value.field == field and says in refused.value.message_en
    assert refused.value.message_zh  # Chinese first, English too


def test_the_packaged_file_is_the_state_councils_complete_2026_schedule() -> None:
    years = packaged_calendar(CQ).years
    assert list(years) == [2026]
    assert (years[2026].holidays, years[2026].workdays) == (33, 6)
    assert isinstance(packaged_calendar(CQ), WorkCalendar)
    # every weekday not listed works, every weekend day not listed rests
    assert packaged_calendar(CQ).is_working(date(2026, 3, 2)) and not packaged_calendar(CQ).is_working(date(2026, 3, 1))


def test_the_clock_starts_at_the_call_when_notify_saw_it_and_counts_working_days_from_there() -> None:
    cid = new_case_id()
    state = apply(None, help_requested(cid, at=cq(2026, 2, 14, 9).astimezone(UTC)), POLICY)
    state = apply(state, dispatched(cid, at=cq(2026, 2, 14, 11), sla_class="standard"), POLICY)
    assert citizen(state).due("resolution") == cq(2026, 2, 28, 9)


def test_p6_2_the_calendar_says_which_years_it_should_hold_by_now_and_does_not() -> None:
    """P6.2: working-day deadlines need the year's schedule. Through September only this year is asked
    for; from October (the State Council publishes the next year's in October or November) the next one
    too, since deadlines of cases received in late December run into it."""
    from services.notify.calendars import missing_years

    packaged = packaged_calendar(CQ)  # 2026
    assert missing_years(packaged, date(2026, 9, 30)) == []
    assert missing_years(packaged, date(2026, 10, 1)) == [2027]
    assert missing_years(packaged, date(2026, 12, 31)) == [2027]
    assert missing_years(packaged, date(2027, 3, 1)) == [2027]
    assert missing_years(packaged, date(2027, 11, 1)) == [2027, 2028]
    empty = WorkCalendar(CQ)
    assert missing_years(empty, date(2026, 3, 1)) == [2026]
    assert missing_years(empty, date(2026, 10, 1)) == [2026, 2027]
