"""Who and where, and escalations, against the real Kafka broker and store: a worker sees the caller and
the place of a dispatched case masked (P2.2, P6.2), reveals them with a reason and leaves an audit record
(P6.3), finds the caller's earlier cases (P2.3); notify's escalation of a case becomes a listed escalation,
and the department's answer is in the case's history and published once (P6.2)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import SLA_EVENTS_TOPIC
from contracts.events.hotline import Caller, Place
from contracts.events.notify import SlaEscalated, SlaWarningRaised
from tests.support.events import help_requested, new_case_id
from tests.support.router_harness import RouterHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def a_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


async def dispatched_to_civil_affairs(
    router: RouterHarness, phone: str, *, id_card: str | None = None, received_at: datetime | None = None
) -> dict:
    case_id = new_case_id()
    request = help_requested(
        case_id,
        "homeless_cold",
        at=received_at,
        caller=Caller(name="李四", phone=phone, id_card=id_card),
        place=Place(district="500103", township="解放碑街道", address="解放碑地下通道3号出口"),
        description="老人在地下通道露宿，衣着单薄，已无法站立，需立即救助送往救助站。",
        emergency=True,
        emergency_reasons=("R-EMERGENCY-SERVICE: emergency service homeless_cold (P2.2)",),
        attributes={"person_condition": "unresponsive", "location_detail": "3号出口楼梯下"},
    )
    await router.send_help(request)
    row = await eventually(
        lambda: router.task_in_queue("civil_affairs", case_id), timeout=30, what=f"civil affairs' task of {case_id}"
    )
    assert row is not None
    return row


async def test_a_worker_sees_the_caller_and_place_of_a_dispatched_case_masked(router: RouterHarness) -> None:
    phone = a_phone()
    row = await dispatched_to_civil_affairs(router, phone)
    masked = f"{phone[:3]}****{phone[-4:]}"
    assert row["contact"] == {
        "name": "李*",
        "phone": masked,
        "district": "500103",
        "township": "解放碑街道",
        "address": "解放碑地下通…",
    }
    reply = await router.client.get(f"/api/v1/cases/{row['case_id']}", headers=router.worker("civil_affairs"))
    assert reply.status_code == 200, reply.text
    case = reply.json()
    assert case["contact"]["phone"] == masked
    details = case["details"]
    assert details["description"] == "老人在地下通道露宿，衣着单薄，已无法站立，需立即救助送往救助站。"
    assert details["emergency_reasons"] == ["R-EMERGENCY-SERVICE: emergency service homeless_cold (P2.2)"]
    assert {a["code"]: a["shown_zh"] for a in details["answers"]}["location_detail"] == "3号出口楼梯下"
    for text in (reply.text, str(row)):
        assert phone not in text and "李四" not in text and "3号出口" not in text.replace("3号出口楼梯下", "")
    stored = await router.service.store.cases.find_one({"_id": row["case_id"]})
    assert stored is not None and phone not in str(stored) and "李四" not in str(stored)  # the case keeps only masks


async def test_a_reveal_with_a_reason_returns_the_caller_and_leaves_an_audit_record(router: RouterHarness) -> None:
    phone = a_phone()
    row = await dispatched_to_civil_affairs(router, phone)
    case_id = row["case_id"]
    path = f"/api/v1/cases/{case_id}/reveal"
    worker = router.token("dept_worker", "civil_affairs", "500103", sub="li-qiang")

    no_reason = await router.client.post(path, headers=worker, json={"reason": " "})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    outsider = await router.client.post(path, headers=router.worker("education"), json={"reason": "想看看"})
    assert outsider.status_code == 403 and outsider.json()["message_zh"]

    shown = await router.client.post(path, headers=worker, json={"reason": "回电核实露宿位置"})
    assert shown.status_code == 200, shown.text
    clear = shown.json()
    assert (clear["caller_name"], clear["caller_phone"], clear["tel"]) == ("李四", phone, f"tel:{phone}")
    assert (clear["township"], clear["address"]) == ("解放碑街道", "解放碑地下通道3号出口")

    coordinator = router.token("coordinator", None, "500103")
    records = (await router.client.get(f"/api/v1/cases/{case_id}/reveals", headers=coordinator)).json()
    assert [(r["who"], r["reason"], r["case_id"], r["fields"]) for r in records] == [
        ("li-qiang", "回电核实露宿位置", case_id, ["caller_name", "caller_phone", "address"])
    ]
    assert records[0]["reveal_id"] == clear["reveal_id"] and records[0]["at"]
    # Health co-handles the case: it sees the case, and only its own department's reveals.
    health = (await router.client.get(f"/api/v1/cases/{case_id}/reveals", headers=router.worker("health"))).json()
    assert health == []
    other = await router.client.get(f"/api/v1/cases/{case_id}/reveals", headers=router.worker("education"))
    assert other.status_code == 403
    audit = await router.service.store.reveals.find({"case_id": case_id}).to_list()
    assert len(audit) == 1 and phone not in str(audit)  # the record names the fields, never their values


async def test_the_callers_earlier_cases_are_found_by_phone_or_id_card(router: RouterHarness) -> None:
    phone, card = a_phone(), f"500103{random.randrange(10**11):011d}X"
    first = await dispatched_to_civil_affairs(router, phone, received_at=datetime.now(UTC) - timedelta(days=3))
    by_card = await dispatched_to_civil_affairs(
        router, a_phone(), id_card=card.lower(), received_at=datetime.now(UTC) - timedelta(days=2)
    )
    stranger = await dispatched_to_civil_affairs(router, a_phone())
    latest = await dispatched_to_civil_affairs(router, f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}", id_card=card)

    reply = await router.client.get(f"/api/v1/cases/{latest['case_id']}", headers=router.worker("civil_affairs"))
    earlier = reply.json()["earlier_cases"]
    assert [e["case_id"] for e in earlier] == [by_card["case_id"], first["case_id"]]  # newest first
    assert (
        earlier[0]["needs"] == ["homeless_cold"] and earlier[0]["status"] == "dispatched" and earlier[0]["received_at"]
    )
    assert stranger["case_id"] not in {e["case_id"] for e in earlier}
    details = await router.service.store.details.find_one({"_id": latest["case_id"]})
    assert details is not None and len(details["lookup_keys"]) == 2
    assert phone not in str(details["lookup_keys"]) and card not in str(details["lookup_keys"])


async def test_an_escalation_is_listed_for_its_department_and_answered_once(router: RouterHarness) -> None:
    row = await dispatched_to_civil_affairs(router, a_phone())
    case_id = row["case_id"]
    now = datetime.now(UTC)
    common = {"case_id": case_id, "occurred_at": now, "district": "500103", "due_at": now - timedelta(hours=1)}
    escalation = SlaEscalated(
        **common,
        clock="department",
        target="sign_for",
        department="civil_affairs",
        sla_class="emergency",
        tier="district_coordinator",
        recipient="coordinator:500103",
    )
    await router.publish(
        SlaWarningRaised(
            **common,
            clock="department",
            target="sign_for",
            department="civil_affairs",
            sla_class="emergency",
            share_elapsed=0.8,
        ),
        SLA_EVENTS_TOPIC,
    )
    await router.publish(
        SlaEscalated(
            **{**common, "case_id": new_case_id()},
            clock="citizen",
            target="resolution",
            sla_class="standard",
            tier="department_head",
        ),
        SLA_EVENTS_TOPIC,
    )  # not ours
    await router.publish(escalation, SLA_EVENTS_TOPIC)
    civil = router.token("dept_worker", "civil_affairs", "500103", sub="li-qiang")

    async def listed() -> list[dict] | None:
        rows = (await router.client.get("/api/v1/escalations", headers=civil)).json()
        return rows or None

    rows = await eventually(listed, timeout=30, what="the escalation on the desk")
    assert [(r["escalation_event_id"], r["case_id"], r["tier"], r["target"]) for r in rows] == [
        (str(escalation.event_id), case_id, "district_coordinator", "sign_for")
    ]
    assert rows[0]["due_at"] and rows[0]["escalations_of_case"] == 1
    assert (await router.client.get("/api/v1/escalations", headers=router.worker("health"))).json() == []
    coordinator = router.token("coordinator", None, "500103")
    assert [r["case_id"] for r in (await router.client.get("/api/v1/escalations", headers=coordinator)).json()] == [
        case_id
    ]

    path = f"/api/v1/escalations/{escalation.event_id}/acknowledge"
    refused = await router.client.post(path, headers=router.worker("health"), json={"answer": "不归我们"})
    assert refused.status_code == 403
    answer = "已于 10:20 签收，救助车辆已出发"
    done = await router.client.post(path, headers=civil, json={"answer": answer})
    assert done.status_code == 200, done.text
    assert (done.json()["case_id"], done.json()["answer"]) == (case_id, answer)
    again = await router.client.post(path, headers=civil, json={"answer": "再答一次"})
    assert again.status_code == 409 and "不能重复答复" in again.json()["message_zh"]
    assert "already answered" in again.json()["message_en"]
    assert (await router.client.get("/api/v1/escalations", headers=civil)).json() == []

    history = (await router.client.get(f"/api/v1/cases/{case_id}", headers=civil)).json()["history"]
    step = next(h for h in history if h["action"] == "escalation_acknowledged")
    assert (step["note"], step["event_id"], step["actor"]) == (answer, str(escalation.event_id), "li-qiang")

    async def published() -> list[dict] | None:
        events = [e for e in await router.events(case_id) if e["type"] == "case.escalation_acknowledged"]
        return events or None

    events = await eventually(published, timeout=30, what="case.escalation_acknowledged")
    assert [(e["escalation_event_id"], e["answer"], e["department"]) for e in events] == [
        (str(escalation.event_id), answer, "civil_affairs")
    ]
    # Redelivered, the escalation that was answered is not listed again.
    await router.publish(escalation, SLA_EVENTS_TOPIC)
    marker = SlaEscalated(
        **{**common, "case_id": case_id},
        clock="department",
        target="resolution",
        department="civil_affairs",
        sla_class="emergency",
        tier="department_head",
    )
    await router.publish(marker, SLA_EVENTS_TOPIC)
    rows = await eventually(listed, timeout=30, what="the next escalation")
    assert [r["escalation_event_id"] for r in rows] == [str(marker.event_id)]
    assert len([e for e in await router.events(case_id) if e["type"] == "case.escalation_acknowledged"]) == 1
