"""A department's written answer to an escalation (督办回复, P6.2): recorded with who and when, and the
answered target climbs the escalation ladder no further; other targets keep theirs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.events.router import EscalationAcknowledged
from services.notify.domain.case import Escalation, apply, timers
from services.notify.domain.policy import load_policy
from tests.support.events import T0, dispatched, new_case_id

pytestmark = pytest.mark.unit
POLICY = load_policy()


def answer(cid: str, escalation_id: str = "esc-1", text: str = "已联系来电人，明日上门") -> EscalationAcknowledged:
    return EscalationAcknowledged(
        case_id=cid,
        occurred_at=T0 + timedelta(hours=3),
        actor="w-1",
        department="civil_affairs",
        district="500103",
        escalation_event_id=escalation_id,
        answer=text,
    )


def escalations(state, target: str) -> list[str]:
    return [
        t.payload["tier"]
        for t in timers(state, POLICY)
        if t.payload["stage"] == "escalation" and t.payload["clock"] == "citizen" and t.payload["target"] == target
    ]


def test_an_answered_escalation_stops_the_rest_of_that_targets_ladder_P6_2() -> None:
    cid = new_case_id()
    state = apply(None, dispatched(cid, sla_class="emergency"), POLICY)
    assert escalations(state, "sign_for") == ["department_head", "district_coordinator", "city_coordinator"]
    fired = Escalation(
        event_id="esc-1",
        clock_key="citizen",
        target="sign_for",
        tier="department_head",
        due_at=state.citizen.due("sign_for") if state.citizen else None,
    )
    state = apply(state, answer(cid), POLICY, escalation=fired)
    assert escalations(state, "sign_for") == []
    assert escalations(state, "resolution") == ["department_head", "district_coordinator", "city_coordinator"]
    (recorded,) = state.answers
    assert (recorded.answer, recorded.by, recorded.tier, recorded.target) == (
        "已联系来电人，明日上门",
        "w-1",
        "department_head",
        "sign_for",
    )
    decision = state.decisions[-1]
    assert decision.what == "escalation_answered" and decision.rule_id == "SLA-EMERGENCY-SIGN"
    assert decision.facts["reminders_stopped"] is True


def test_a_second_answer_to_the_same_escalation_keeps_the_first() -> None:
    cid = new_case_id()
    state = apply(None, dispatched(cid, sla_class="emergency"), POLICY)
    fired = Escalation(event_id="esc-1", clock_key="citizen", target="resolution", tier="department_head")
    once = apply(state, answer(cid), POLICY, escalation=fired)
    twice = apply(once, answer(cid, text="重复"), POLICY, escalation=fired)
    assert twice == once and [a.answer for a in twice.answers] == ["已联系来电人，明日上门"]


def test_an_answer_to_an_escalation_notify_never_recorded_is_kept_but_stops_nothing() -> None:
    cid = new_case_id()
    state = apply(None, dispatched(cid, sla_class="emergency"), POLICY)
    state = apply(state, answer(cid, "unknown"), POLICY, escalation=None)
    assert state.answers[0].target is None and state.decisions[-1].facts["reminders_stopped"] is False
    assert len(escalations(state, "sign_for")) == 3
