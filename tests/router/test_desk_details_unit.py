"""Who and where, and escalations, pure: the caller's personal fields masked (P2.2, P6.2), keyed lookup
hashes that find a repeat caller (P2.3) without keeping a number in clear, who may reveal a caller and
read the reveal records, and a department's single written answer to an escalation (督办, P6.2, P6.3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import DomainError, Forbidden
from common.principal import Principal
from contracts.events.hotline import Caller, Place
from contracts.events.notify import SlaEscalated
from services.router.domain.case import Case
from services.router.domain.catalogue import load_catalogue
from services.router.domain.details import (
    REVEALED_FIELDS,
    CaseDetails,
    MaskedContact,
    lookup_keys,
    mask_address,
    mask_name,
    mask_phone,
    may_list_reveals,
    may_see,
    reveal_record,
)
from services.router.domain.dispatching import mark_queued, open_case
from services.router.domain.escalations import acknowledge, escalation_of, may_answer
from services.router.domain.routing import RoutingFacts, decide
from services.router.schemas import CaseView, TaskView, answers_of
from tests.support.events import help_requested

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
NOW = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
PEPPER = b"test-pepper"


def worker(department: str, district: str = "500103") -> Principal:
    return Principal(sub=f"w-{department}", role="dept_worker", department=department, district=district, name="李强")


def new_case(*needs: str, district: str = "500103") -> Case:
    facts = RoutingFacts(district=district, needs=needs, received_at=NOW)
    case = open_case("CQ-20260215-000001", facts, decide(CATALOGUE, facts), CATALOGUE, now=NOW)
    for task in case.tasks:
        mark_queued(case, task.task_id, NOW)
    case.outbox.clear()
    return case


def escalated(case: Case, department: str | None = "civil_affairs", **fields: object) -> SlaEscalated:
    return SlaEscalated(
        case_id=case.case_id,
        occurred_at=NOW + timedelta(hours=3),
        clock="department" if department else "citizen",
        target="sign_for",
        department=department,
        district=case.district,
        due_at=NOW + timedelta(hours=2),
        sla_class="emergency",
        tier="department_head",
        **fields,
    )


# ---- masking ----


@pytest.mark.parametrize(
    ("name", "masked"), [("李四", "李*"), ("欧阳娜娜", "欧***"), ("王", "王*"), (" 张三 ", "张*"), ("", "")]
)
def test_a_name_keeps_only_its_first_character_P6_2(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("110", "*10"),
    ],
)
def test_a_phone_keeps_its_first_three_and_last_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_an_address_is_cut_after_its_start_and_district_and_township_stay_whole() -> None:
    assert mask_address("解放碑地下通道3号出口") == "解放碑地下通…"
    assert mask_address("较场口") == "较场口" and mask_address(None) is None
    request = help_requested(
        "CQ-20260215-000001",
        "homeless_cold",
        caller=Caller(name="李四", phone="13912345678"),
        place=Place(district="500103", township="解放碑街道", address="解放碑地下通道3号出口"),
    )
    contact = MaskedContact.of(CaseDetails.of(request))
    assert contact.model_dump() == {
        "name": "李*",
        "phone": "139****5678",
        "district": "500103",
        "township": "解放碑街道",
        "address": "解放碑地下通…",
    }


def test_a_queue_row_and_a_case_view_carry_only_the_masked_caller() -> None:
    case = new_case("homeless_cold")
    case.contact = MaskedContact(name="李*", phone="139****5678", district="500103", address="解放碑地下通…")
    row = TaskView.of(case, case.tasks[0]).model_dump_json()
    view = CaseView.of(case).model_dump_json()
    for text in (row, view):
        assert "李*" in text and "139****5678" in text and "13912345678" not in text


def test_the_needs_answers_are_named_in_both_languages() -> None:
    answers = answers_of(("homeless_cold",), {"person_condition": "unresponsive", "location_detail": "桥洞下"})
    by_code = {a.code: a for a in answers}
    assert by_code["person_condition"].question_zh == "当事人状况"
    assert by_code["person_condition"].shown_zh != "unresponsive"  # the option's name, not its key
    assert by_code["location_detail"].shown_zh == "桥洞下"
    assert answers_of(("homeless_cold",), {"made_up": 3.0})[0].shown_en == "3"


# ---- lookup keys ----


def test_lookup_keys_find_one_caller_however_the_number_is_written_and_hold_no_number_P2_3() -> None:
    plain = lookup_keys("13812345678", None, PEPPER)
    assert plain == lookup_keys("+86 138-1234-5678", None, PEPPER)
    assert plain != lookup_keys("13812345679", None, PEPPER)
    assert plain != lookup_keys("13812345678", None, b"another-pepper")  # keyed: useless without the pepper
    both = lookup_keys("13812345678", "50010319800101123x", PEPPER)
    assert both[0] == plain[0] and both[1] == lookup_keys(None, "50010319800101123X", PEPPER)[0]
    assert all("13812345678" not in k and "500103" not in k for k in both)
    assert lookup_keys("", None, PEPPER) == ()


# ---- who may reveal, who may read the records ----


def test_only_a_department_with_a_task_in_the_case_or_its_coordinator_may_reveal_the_caller() -> None:
    case = new_case("homeless_cold")  # civil affairs leads, health co-handles, in 500103
    may_see(case, worker("civil_affairs"))
    may_see(case, worker("health"))
    may_see(case, Principal(sub="c", role="coordinator", district="500103"))
    may_see(case, Principal(sub="c", role="coordinator", district="city"))
    for outsider in (
        worker("education"),
        worker("civil_affairs", "500104"),
        Principal(sub="c", role="coordinator", district="500104"),
        Principal(sub="o", role="operator", district="500103"),
        Principal(sub="a", role="admin"),
    ):
        with pytest.raises(Forbidden):
            may_see(case, outsider)


def test_reveal_records_are_read_by_coordinators_and_admins_whole_and_by_a_department_for_itself() -> None:
    case = new_case("homeless_cold")
    assert may_list_reveals(case, Principal(sub="a", role="admin")) is None
    assert may_list_reveals(case, Principal(sub="c", role="coordinator", district="500103")) is None
    assert may_list_reveals(case, worker("health")) == "health"
    with pytest.raises(Forbidden):
        may_list_reveals(case, worker("education"))


def test_a_reveal_record_says_who_when_why_which_case_and_which_fields_P6_3() -> None:
    case = new_case("homeless_cold")
    record = reveal_record(case, worker("civil_affairs"), "回电核实露宿位置", "r1", NOW)
    assert (record.case_id, record.at, record.reason, record.who) == (
        case.case_id,
        NOW,
        "回电核实露宿位置",
        "李强（w-civil_affairs）",
    )
    assert record.fields == REVEALED_FIELDS == ("caller_name", "caller_phone", "address")
    assert (record.department, record.district) == ("civil_affairs", "500103")


# ---- escalations ----


def test_an_escalation_is_for_the_department_it_names_or_for_the_citizen_clock_the_current_lead() -> None:
    case = new_case("homeless_cold")
    named = escalation_of(escalated(case, "health"), case)
    assert named is not None and (named.department, named.tier, named.target) == (
        "health",
        "department_head",
        "sign_for",
    )
    citizen = escalation_of(escalated(case, None), case)
    assert citizen is not None and (citizen.department, citizen.district) == ("civil_affairs", "500103")


def test_an_answer_goes_into_the_history_and_the_outbox_once_and_a_second_is_refused_P6_2() -> None:
    case = new_case("homeless_cold")
    event = escalated(case)
    escalation = escalation_of(event, case)
    assert escalation is not None
    acknowledge(case, escalation, worker("civil_affairs"), "已于今晨签收并派员前往现场", NOW)
    step = case.history[-1]
    assert (step.action, step.note, step.event_id, step.actor) == (
        "escalation_acknowledged",
        "已于今晨签收并派员前往现场",
        str(event.event_id),
        "w-civil_affairs",
    )
    body = case.outbox[-1]["body"]
    assert (body["type"], body["escalation_event_id"], body["answer"], body["department"]) == (
        "case.escalation_acknowledged",
        str(event.event_id),
        "已于今晨签收并派员前往现场",
        "civil_affairs",
    )
    with pytest.raises(DomainError) as second:
        acknowledge(case, escalation, worker("civil_affairs"), "再答一次", NOW)
    assert second.value.message_en == "this escalation was already answered" and second.value.status == 409
    assert len(case.outbox) == 1
    assert escalation_of(event, case) is None  # a redelivered escalation that was answered is not listed again


def test_only_the_escalated_department_of_its_district_may_answer() -> None:
    case = new_case("homeless_cold")
    escalation = escalation_of(escalated(case), case)
    assert escalation is not None
    for other in (worker("health"), worker("civil_affairs", "500104")):
        with pytest.raises(Forbidden):
            may_answer(escalation, other)
    may_answer(escalation, worker("civil_affairs"))


def test_an_escalation_id_is_the_sla_event_id() -> None:
    case = new_case("homeless_cold")
    event_id = uuid.uuid4()
    escalation = escalation_of(escalated(case, event_id=event_id), case)
    assert escalation is not None and escalation.escalation_event_id == str(event_id)
