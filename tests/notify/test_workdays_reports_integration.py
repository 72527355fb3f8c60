"""Notify as a real process on the real Kafka and store: a case dispatched on the last workday before the
Spring Festival falls due after the holiday (working days, P6.2); a report over a date range counts the
events in it and nothing outside it (三率 over time)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from common.kafka import make_broker, publish_event
from common.settings import ServiceSettings
from contracts.events.hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, CallbackRecorded
from contracts.events.notify import SLA_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from tests.notify.test_sla_integration import coordinator, drop, notify_service, subscribed
from tests.support.events import dispatched, help_requested, new_case_id, resolved, signed
from tests.support.kafka import create_topics
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
CQ = timezone(timedelta(hours=8))


@pytest.fixture
async def producer(kafka_bootstrap: str):
    await create_topics(
        kafka_bootstrap, CASE_LIFECYCLE_TOPIC, SLA_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, CASE_EVENTS_TOPIC
    )
    broker = make_broker(ServiceSettings(service_name="notify-it-producer", kafka_bootstrap_servers=kafka_bootstrap))
    await broker.start()
    yield broker
    await broker.stop()


def case_detail(url: str, case_id: str):
    response = httpx.get(f"{url}/api/v1/cases/{case_id}", headers=coordinator(), timeout=10)
    return response.json() if response.status_code == 200 else None


async def test_working_day_deadlines_and_a_report_over_a_date_range(
    kafka_bootstrap: str, mongodb_url: str, tmp_path, producer
) -> None:
    stack = notify_service(kafka_bootstrap, mongodb_url, tmp_path)
    try:
        stack.start()
        url = stack["notify"].url
        await subscribed(producer, url)

        # 1. Dispatched on Saturday 14 February 2026 (a make-up workday, the last before the holiday):
        # 15-23 February are off, so 5 working days run 24-28 February (the 28th is a make-up Saturday).
        before_holiday = new_case_id()
        await publish_event(producer, dispatched(before_holiday, at=datetime(2026, 2, 14, 10, tzinfo=CQ)))
        detail = await eventually(lambda: case_detail(url, before_holiday), timeout=30, what="the case at notify")
        citizen = next(c for c in detail["clocks"] if c["key"] == "citizen")
        assert datetime.fromisoformat(citizen["targets"]["resolution"]["due_at"]) == datetime(
            2026, 2, 28, 10, tzinfo=CQ
        )
        assert datetime.fromisoformat(citizen["targets"]["first_contact"]["due_at"]) == datetime(
            2026, 2, 24, 10, tzinfo=CQ
        )
        assert citizen["targets"]["sign_for"]["due_at"].startswith("2026-02-14T10:00")  # 8 hours: round the clock

        # 2. A report over 2-6 March counts what happened then.
        mon = datetime(2026, 3, 2, 10, tzinfo=CQ)
        a, b, outside = new_case_id(), new_case_id(), new_case_id()
        events = [
            help_requested(a, "special_group_visit", at=mon - timedelta(minutes=10)),
            dispatched(a, at=mon),
            signed(a, at=mon + timedelta(hours=1)),  # on time (8 h)
            resolved(a, at=mon + timedelta(days=2)),  # on time (5 working days)
            CallbackRecorded(
                case_id=a, occurred_at=mon + timedelta(days=3), operator_id="op-1", satisfaction="satisfied"
            ),
            dispatched(b, at=mon + timedelta(days=1)),  # never signed for: late on 3 March
            dispatched(outside, at=mon + timedelta(days=8)),  # 10 March: outside the range
        ]
        for event in events:  # each on its contract's topic
            await publish_event(producer, event)

        def reported() -> dict | None:
            params = {"from": "2026-03-02", "to": "2026-03-06", "by": "day", "group": "department"}
            got = httpx.get(f"{url}/api/v1/reports", params=params, headers=coordinator(), timeout=10).json()
            return got if sum(r["satisfaction_rate"] is not None for r in got["rows"]) else None

        for case_id in (b, outside):  # each case on its own partition: wait for all of them

            def arrived(c: str = case_id) -> dict | None:
                return case_detail(url, c)

            await eventually(arrived, timeout=30, what="every case at notify")
        await eventually(reported, timeout=30, what="the report to see the callback")
        report = reported()  # read again: a report read while a case is being written may mix before and after
        assert report is not None
        rows = [
            (r["period"], r["group"], r["received"], r["dispatched"], r["resolved"])
            + (r["response_rate"], r["on_time_resolution_rate"], r["satisfaction_rate"])
            for r in report["rows"]
        ]
        assert rows == [
            ("2026-03-02", "civil_affairs", 1, 1, 0, 1.0, None, None),
            ("2026-03-03", "civil_affairs", 1, 1, 0, 0.0, None, None),
            ("2026-03-04", "civil_affairs", 0, 0, 1, None, 1.0, None),
            ("2026-03-05", "civil_affairs", 0, 0, 0, None, None, 1.0),
        ]
        weekly = httpx.get(
            f"{url}/api/v1/reports",
            params={"from": "2026-03-02", "to": "2026-03-06", "by": "week", "group": "district"},
            headers=coordinator(),
            timeout=10,
        ).json()
        (week,) = weekly["rows"]
        assert (week["period"], week["group"], week["received"], week["dispatched"], week["resolved"]) == (
            "2026-W10",
            "500103",
            2,
            2,
            1,
        )
        assert (week["response_rate"], week["on_time_resolution_rate"], week["satisfaction_rate"]) == (0.5, 1.0, 1.0)
    finally:
        drop(stack, mongodb_url)
