"""The care register's rules (P2.2 visits and patrols, P5.3 ledger with a named responsible worker): the
visit schedule as dated data, when a visit is due, what recording one changes, when one is missed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources

import pytest
from pydantic import ValidationError

from common.errors import DomainError
from services.relief.domain.care import (
    CareEntry,
    CareGroup,
    CareVisit,
    VisitMode,
    VisitOutcome,
    check_day,
    due_status,
    enrol,
    load_visit_schedule,
    mark_missed,
    reassign,
    record_visit,
)

pytestmark = pytest.mark.unit

SCHEDULE = load_visit_schedule(
    resources.files("services.relief.data").joinpath("care_visits.yaml").read_text(encoding="utf-8")
)
DAY = date(2021, 2, 10)


def entry(*groups: CareGroup, on: date = DAY) -> CareEntry:
    return enrol(
        entry_id="R-R1",
        name="张三",
        district="500103",
        groups=groups or (CareGroup.ELDERLY_ALONE,),
        worker="worker-a",
        worker_shown="王 社工（worker-a）",
        source="registry",
        enrolled_on=on,
        enrolled_by="officer-a",
        schedule=SCHEDULE,
        recipient_id="R1",
    )


def visit(on: date, outcome: VisitOutcome = VisitOutcome.WELL, mode: VisitMode = VisitMode.IN_PERSON) -> CareVisit:
    return CareVisit(
        visit_id=f"R-R1|{on}|worker-a|{mode}",
        visited_on=on,
        worker="worker-a",
        worker_shown="worker-a",
        mode=mode,
        outcome=outcome,
        needs=("special_group_visit",) if outcome is VisitOutcome.NEEDS_FOUND else (),
        recorded_at=datetime(2021, 2, 20, tzinfo=UTC),
    )


def test_p2_2_p5_3_every_group_has_a_dated_visit_rule_citing_its_provision():
    """P2.2, P5.3: the shipped schedule covers every group; each rule cites the provision it serves."""
    assert {r.group for r in SCHEDULE.rules} == set(CareGroup)
    for rule in SCHEDULE.rules:
        assert rule.provisions and all(p in ("P2.2", "P5.3") for p in rule.provisions)
        assert rule.id.startswith(f"V-{rule.provisions[0]}-")
    no_carer = SCHEDULE.rule_in_force(CareGroup.NO_CARER, DAY)
    assert no_carer is not None and no_carer.provisions == ("P5.3",)
    assert SCHEDULE.example is True  # the notice fixes no interval: shipped figures are examples


def test_p2_2_schedule_missing_a_group_or_citing_no_provision_is_refused_at_start_up():
    """P2.2: a schedule that leaves a group without a rule, or a rule without a provision id, does not load."""
    with pytest.raises(ValidationError, match="groups without a visit rule"):
        load_visit_schedule(
            "version: 1\nrules:\n  - {id: V-P2.2-X, group: orphan, provisions: [P2.2], every_days: 7,"
            " effective_from: 2021-02-04, name_zh: 孤儿, name_en: Orphans}\n"
        )
    with pytest.raises(ValidationError, match="provision ids look like"):
        load_visit_schedule(
            "version: 1\nrules:\n  - {id: V-P2.2-X, group: orphan, provisions: [two-two], every_days: 7,"
            " effective_from: 2021-02-04, name_zh: 孤儿, name_en: Orphans}\n"
        )


def test_p2_2_a_later_dated_rule_applies_from_its_day_on():
    """P2.2: a district shortens an interval from a date on; the old rule still applies before it."""
    text = resources.files("services.relief.data").joinpath("care_visits.yaml").read_text(encoding="utf-8")
    text += (
        "  - {id: V-P2.2-ELDERLY-ALONE-WINTER, group: elderly_alone, provisions: [P2.2], every_days: 3,"
        " effective_from: 2021-12-01, name_zh: 冬季, name_en: Winter}\n"
    )
    schedule = load_visit_schedule(text)
    assert schedule.rule_for([CareGroup.ELDERLY_ALONE], date(2021, 11, 30)).every_days == 7
    assert schedule.rule_for([CareGroup.ELDERLY_ALONE], date(2021, 12, 1)).id == "V-P2.2-ELDERLY-ALONE-WINTER"


def test_p5_3_enrolment_names_the_worker_and_the_first_visit_is_due_one_interval_later():
    """P5.3: a named responsible worker; the first visit is due one interval (7 days, elderly) after."""
    e = entry()
    assert e.worker == "worker-a" and e.rule_id == "V-P2.2-ELDERLY-ALONE" and e.provisions == ("P2.2",)
    assert e.next_due_on == date(2021, 2, 17)


def test_p2_2_a_person_in_several_groups_is_visited_by_the_shortest_interval():
    """P2.2 + P5.3: an elderly person left without carers by the epidemic: every 3 days (P5.3), not 7."""
    e = entry(CareGroup.ELDERLY_ALONE, CareGroup.NO_CARER)
    assert e.rule_id == "V-P5.3-NO-CARER" and e.next_due_on == date(2021, 2, 13)


def test_p2_2_a_visit_moves_the_next_due_day_and_a_retry_changes_nothing():
    """P2.2: a visit that reached the person is due again one interval after it; the same visit twice: None."""
    after = record_visit(entry(), visit(date(2021, 2, 15)), SCHEDULE, date(2021, 2, 20))
    assert after is not None
    assert after.last_visit_on == date(2021, 2, 15) and after.next_due_on == date(2021, 2, 22)
    assert after.visit_count == 1
    assert record_visit(after, visit(date(2021, 2, 15)), SCHEDULE, date(2021, 2, 20)) is None


def test_p2_2_nobody_reached_is_recorded_but_the_visit_is_still_owed():
    """P2.2: a knock on a closed door counts as an attempt, not a visit: the due day stays."""
    after = record_visit(entry(), visit(date(2021, 2, 15), VisitOutcome.NOT_REACHED), SCHEDULE, date(2021, 2, 20))
    assert after is not None and after.visit_count == 1
    assert after.next_due_on == date(2021, 2, 17) and after.last_visit_on is None


def test_p2_2_a_visit_cannot_be_dated_in_the_future():
    with pytest.raises(DomainError) as refused:
        record_visit(entry(), visit(date(2021, 2, 21)), SCHEDULE, date(2021, 2, 20))
    assert refused.value.field == "visited_on" and refused.value.status == 422


def test_p2_2_a_visit_not_recorded_by_the_end_of_its_day_is_missed_once():
    """P2.2, P5.3: due 17 Feb, nothing recorded: on the 18th one VisitMissed names the worker; never twice."""
    e = entry()
    assert mark_missed(e, date(2021, 2, 17), today=date(2021, 2, 17)) is None  # its day is not over yet
    missed = mark_missed(e, date(2021, 2, 17), today=date(2021, 2, 18))
    assert missed is not None and missed.missed == (date(2021, 2, 17),)
    [item] = missed.outbox
    event = item["event"]
    assert event["type"] == "care.visit_missed" and event["worker"] == "worker-a"
    assert event["due_on"] == "2021-02-17" and event["rule_id"] == "V-P2.2-ELDERLY-ALONE"
    assert event["provisions"] == ["P2.2"] and event["entry_id"] == "R-R1" and event["district"] == "500103"
    assert mark_missed(missed, date(2021, 2, 17), today=date(2021, 2, 19)) is None


def test_p2_2_a_visit_recorded_in_time_supersedes_the_due_day():
    """P2.2: visited on the 16th, the 17th is no longer owed: nothing is reported for it."""
    after = record_visit(entry(), visit(date(2021, 2, 16)), SCHEDULE, date(2021, 2, 16))
    assert after is not None
    assert mark_missed(after, date(2021, 2, 17), today=date(2021, 2, 18)) is None


def test_p2_2_due_status_and_the_day_the_sweep_looks():
    e = entry()  # due 17 Feb
    assert due_status(e, date(2021, 2, 10)) == "scheduled"
    assert due_status(e, date(2021, 2, 14)) == "due"
    assert due_status(e, date(2021, 2, 17)) == "due"
    assert due_status(e, date(2021, 2, 18)) == "overdue"
    assert check_day(date(2021, 2, 17), date(2021, 2, 10)) == date(2021, 2, 18)
    assert check_day(date(2021, 2, 17), date(2021, 3, 1)) == date(2021, 3, 1)  # scheduled late: today


def test_p5_3_reassigning_names_the_new_worker_and_the_next_miss_goes_to_them():
    """P5.3: the register always names who is responsible; an alert goes to the one named at the time."""
    e = reassign(entry(), "worker-b", "worker-b")
    assert e is not None and e.worker == "worker-b"
    assert reassign(e, "worker-b", "worker-b") is None
    missed = mark_missed(e, date(2021, 2, 17), today=date(2021, 2, 18))
    assert missed is not None and missed.outbox[0]["event"]["worker"] == "worker-b"
