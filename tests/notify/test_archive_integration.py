"""Notify in-process on the real Kafka and store: finished cases leave the working set (which FerretDB scans
for every clock update) for `cases_archive`, and nothing a coordinator sees changes. An archived case is
still found by id, still counts in the rates, the reports over a date range and the view of all cases (the
same figures before and after archiving), is in no view of open cases, and a late event (a callback, a
grant approved, a reopening) brings it back and is applied once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.app import Runtime
from common.auth import issue_token
from common.kafka import publish_event
from contracts.events.base import Event
from contracts.events.hotline import CallbackRecorded, CaseReopened
from contracts.events.notify import SLA_EVENTS_TOPIC
from contracts.events.relief import GrantApproved, GrantPaid
from contracts.events.router import CaseClosed
from services.notify.app import create_app
from services.notify.clockwork import Notify
from services.notify.domain import case as case_rules
from services.notify.domain.summary import REPORT_TZ
from services.notify.handlers import TOPICS
from services.notify.settings import Settings
from services.notify.timers import Timer
from tests.support.events import dispatched, help_requested, new_case_id, resolved, signed
from tests.support.kafka import create_topics, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
DISTRICT = "500103"


@dataclass
class NotifyHarness:
    runtime: Runtime[Notify]
    settings: Settings
    client: httpx.AsyncClient

    @property
    def service(self) -> Notify:
        return self.runtime.service

    def coordinator(self) -> dict[str, str]:
        token = issue_token(self.settings, sub="co-city", role="coordinator", district="city")
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, *events: Event) -> None:
        broker = self.runtime.broker
        assert broker is not None
        for event in events:  # each on its contract's topic, namespaced
            await publish_event(broker, event, topic=self.settings.topic(event.TOPIC))

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.coordinator())
        assert response.status_code == 200, response.text
        return response.json()

    async def working(self, case_id: str) -> dict[str, Any] | None:
        return await self.service.store.cases.find_one({"_id": case_id})

    async def archived(self, case_id: str) -> dict[str, Any] | None:
        return await self.service.store.cases_archive.find_one({"_id": case_id})

    async def until(self, case_id: str, what: str, check: Any, timeout: float = 30) -> dict[str, Any]:
        """The case as stored (working set or archive) once `check(doc)` holds."""

        async def probe() -> dict[str, Any] | None:
            doc = await self.service.store.load(case_id)
            return doc if doc is not None and check(doc) else None

        return await eventually(probe, timeout=timeout, what=what)

    async def archive_now(self) -> int:
        """What the archiver does once `archive_after_s` has passed (for every case, today's too)."""
        cases = self.service.clockwork.cases
        cases.archive_after = timedelta(0)
        return await cases.archive_finished()

    async def archive(self, expected: int) -> int:
        """Archive until `expected` cases have moved: a case whose last write's outbox is not yet recorded
        as published (its effects a moment behind its write) waits for the next round."""
        moved = 0

        async def round_() -> bool:
            nonlocal moved
            moved += await self.archive_now()
            return moved >= expected

        await eventually(round_, timeout=10, what=f"{expected} cases archived")
        return moved


@contextlib.asynccontextmanager
async def running_notify(bootstrap: str, mongodb_url: str, database: str) -> AsyncIterator[NotifyHarness]:
    namespace = unique_name("nt") + "."
    topics = [namespace + t for t in (*TOPICS, SLA_EVENTS_TOPIC)]
    topics += [f"{t}.dlq" for t in topics]
    await create_topics(bootstrap, *topics)
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=database,
        kafka_group_id=unique_name("notify"),
        topic_namespace=namespace,
        environment="test",
        consumer_max_attempts=2,
        consumer_backoff_initial_s=0.01,
        consumer_backoff_max_s=0.02,
        sweep_interval_s=0.2,
        timer_bucket_s=5,
        archive_interval_s=3600,  # the test archives when it means to (its first round, at start, finds nothing)
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            runtime: Runtime[Notify] = app.state.runtime
            await runtime.kafka_connected.wait()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
                yield NotifyHarness(runtime, settings, client)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()


@pytest.fixture
async def notify(kafka_bootstrap: str, mongodb_url: str, db_name: str) -> AsyncIterator[NotifyHarness]:
    async with running_notify(kafka_bootstrap, mongodb_url, db_name) as harness:
        yield harness


def local_day(at: datetime) -> str:
    return at.astimezone(REPORT_TZ).date().isoformat()


async def resolved_case(notify: NotifyHarness, now: datetime, *, callback: bool = False) -> str:
    """A call two days ago, dispatched, signed for and resolved on time the day after; with a callback
    today if asked. Returns its case id once notify has applied all of it."""
    case_id = new_case_id()
    start = now - timedelta(days=2)
    events: list[Event] = [
        help_requested(case_id, "homeless_cold", at=start - timedelta(minutes=5)),
        dispatched(case_id, at=start),
        signed(case_id, at=start + timedelta(minutes=30)),
        resolved(case_id, at=start + timedelta(days=1)),
    ]
    if callback:
        events.append(CallbackRecorded(case_id=case_id, occurred_at=now, operator_id="op-1", satisfaction="satisfied"))
    await notify.publish(*events)
    await notify.until(
        case_id,
        "the case resolved at notify",
        lambda d: d["status"] == "resolved" and d["r_received_on"] and (d["m_cb"] == 1 or not callback),
    )
    return case_id


async def figures(notify: NotifyHarness, now: datetime) -> dict[str, Any]:
    """Everything a coordinator reads that counts closed cases: the rates both ways, the reports over the
    last days both ways, and the view of all cases (sorted both ways, and one short page)."""
    first, last = local_day(now - timedelta(days=3)), local_day(now)
    out: dict[str, Any] = {}
    for by in ("district", "department"):
        out[f"rates/{by}"] = await notify.get("/api/v1/rates", by=by)
        out[f"report/{by}"] = await notify.get("/api/v1/reports", **{"from": first, "to": last, "group": by})
    for sort in ("lateness", "recent"):
        rows = await notify.get("/api/v1/cases", view="all", sort=sort, limit=1000)
        out[f"all/{sort}"] = [r["case_id"] for r in rows]
    out["all/page"] = [r["case_id"] for r in await notify.get("/api/v1/cases", view="all", limit=2)]
    return out


def report_row(report: dict[str, Any], day: str, group: str) -> dict[str, Any]:
    return next(r for r in report["rows"] if r["period"] == day and r["group"] == group)


async def test_a_closed_case_leaves_the_working_set_and_every_figure_stays_the_same(notify: NotifyHarness) -> None:
    now = datetime.now(UTC)
    done = await resolved_case(notify, now, callback=True)
    await notify.publish(CaseClosed(case_id=done, occurred_at=now, actor="router"))
    await notify.until(done, "the case closed at notify", lambda d: d["status"] == "closed")
    also_done = await resolved_case(notify, now)  # resolved, no callback yet: finished too
    open_case = new_case_id()
    await notify.publish(dispatched(open_case, at=now - timedelta(hours=1)))
    await notify.until(open_case, "the open case at notify", lambda d: d["status"] == "open")

    before = await figures(notify, now)
    district = next(r for r in before["rates/district"] if r["district"] == DISTRICT)
    assert district["counts"]["callbacks"] == 1 and district["counts"]["satisfied"] == 1
    assert district["counts"]["res_on_time"] == 2 and district["backlog"] == 1
    resolved_day = report_row(before["report/district"], local_day(now - timedelta(days=1)), DISTRICT)
    assert resolved_day["resolved"] == 2
    assert set(before["all/lateness"]) == {done, also_done, open_case}
    assert len(before["all/page"]) == 2

    assert await notify.service.clockwork.cases.archive_finished() == 0  # changed just now: too young
    assert await notify.archive(2) == 2
    for case_id in (done, also_done):
        assert await notify.working(case_id) is None
        assert await notify.archived(case_id) is not None
    assert await notify.working(open_case) is not None  # open cases stay

    assert await figures(notify, now) == before  # the rates, the reports and the view of all cases
    detail = await notify.get(f"/api/v1/cases/{done}")
    assert detail["case_id"] == done and detail["status"] == "closed"
    assert any(c["key"] == "citizen" and c["ended_at"] for c in detail["clocks"])
    open_rows = [r["case_id"] for r in await notify.get("/api/v1/cases")]
    assert open_rows == [open_case]
    counts = await notify.get("/api/v1/counts")
    assert counts["open"] == 1


async def test_a_late_callback_and_a_reopening_bring_an_archived_case_back_once(notify: NotifyHarness) -> None:
    now = datetime.now(UTC)
    case_id = await resolved_case(notify, now)
    assert await notify.archive(1) == 1
    archived = await notify.archived(case_id)
    assert archived is not None and archived["m_cb"] == 0

    callback = CallbackRecorded(case_id=case_id, operator_id="op-1", satisfaction="basically_satisfied")
    await notify.publish(callback, callback)  # redelivered: applied once
    back = await eventually(
        lambda: notify.working(case_id), timeout=30, what="the case back in the working set after the callback"
    )
    assert back["m_cb"] == 1 and back["m_sat"] == 1 and back["version"] > archived["version"]
    assert back["applied"].count(str(callback.event_id)) == 1
    assert back["state"]["texts"] == archived["state"]["texts"]  # no caller text queued again
    assert await notify.archived(case_id) is None  # its archived copy is gone: counted once
    today = report_row(
        await notify.get("/api/v1/reports", **{"from": local_day(now), "to": local_day(now)}), local_day(now), DISTRICT
    )
    assert today["callbacks"] == 1 and today["satisfied"] == 1

    assert await notify.archive(1) == 1  # still finished (resolved, called back): archived again
    reopen = CaseReopened(case_id=case_id, operator_id="op-2", reason="回访后仍未解决")
    await notify.publish(reopen)
    reopened = await eventually(lambda: notify.working(case_id), timeout=30, what="the reopened case back")
    assert reopened["status"] == "open" and reopened["state"]["round"] == 2
    assert reopened["scheduled"], "the new round's resolution timers are placed"
    assert await notify.archived(case_id) is None
    assert await notify.archive_now() == 0  # open again: it stays
    assert case_id in [r["case_id"] for r in await notify.get("/api/v1/cases")]
    detail = await notify.get(f"/api/v1/cases/{case_id}")
    assert [d["what"] for d in detail["decisions"]].count("reopened") == 1


async def test_a_grant_for_an_archived_case_brings_it_back_until_paid_and_a_stale_timer_still_fires(
    notify: NotifyHarness,
) -> None:
    now = datetime.now(UTC)
    case_id = await resolved_case(notify, now)
    # A timer of the case as it was when dispatched (its first warning), placed again as if its cancel had
    # been lost.
    was_open = case_rules.apply(None, dispatched(case_id, at=now - timedelta(days=2)), notify.service.policy)
    stale = case_rules.timers(was_open, notify.service.policy)[0]
    assert await notify.archive(1) == 1

    await notify.service.store.sla_timers.schedule([Timer(stale.id, now, stale.payload)])
    fired = await eventually(
        lambda: notify.service.store.sla_events_of(case_id), timeout=30, what="the stale timer fired"
    )
    assert [e.case_id for e in fired] == [case_id]
    assert await notify.working(case_id) is None  # an SLA event does not change the case
    detail = await notify.get(f"/api/v1/cases/{case_id}")
    assert [e["event_id"] for e in detail["sla_events"]] == [fired[0].event_id]

    grant = {"case_id": case_id, "grant_id": f"G-{case_id}", "rule_id": "P5.2a", "district": DISTRICT}
    approved = GrantApproved(**grant, amount_yuan=Decimal("500"), approved_on=date.today())
    await notify.publish(approved, approved)
    back = await eventually(lambda: notify.working(case_id), timeout=30, what="the case back for its grant")
    assert back["next_due_at"] is not None and back["scheduled"], "the payment clock runs, with its timers"
    assert len(back["state"]["payments"]) == 1
    assert await notify.archived(case_id) is None
    assert await notify.archive_now() == 0  # a payment still due: not finished

    await notify.publish(GrantPaid(**grant, amount_yuan=Decimal("500"), payment_reference="PAY-1"))
    await notify.until(case_id, "the grant paid at notify", lambda d: d["next_due_at"] is None and not d["scheduled"])
    assert await notify.archive(1) == 1
    archived = await notify.archived(case_id)
    assert archived is not None and archived["state"]["payments"][0]["ended_at"] is not None
