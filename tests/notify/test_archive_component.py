"""Finished cases leave notify's working set (which FerretDB scans for every update) for the archive: still
read by id, still counted by the rates, reports and the view of all cases (the same figures before and
after), never in the views of open cases, and brought back once by a late event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import CASE_EVENTS_TOPIC
from contracts.events.hotline import CallbackRecorded
from services.notify.domain.summary import REPORT_TZ
from tests.notify.test_api_component import auth, publish
from tests.support.events import dispatched, new_case_id, resolved, signed

pytestmark = pytest.mark.component


async def figures(client, runtime, day: str) -> tuple[dict, dict, int]:
    headers = auth(runtime)
    rates = (await client.get("/api/v1/rates", params={"by": "district"}, headers=headers)).json()
    rate = next(r for r in rates if r["district"] == "500103")
    report = (await client.get("/api/v1/reports", params={"from": day, "to": day}, headers=headers)).json()
    row = next(r for r in report["rows"] if r["group"] == "500103")
    every = (await client.get("/api/v1/cases", params={"view": "all", "limit": 500}, headers=headers)).json()
    return rate, row, len(every)


async def test_a_finished_case_is_archived_and_counted_as_before(runtime, client) -> None:
    now = datetime.now(UTC)
    done, open_case = new_case_id(), new_case_id()
    await publish(
        runtime,
        dispatched(done, at=now - timedelta(minutes=30), sla_class="emergency"),
        signed(done, at=now - timedelta(minutes=25)),
        resolved(done, at=now - timedelta(minutes=5)),
        dispatched(open_case, at=now - timedelta(minutes=10), sla_class="emergency"),
    )
    day = now.astimezone(REPORT_TZ).date().isoformat()
    before = await figures(client, runtime, day)
    store, cases = runtime.service.store, runtime.service.clockwork.cases

    assert await cases.archive_finished() == 0  # changed just now: younger than NOTIFY_ARCHIVE_AFTER_S
    cases.archive_after = timedelta(0)
    store.archive_after = timedelta(0)
    assert await cases.archive_finished() == 1
    assert await store.cases.find_one({"_id": done}) is None
    assert await store.cases_archive.find_one({"_id": done}) is not None
    assert await store.cases.find_one({"_id": open_case}) is not None

    assert await figures(client, runtime, day) == before
    detail = await client.get(f"/api/v1/cases/{done}", headers=auth(runtime))
    assert detail.status_code == 200 and detail.json()["case_id"] == done
    open_rows = (await client.get("/api/v1/cases", headers=auth(runtime))).json()
    assert done not in [c["case_id"] for c in open_rows] and open_case in [c["case_id"] for c in open_rows]


async def test_a_late_event_brings_an_archived_case_back_once(runtime, client) -> None:
    now = datetime.now(UTC)
    done = new_case_id()
    await publish(
        runtime,
        dispatched(done, at=now - timedelta(minutes=30), sla_class="emergency"),
        resolved(done, at=now - timedelta(minutes=5)),
    )
    store, cases = runtime.service.store, runtime.service.clockwork.cases
    cases.archive_after = store.archive_after = timedelta(0)
    assert await cases.archive_finished() == 1

    callback = CallbackRecorded(case_id=done, operator_id="op-1", satisfaction="satisfied")
    await publish(runtime, callback, callback, topic=CASE_EVENTS_TOPIC)  # redelivered: applied once
    back = await store.cases.find_one({"_id": done})
    assert back is not None and back["m_cb"] == 1 and back["m_sat"] == 1
    assert await store.cases_archive.find_one({"_id": done}) is None  # back: the archive's copy is gone
    assert str(callback.event_id) in back["applied"]
    day = now.astimezone(REPORT_TZ).date().isoformat()
    report = (await client.get("/api/v1/reports", params={"from": day, "to": day}, headers=auth(runtime))).json()
    row = next(r for r in report["rows"] if r["group"] == "500103")
    assert row["callbacks"] == 1  # counted once


async def test_a_case_s_contact_texts_and_sla_events_follow_it_into_the_archive(runtime, client, mongodb_url) -> None:
    """Each is read by the case's id on the hot path, and FerretDB scans the collection for each read: they
    leave the working set with their case, and are read as before (a text still on its way stays)."""
    from pymongo import AsyncMongoClient

    from common.store import CommandCounter
    from services.notify.documents import NotificationRecord, SentAttempt, SlaEventRecord
    from services.notify.store import NotifyStore

    now = datetime.now(UTC)
    done = new_case_id()
    await publish(
        runtime,
        dispatched(done, at=now - timedelta(minutes=30), sla_class="emergency"),
        signed(done, at=now - timedelta(minutes=25)),
        resolved(done, at=now - timedelta(minutes=5)),
    )
    store, cases = runtime.service.store, runtime.service.clockwork.cases
    await store.remember_callers({done: "13800000000"}, {done: True})

    def note(kind: str, minutes: int) -> NotificationRecord:
        return NotificationRecord(
            key=f"{done}|{kind}", case_id=done, kind=kind, recipient="caller", channel="sms",
            text_zh="文本", text_en="text", created_at=now - timedelta(minutes=minutes),
        )  # fmt: skip

    sent, waiting = note("caller_dispatched", 20), note("caller_resolved|1", 4)
    await store.add_notifications([sent, waiting])
    await store.record_attempt(sent.key, SentAttempt(at=now, channel="sms"), "sent")
    breach = SlaEventRecord(
        event_id=f"ev-{done}", case_id=done, type="sla.breached", target="sign_for", district="500103",
        due_at=now - timedelta(minutes=26), fired_at=now - timedelta(minutes=26), timer_due_at=now,
    )  # fmt: skip
    assert await store.record_sla_event(breach)
    before = (
        await store.caller_contact(done),
        await store.list_notifications(case_id=done),
        await store.sla_events_of(done),
        await store.sla_events_by_id([breach.event_id]),
        (await client.get(f"/api/v1/cases/{done}", headers=auth(runtime))).json(),
    )

    cases.archive_after = store.archive_after = timedelta(0)
    assert await cases.archive_finished() == 1
    assert await store.contacts.find_one({"_id": done}) is None
    assert await store.contacts_archive.find_one({"_id": done}) is not None
    assert await store.notifications.find_one({"_id": sent.key}) is None  # delivered: archived
    assert await store.notifications_archive.find_one({"_id": sent.key}) is not None
    assert await store.notifications.find_one({"_id": waiting.key}) is not None  # on its way: stays
    assert await store.sla_events.find_one({"_id": breach.event_id}) is None
    assert await store.sla_events_archive.find_one({"_id": breach.event_id}) is not None
    after = (
        await store.caller_contact(done),
        await store.list_notifications(case_id=done),
        await store.sla_events_of(done),
        await store.sla_events_by_id([breach.event_id]),
        (await client.get(f"/api/v1/cases/{done}", headers=auth(runtime))).json(),
    )
    assert after == before and before[0] == (True, "13800000000") and len(before[1]) == 2
    assert (await store.notification(sent.key)) == before[1][0]

    await store.forget_callers([done])
    assert await store.caller_contact(done) is None and await store.contacts_archive.find_one({"_id": done}) is None

    # With the service's own archive age, a case numbered today is never looked for in an archive.
    counter = CommandCounter()
    other: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        fresh = NotifyStore(other[store.db.name], archive_after=timedelta(seconds=runtime.settings.archive_after_s))
        recent = new_case_id()
        assert await fresh.caller_contact(recent) is None and await fresh.notification(f"{recent}|x") is None
        assert await fresh.sla_events_of(recent) == [] and await fresh.list_notifications(case_id=recent) == []
        assert not [key for key in counter.seconds if key[1].endswith("_archive")], dict(counter.seconds)
    finally:
        await other.close()
