"""Notify's handlers with FastStream's TestKafkaBroker and the real store: clocks, timers, texts, rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from contracts.events.hotline import (
    CASE_EVENTS_TOPIC,
    HELP_REQUESTED_TOPIC,
    CallbackRecorded,
)
from contracts.events.notify import SLA_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from services.notify import sweeper, views
from services.notify.schemas import DepartmentRates
from tests.support.events import dispatched, help_requested, new_case_id, resolved, signed

pytestmark = pytest.mark.component


async def publish(runtime, event, topic=CASE_LIFECYCLE_TOPIC) -> None:
    await runtime.broker.publish(event.model_dump(mode="json"), topic=topic, key=event.key)


async def test_dispatch_starts_clocks_and_schedules_durable_timers(runtime) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, dispatched(cid, at=now, sla_class="emergency", co_handlers=("health",)))
    doc = await runtime.service.store.load(cid)
    assert doc["lead_department"] == "civil_affairs" and doc["sla_class"] == "emergency"
    assert [c["department"] for c in doc["dept_clocks"]] == ["civil_affairs", "health"]
    assert abs((doc["due_at"] - (now + timedelta(hours=2))).total_seconds()) < 0.01
    assert await runtime.service.store.sla_timers.pending() == len(doc["scheduled"]) > 0


async def test_redelivered_and_republished_dispatch_queue_one_caller_text(runtime) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    event = dispatched(cid, at=now, sla_class="emergency")
    await publish(
        runtime, help_requested(cid, "homeless_cold", at=now, phone="13912345678", emergency=True), HELP_REQUESTED_TOPIC
    )
    for _ in range(3):
        await publish(runtime, event)
    await publish(runtime, dispatched(cid, at=now, sla_class="emergency"))  # the router republished: new event id
    notes = await runtime.service.store.list_notifications(case_id=cid, recipient="caller")
    assert [n.kind for n in notes] == ["caller_dispatched"]
    assert "已转渝中区民政部门办理" in notes[0].text_zh and "13912345678" not in str(notes)
    doc = await runtime.service.store.load(cid)
    assert "phone" not in str(doc)


async def test_sweep_fires_breach_and_escalations_once_with_stable_event_ids(runtime) -> None:
    cid, start = new_case_id(), datetime.now(UTC) - timedelta(hours=3)
    await publish(runtime, dispatched(cid, at=start, sla_class="emergency"))
    published = []
    subscriber = runtime.broker.subscriber(SLA_EVENTS_TOPIC)

    @subscriber
    async def collect(body: dict) -> None:
        published.append(body)

    await runtime.broker.start()
    fired = await sweeper.sweep_once(runtime)
    assert fired > 0 and await sweeper.sweep_once(runtime) == 0  # fired timers are gone
    mine = [e for e in published if e["case_id"] == cid]
    tiers = sorted(e["tier"] for e in mine if e["type"] == "sla.escalated" and e["target"] == "resolution")
    assert tiers == ["city_coordinator", "department_head", "district_coordinator"]
    breach = next(
        e for e in mine if e["type"] == "sla.breached" and e["clock"] == "citizen" and e["target"] == "sign_for"
    )
    assert breach["rule_id"] == "SLA-EMERGENCY-SIGN" and breach["provisions"] == ["P2.2"]
    alerts = await runtime.service.store.list_notifications(case_id=cid)
    recipients = {n.recipient for n in alerts}
    assert {
        "department:civil_affairs:500103",
        "coordinator:500103",
        "coordinator:city",
        "department_head:civil_affairs:500103",
    } <= recipients
    # A new event after the breach does not bring the fired timers back.
    await publish(runtime, signed(cid, at=start + timedelta(hours=2, minutes=50)))
    assert await sweeper.sweep_once(runtime) == 0


async def test_rates_count_each_case_once_under_redelivery(runtime) -> None:
    now = datetime.now(UTC)
    on_time, late = new_case_id(), new_case_id()
    events = [
        dispatched(on_time, at=now - timedelta(minutes=40), sla_class="emergency"),
        signed(on_time, at=now - timedelta(minutes=30)),
        resolved(on_time, at=now - timedelta(minutes=5)),
        dispatched(late, at=now - timedelta(hours=4), sla_class="emergency"),
        signed(late, at=now - timedelta(hours=3)),
        resolved(late, at=now - timedelta(hours=1)),
    ]
    callback = CallbackRecorded(case_id=on_time, operator_id="op", satisfaction="satisfied")
    for _ in range(2):  # everything delivered twice
        for event in events:
            await publish(runtime, event)
        await publish(runtime, callback, CASE_EVENTS_TOPIC)
    [row] = await views.rates(runtime.service.store, now, by="department", district="500103", department=None)
    assert isinstance(row, DepartmentRates) and row.department == "civil_affairs"
    assert row.counts.res_decided == 2 and row.on_time_resolution_rate == 0.5
    assert row.counts.sign_decided == 2 and row.response_rate == 0.5
    assert row.satisfaction_rate == 1.0 and row.backlog == 0


async def test_unknown_event_type_is_rejected_to_be_dead_lettered_and_changes_nothing(runtime) -> None:
    """A type this version does not know is dead-lettered (replayable after an upgrade), not passed by."""
    from contracts.events import UnknownEventType
    from services.notify.handlers import apply_records

    cid = new_case_id()
    body = {"type": "case.something_new", "case_id": cid, "occurred_at": datetime.now(UTC).isoformat()}
    record = SimpleNamespace(
        topic=CASE_LIFECYCLE_TOPIC, partition=0, offset=7, key=cid.encode(), headers=[], value=json.dumps(body).encode()
    )
    [(rejected, error)] = await apply_records(runtime, [record])
    assert rejected is record and isinstance(error, UnknownEventType) and error.event_type == "case.something_new"
    assert await runtime.service.store.load(cid) is None


async def test_grant_approval_starts_a_same_month_payment_clock_that_payment_stops_P2_1(runtime) -> None:
    from datetime import date

    from contracts.events.relief import GRANT_EVENTS_TOPIC, GrantApproved, GrantPaid

    cid, now = new_case_id(), datetime.now(UTC)
    common = {"case_id": cid, "grant_id": f"G-{cid}", "rule_id": "P5.2a", "district": "500103"}
    await publish(
        runtime,
        GrantApproved(**common, amount_yuan="1400", approved_on=date(now.year, now.month, 1)),
        GRANT_EVENTS_TOPIC,
    )
    doc = await runtime.service.store.load(cid)
    [clock] = doc["state"]["payments"]
    assert clock["targets"]["payment"]["rule_id"] == "SLA-PAYMENT-SAME-MONTH"
    assert any("|payment:" in s["id"] for s in doc["scheduled"])
    await publish(runtime, GrantPaid(**common, amount_yuan="1400", payment_reference="B-1"), GRANT_EVENTS_TOPIC)
    doc = await runtime.service.store.load(cid)
    assert not any("|payment:" in s["id"] for s in doc["scheduled"])
    assert doc["state"]["payments"][0]["end_reason"] == "paid"


async def test_the_callers_phone_is_kept_only_until_the_case_is_closed_and_the_last_text_is_out(runtime) -> None:
    from contracts.events.hotline import Caller
    from contracts.events.router import CaseClosed
    from services.notify.outbox import LogChannel

    cid, now = new_case_id(), datetime.now(UTC)
    store = runtime.service.store
    caller = Caller(name="张三", phone="13912345678", consents_to_texts=True)  # P6.2: texts only with consent
    await publish(
        runtime, help_requested(cid, "homeless_cold", at=now, caller=caller, emergency=True), HELP_REQUESTED_TOPIC
    )
    await publish(runtime, dispatched(cid, at=now, sla_class="emergency"))
    await publish(runtime, CaseClosed(case_id=cid, actor="co-1", reason="duplicate of another case"))
    assert await store.caller_phone(cid) == "13912345678"  # the dispatch text is still to be sent
    for timer in await store.outbox_timers.due(datetime.now(UTC), 100):
        await runtime.service.outbox.deliver(timer, {"log": LogChannel()})
    text = await store.notification(f"{cid}|caller_dispatched")
    assert text is not None and text.status == "sent"
    assert await store.caller_phone(cid) is None


async def test_an_event_that_changes_nothing_writes_nothing(runtime) -> None:
    from contracts.events.relief import GRANT_EVENTS_TOPIC, GrantProposed

    unknown = new_case_id()
    await publish(runtime, signed(unknown, at=datetime.now(UTC)))  # a case notify never saw dispatched
    await publish(
        runtime,
        GrantProposed(
            case_id=unknown, grant_id="G-1", rule_id="P5.2a", district="500103", amount_yuan="1400", period="once"
        ),
        GRANT_EVENTS_TOPIC,
    )
    assert await runtime.service.store.load(unknown) is None


async def test_unknown_sla_class_falls_back_to_standard_with_a_logged_warning(runtime) -> None:
    from structlog.testing import capture_logs

    cid = new_case_id()
    with capture_logs() as logs:
        await publish(runtime, dispatched(cid, at=datetime.now(UTC), sla_class="turbo"))
    assert any(e["log_level"] == "warning" and e.get("requested") == "turbo" for e in logs)
    assert (await runtime.service.store.load(cid))["sla_class"] == "standard"


async def test_a_new_case_whose_dispatch_comes_before_its_call_in_a_batch_is_not_read(runtime, monkeypatch) -> None:
    """A batch of two topics may hold a case's dispatch before its call (a lingering consumer often takes
    both at once): the case is still new to the write path (written without a read first), and both
    events are applied."""
    from services.notify.handlers import apply_records

    cid, now = new_case_id(), datetime.now(UTC)
    events = [
        (CASE_LIFECYCLE_TOPIC, dispatched(cid, at=now)),
        (HELP_REQUESTED_TOPIC, help_requested(cid, at=now - timedelta(seconds=30))),
    ]
    key = cid.encode()
    records = [
        SimpleNamespace(topic=t, partition=0, offset=n, key=key, headers=[], value=e.model_dump_json().encode())
        for n, (t, e) in enumerate(events)
    ]
    clockwork = runtime.service.clockwork
    opened: list[set[str]] = []
    record_many = clockwork.record_many

    async def spying(steps, *, new=()):
        opened.append(set(new))
        return await record_many(steps, new=new)

    monkeypatch.setattr(clockwork, "record_many", spying)
    assert await apply_records(runtime, records) == []
    assert opened == [{cid}]
    doc = await runtime.service.store.load(cid)
    assert doc is not None and doc["state"]["received_at"] is not None and doc["state"]["assignments"]
