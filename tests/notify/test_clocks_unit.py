"""Clock arithmetic: pauses, re-dispatch keeping the citizen clock, one clock per department assignment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.events.hotline import CallbackRecorded, CaseReopened
from contracts.events.relief import GrantApproved, GrantPaid
from contracts.events.router import (
    CaseProgressRecorded,
    CaseReassigned,
    CasesMerged,
    CoHandlerTaskClosed,
    LeadResolved,
)
from services.notify.domain.case import apply, timers
from services.notify.domain.pauses import PauseRefused, pause, resume
from services.notify.domain.policy import load_policy
from services.notify.domain.summary import summary
from tests.support.events import T0, co, dispatched, lead, minutes, new_case_id, resolved, returned, signed

pytestmark = pytest.mark.unit
POLICY = load_policy()
# A Wednesday, 10:00 in Chongqing, in an ordinary week (T0 falls in the 2026 Spring Festival holiday):
# five working days later is the next Wednesday (P6.2, the 2026.01 policy counts working days).
T1 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)


def fold(*events):
    state = None
    for event in events:
        state = apply(state, event, POLICY)
    return state


def test_emergency_sign_for_due_in_30_minutes_and_resolution_in_2_hours_P2_2() -> None:
    cid = new_case_id()
    state = fold(dispatched(cid, sla_class="emergency"))
    assert state.citizen.due("sign_for") == T0 + minutes(30)
    assert state.citizen.due("resolution") == T0 + timedelta(hours=2)
    lead_clock = state.open_lead()
    assert lead_clock.department == "civil_affairs" and lead_clock.due("sign_for") == T0 + minutes(30)
    assert state.citizen.targets["sign_for"].provisions == ("P2.2",)


def test_warning_fires_at_75_percent_of_the_target_then_breach_then_escalation_tiers_P6_2() -> None:
    cid = new_case_id()
    specs = [
        t
        for t in timers(fold(dispatched(cid, sla_class="emergency")), POLICY)
        if t.payload["clock"] == "citizen" and t.payload["target"] == "resolution"
    ]
    stages = [(t.payload["stage"], t.payload.get("tier"), t.at - T0) for t in specs]
    assert stages == [
        ("warning", None, timedelta(minutes=90)),
        ("breach", None, timedelta(hours=2)),
        ("escalation", "department_head", timedelta(hours=2)),
        ("escalation", "district_coordinator", timedelta(hours=2, minutes=15)),
        ("escalation", "city_coordinator", timedelta(hours=2, minutes=30)),
    ]
    assert all(t.payload["rule_id"] == "SLA-EMERGENCY-RESOLVE" for t in specs)


def test_department_clocks_only_warn_and_breach_they_do_not_escalate() -> None:
    cid = new_case_id()
    specs = [t for t in timers(fold(dispatched(cid)), POLICY) if t.payload["clock"] == "department"]
    assert {t.payload["stage"] for t in specs} == {"warning", "breach"}


def test_citizen_clock_keeps_running_across_a_return_and_redispatch() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid, sla_class="standard", at=T1),
        signed(cid, at=T1 + minutes(10)),
        returned(cid, at=T1 + timedelta(hours=3)),
        dispatched(cid, sla_class="standard", hop=2, department="hrss", at=T1 + timedelta(hours=4)),
    )
    assert state.citizen.started_at == T1
    assert state.citizen.due("resolution") == T1 + timedelta(days=7)  # 5 working days
    assert state.citizen.targets["sign_for"].met_at == T1 + minutes(10)  # someone signed for it in time
    hrss = state.open_lead()
    assert hrss.department == "hrss" and hrss.started_at == T1 + timedelta(hours=4)
    assert hrss.due("resolution") == T1 + timedelta(hours=4, days=7)  # the department's own time
    civil = state.assignments[0]
    assert civil.end_reason == "returned:not_our_responsibility"
    assert state.stage == "dispatched" and state.lead_department == "hrss"


def test_each_co_handler_has_its_own_department_clock_closed_by_its_own_task() -> None:
    cid = new_case_id()
    state = fold(dispatched(cid, co_handlers=("health", "hrss")))
    by_dept = {c.department: c for c in state.assignments}
    assert set(by_dept) == {"civil_affairs", "health", "hrss"}
    assert set(by_dept["health"].targets) == {"sign_for", "resolution"}
    state = apply(
        state,
        CoHandlerTaskClosed(
            case_id=cid, occurred_at=T0 + minutes(30), actor="w-2", department="health", task_id="t", outcome="done"
        ),
        POLICY,
    )
    health = next(c for c in state.assignments if c.department == "health")
    assert not health.open and health.targets["resolution"].met_at == T0 + minutes(30)
    assert next(c for c in state.assignments if c.department == "hrss").open


def test_a_redelivered_or_republished_dispatch_changes_nothing() -> None:
    cid = new_case_id()
    event = dispatched(cid)
    once = fold(event)
    twice = apply(once, event, POLICY)
    republished = apply(once, dispatched(cid, at=T0 + minutes(1)), POLICY)  # same hop, new event id
    assert twice == once and republished == once
    assert once.texts == [f"{cid}|caller_dispatched"]


def test_reassigning_the_lead_ends_the_old_department_clock_and_starts_a_new_one() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid), CaseReassigned(case_id=cid, occurred_at=T0 + minutes(20), actor="co-1", lead=lead("housing"))
    )
    assert [(c.department, c.open) for c in state.assignments] == [("civil_affairs", False), ("housing", True)]
    assert state.citizen.started_at == T0


def test_pause_waiting_for_the_caller_shifts_unmet_targets_by_the_pause() -> None:
    cid = new_case_id()
    state = fold(dispatched(cid, sla_class="standard", at=T1), signed(cid, at=T1 + minutes(5)))
    state = pause(
        state, POLICY, department="civil_affairs", reason="waiting_for_caller", by="w-1", at=T1 + timedelta(hours=1)
    )
    state = resume(state, by="w-1", at=T1 + timedelta(hours=4))
    lead = state.open_lead()
    assert state.citizen is not None and lead is not None
    assert state.citizen.due("resolution") == T1 + timedelta(days=7, hours=3)
    assert lead.due("resolution") == T1 + timedelta(days=7, hours=3)
    assert state.citizen.due("sign_for") == T1 + timedelta(hours=8)  # already met before the pause
    assert state.citizen.pauses[0].reason == "waiting_for_caller"
    assert state.decisions[-2].what == "pause" and state.decisions[-2].by == "w-1"


def test_an_open_pause_is_capped_by_the_allowance_so_the_deadline_is_always_known() -> None:
    cid = new_case_id()
    state = fold(dispatched(cid, sla_class="same_day"))
    state = pause(state, POLICY, department=None, reason="caller_unreachable", by="w-1", at=T0 + minutes(10))
    assert state.citizen is not None
    # same_day allows one pause of at most 2 hours (P4.1): while paused, the deadline is that much later
    assert state.citizen.due("resolution") == datetime(2026, 2, 15, 16, 0, tzinfo=UTC) + timedelta(hours=2)
    state = resume(state, by="w-1", at=T0 + timedelta(hours=5))
    assert state.citizen is not None
    assert state.citizen.due("resolution") == datetime(2026, 2, 15, 18, 0, tzinfo=UTC)


def test_pauses_are_limited_in_number_and_refused_for_emergencies_P2_2() -> None:
    cid = new_case_id()
    emergency = fold(dispatched(cid, sla_class="emergency"))
    with pytest.raises(PauseRefused) as refused:
        pause(emergency, POLICY, department=None, reason="waiting_for_caller", by="w", at=T0)
    assert "P2.2" in refused.value.message_zh
    state = fold(dispatched(new_case_id(), sla_class="same_day"))
    state = resume(
        pause(state, POLICY, department=None, reason="waiting_for_caller", by="w", at=T0), by="w", at=T0 + minutes(5)
    )
    with pytest.raises(PauseRefused):
        pause(state, POLICY, department=None, reason="waiting_for_caller", by="w", at=T0 + minutes(6))
    with pytest.raises(PauseRefused) as bad_reason:
        pause(fold(dispatched(new_case_id())), POLICY, department=None, reason="lunch", by="w", at=T0)
    assert bad_reason.value.status == 422 and bad_reason.value.field == "reason"


def test_same_day_hazard_is_due_at_local_midnight_with_a_floor_P4_1() -> None:
    morning = fold(dispatched(new_case_id(), sla_class="same_day"))
    assert morning.citizen.due("resolution") == datetime(2026, 2, 15, 16, 0, tzinfo=UTC)  # 24:00 Chongqing
    late = fold(dispatched(new_case_id(), sla_class="same_day", at=datetime(2026, 2, 15, 15, 0, tzinfo=UTC)))
    assert late.citizen.due("resolution") == datetime(2026, 2, 15, 19, 0, tzinfo=UTC)  # at least 4 hours


def test_grant_approved_must_be_paid_in_the_same_month_P2_1() -> None:
    cid = new_case_id()
    approved = GrantApproved(
        case_id=cid,
        occurred_at=T0,
        grant_id="G-1",
        rule_id="P5.2a",
        district="500103",
        amount_yuan="1400",
        approved_on=date(2026, 2, 15),
    )
    state = fold(approved)
    clock = state.payments[0]
    assert clock.due("payment") == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)  # 1 March 00:00 in Chongqing
    assert clock.targets["payment"].provisions == ("P2.1", "P6.1")
    assert any(t.payload["target"] == "payment" for t in timers(state, POLICY))
    paid = apply(
        state,
        GrantPaid(
            case_id=cid,
            occurred_at=T0 + timedelta(days=3),
            grant_id="G-1",
            rule_id="P5.2a",
            district="500103",
            amount_yuan="1400",
            payment_reference="B-1",
        ),
        POLICY,
    )
    assert paid.payments[0].met_on_time("payment") is True
    assert not [t for t in timers(paid, POLICY) if t.payload["target"] == "payment"]


def test_unknown_class_falls_back_to_standard_and_records_why_P6_3() -> None:
    state = fold(dispatched(new_case_id(), sla_class="turbo"))
    assert state.sla_class == "standard" and state.sla_class_requested == "turbo"
    decision = state.decisions[0]
    assert decision.facts["fell_back"] is True and decision.rule_id == "SLA-STANDARD"


def test_resolution_stops_the_case_timers_and_asks_for_one_resolution_text() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid, sla_class="emergency"),
        signed(cid, at=T0 + minutes(10)),
        CaseProgressRecorded(
            case_id=cid,
            occurred_at=T0 + minutes(20),
            actor="w",
            department="civil_affairs",
            task_id="t",
            note="到达现场",
            first_contact=True,
        ),
        resolved(cid, at=T0 + minutes(90)),
    )
    assert timers(state, POLICY) == []
    assert state.texts == [f"{cid}|caller_dispatched", f"{cid}|caller_resolved|1"]
    facts = summary(state)
    assert facts["m_res_decided"] == 1 and facts["m_res_on_time"] == 1 and facts["m_open"] == 0
    assert facts["dept_clocks"][0]["m_sign_on_time"] == 1
    assert apply(state, resolved(cid, at=T0 + minutes(95)), POLICY) == state


def test_late_resolution_and_late_sign_for_count_as_late_once() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid, sla_class="emergency"),
        signed(cid, at=T0 + minutes(45)),
        resolved(cid, at=T0 + timedelta(hours=3)),
    )
    facts = summary(state)
    assert (facts["m_res_decided"], facts["m_res_on_time"]) == (1, 0)
    assert (facts["dept_clocks"][0]["m_sign_decided"], facts["dept_clocks"][0]["m_sign_on_time"]) == (1, 0)


def test_dissatisfied_callback_reopens_with_a_new_resolution_round() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid, at=T1),
        resolved(cid, at=T1 + timedelta(hours=5)),
        CallbackRecorded(
            case_id=cid, occurred_at=T1 + timedelta(hours=6), operator_id="op", satisfaction="dissatisfied"
        ),
        CaseReopened(case_id=cid, occurred_at=T1 + timedelta(hours=7), operator_id="op", reason="仍未解决"),
    )
    assert state.status == "open" and state.round == 2
    assert state.citizen.due("resolution") == T1 + timedelta(hours=7, days=7)  # 5 working days
    assert summary(state)["m_res_decided"] == 0
    state = apply(state, resolved(cid, at=T1 + timedelta(hours=9)), POLICY)
    assert state.texts[-1] == f"{cid}|caller_resolved|2"


def test_a_merged_case_stops_its_clocks_without_breaching() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid),
        CasesMerged(case_id=cid, occurred_at=T0 + minutes(3), actor="op", into_case_id="CQ-20260215-000001"),
    )
    assert state.status == "merged" and timers(state, POLICY) == []


def test_timer_ids_are_stable_for_the_same_state() -> None:
    cid = new_case_id()
    first = [t.id for t in timers(fold(dispatched(cid)), POLICY)]
    again = [t.id for t in timers(fold(dispatched(cid)), POLICY)]
    assert first == again and len(set(first)) == len(first)


def test_reopen_counts_once_whether_the_redispatch_or_the_callback_event_comes_first() -> None:
    cid = new_case_id()
    base = (dispatched(cid), resolved(cid, at=T0 + timedelta(hours=5)))
    reopen = CaseReopened(case_id=cid, occurred_at=T0 + timedelta(hours=7), operator_id="op", reason="仍未解决")
    redispatch = dispatched(cid, hop=2, at=T0 + timedelta(hours=7, seconds=1), cause="reopened")
    for order in ((reopen, redispatch), (redispatch, reopen)):
        state = fold(*base, *order)
        assert state.round == 2 and state.status == "open" and state.lead_department == "civil_affairs"
        assert state.open_lead().key == "dept:civil_affairs:2"
        assert state.citizen.open and state.citizen.targets["resolution"].met_at is None


def test_first_contact_breach_alerts_but_does_not_escalate() -> None:
    specs = timers(fold(dispatched(new_case_id(), sla_class="emergency")), POLICY)
    escalated = {t.payload["target"] for t in specs if t.payload["stage"] == "escalation"}
    assert escalated == {"sign_for", "resolution"}
    assert any(t.payload["target"] == "first_contact" and t.payload["stage"] == "breach" for t in specs)


def test_a_sign_for_read_after_the_resolution_still_counts_for_its_department() -> None:
    cid = new_case_id()
    state = fold(
        dispatched(cid, sla_class="emergency"), resolved(cid, at=T0 + minutes(90)), signed(cid, at=T0 + minutes(10))
    )
    assert state.assignments[0].targets["sign_for"].met_at == T0 + minutes(10)
    assert summary(state)["dept_clocks"][0]["m_sign_on_time"] == 1


def test_department_head_escalation_follows_the_current_lead_other_stages_stay() -> None:
    cid = new_case_id()
    before = fold(dispatched(cid, sla_class="emergency"))
    after = apply(
        before, CaseReassigned(case_id=cid, occurred_at=T0 + minutes(5), actor="co-1", lead=lead("housing")), POLICY
    )

    def citizen(state):
        return {t.id: t.payload for t in timers(state, POLICY) if t.payload["clock"] == "citizen"}

    old, new = citizen(before), citizen(after)
    moved = set(old) - set(new)
    assert moved and all("escalation:department_head|civil_affairs" in i for i in moved)
    assert all(p["department"] == "housing" for i, p in new.items() if "department_head" in i)


def lead_resolved(cid, at, *awaiting):
    return LeadResolved(
        case_id=cid,
        occurred_at=at,
        actor="w-1",
        department="civil_affairs",
        district="500103",
        task_id=f"{cid}-T1",
        outcome="已安置",
        awaiting=tuple(co(d) for d in awaiting),
    )


def test_p23_the_leads_resolution_stops_its_clock_and_a_late_co_handler_is_blamed_not_the_lead() -> None:
    """P2.3/P6.2: once the lead resolved its part, the lead's resolution clock is met; the caller's clock runs
    on; the case waits on the co-handler, whose department the overdue list and the escalations name."""
    cid = new_case_id()
    state = fold(
        dispatched(cid, sla_class="standard", at=T1, co_handlers=("health",)),
        signed(cid, at=T1 + minutes(10)),
        lead_resolved(cid, T1 + timedelta(days=1), "health"),
    )
    lead_clock = next(c for c in state.assignments if c.role == "lead")
    assert not lead_clock.open and lead_clock.targets["resolution"].met_at == T1 + timedelta(days=1)
    assert lead_clock.end_reason == "lead_resolved"
    assert state.status == "open" and state.citizen.open and state.citizen.targets["resolution"].met_at is None
    assert (state.stage, state.awaiting_co_handlers(), state.responsible_department()) == (
        "awaiting_co_handlers",
        ["health"],
        "health",
    )
    facts = summary(state)
    assert facts["responsible_department"] == "health" and facts["lead_department"] == "civil_affairs"
    citizen_escalations = [
        t for t in timers(state, POLICY) if t.payload["clock"] == "citizen" and t.payload["stage"] == "escalation"
    ]
    assert citizen_escalations and {t.payload["department"] for t in citizen_escalations} == {"health"}
    assert not any(t.payload["clock_key"] == lead_clock.key for t in timers(state, POLICY))
    done = apply(
        state,
        CoHandlerTaskClosed(
            case_id=cid,
            occurred_at=T1 + timedelta(days=2),
            actor="w-2",
            department="health",
            task_id="t",
            outcome="done",
        ),
        POLICY,
    )
    assert done.awaiting_co_handlers() == [] and done.responsible_department() == "civil_affairs"
    final = apply(done, resolved(cid, at=T1 + timedelta(days=2)), POLICY)
    assert final.status == "resolved" and final.citizen is not None
    assert final.citizen.targets["resolution"].met_at == T1 + timedelta(days=2)


def test_a_lead_resolved_event_read_twice_or_after_the_resolution_changes_nothing() -> None:
    cid = new_case_id()
    once = fold(dispatched(cid, co_handlers=("health",)), lead_resolved(cid, T0 + minutes(60), "health"))
    assert apply(once, lead_resolved(cid, T0 + minutes(61), "health"), POLICY) == once
    closed = fold(dispatched(cid), resolved(cid, at=T0 + minutes(30)))
    assert apply(closed, lead_resolved(cid, T0 + minutes(20)), POLICY) == closed
