"""The outbox over the real store: channels, retries with backoff, one record per natural key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.notify.domain.texts import caller_dispatched
from services.notify.outbox import LogChannel, Outbox, SmsGatewayChannel, WebhookChannel
from services.notify.settings import Settings
from services.notify.store import NotifyStore
from tests.support.events import new_case_id

pytestmark = pytest.mark.component


def gateway(statuses: list[int], seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(statuses.pop(0) if statuses else 200, json={"id": f"gw-{len(seen)}"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def make_outbox(db) -> Outbox:
    store = NotifyStore(db, bucket_s=60)
    await store.ensure_indexes()
    return Outbox(
        store,
        Settings(
            sms_gateway_url="http://sms.test/send",
            alert_webhook_url="http://hook.test/",
            delivery_max_attempts=3,
            delivery_backoff_initial_s=1,
        ),
    )


async def run_due(outbox: Outbox, channels, at: datetime) -> list[str]:
    return [await outbox.deliver(t, channels, at) for t in await outbox.store.outbox_timers.due(at, 50)]


async def test_caller_text_is_retried_with_backoff_then_recorded_as_sent(db) -> None:
    outbox, cid, now = await make_outbox(db), new_case_id(), datetime.now(UTC)
    await outbox.store.remember_caller(cid, "13912345678", consents=True)
    seen: list[httpx.Request] = []
    async with gateway([503, 200], seen) as client:
        channels = {"log": LogChannel(), "sms": SmsGatewayChannel(client, "http://sms.test/send", "tkn")}
        note = caller_dispatched(
            f"{cid}|caller_dispatched",
            cid,
            district="500103",
            department="civil_affairs",
            due_at=now + timedelta(hours=2),
            tz=UTC,
        )
        assert await outbox.enqueue(note, now) is True
        assert await outbox.enqueue(note, now) is False  # a redelivered event: no second record
        assert await run_due(outbox, channels, now) == ["retry"]
        assert await run_due(outbox, channels, now) == []  # the retry waits for its backoff
        assert await run_due(outbox, channels, now + timedelta(seconds=5)) == ["sent"]
        assert await run_due(outbox, channels, now + timedelta(seconds=60)) == []
    record = await outbox.store.notification(note.key)
    assert record is not None and record.status == "sent" and [a.ok for a in record.attempts] == [False, True]
    assert len(seen) == 2 and seen[1].headers["Authorization"] == "Bearer tkn"
    body = httpx.Request("POST", "x", content=seen[1].content).read().decode()
    assert "13912345678" in body and note.key in body  # the phone goes to the gateway, nowhere else
    assert "13912345678" not in str(record)


async def test_a_client_error_is_not_retried_and_the_record_says_failed(db) -> None:
    outbox, cid, now = await make_outbox(db), new_case_id(), datetime.now(UTC)
    await outbox.store.remember_caller(cid, "13912345678", consents=True)
    async with gateway([400], []) as client:
        channels = {"log": LogChannel(), "sms": SmsGatewayChannel(client, "http://sms.test/send")}
        note = caller_dispatched(
            f"{cid}|caller_dispatched", cid, district="500103", department="civil_affairs", due_at=None, tz=UTC
        )
        await outbox.enqueue(note, now)
        assert await run_due(outbox, channels, now) == ["failed"]
    record = await outbox.store.notification(note.key)
    assert record is not None and record.status == "failed"


async def test_text_waits_for_the_callers_number_then_gives_up_after_max_attempts(db) -> None:
    """Waiting for the call (its consent and phone) is not an attempt, for `delivery_call_wait_s`; after
    that each try is an attempt, and the text fails after `delivery_max_attempts` of them."""
    outbox, cid, now = await make_outbox(db), new_case_id(), datetime.now(UTC)
    outbox.settings = outbox.settings.model_copy(update={"delivery_call_wait_s": 120})
    async with gateway([], []) as client:
        channels = {"log": LogChannel(), "sms": SmsGatewayChannel(client, "http://sms.test/send")}
        note = caller_dispatched(f"{cid}|caller_dispatched", cid, district=None, department=None, due_at=None, tz=UTC)
        await outbox.enqueue(note, now)
        outcomes = []
        for minute in range(8):
            outcomes += await run_due(outbox, channels, now + timedelta(minutes=minute))
    assert outcomes == ["waiting", "waiting", "retry", "retry", "failed"]


async def test_department_alert_goes_to_the_webhook_with_its_recipient(db) -> None:
    outbox, cid, now = await make_outbox(db), new_case_id(), datetime.now(UTC)
    seen: list[httpx.Request] = []
    from services.notify.domain.texts import Notification

    alert = Notification(
        f"{cid}|x|department:civil_affairs:500103",
        cid,
        "department_breach",
        "department:civil_affairs:500103",
        "【超时】…",
        "[Breach] …",
    )
    async with gateway([], seen) as client:
        channels = {"log": LogChannel(), "webhook": WebhookChannel(client, "http://hook.test/")}
        await outbox.enqueue(alert, now)
        assert await run_due(outbox, channels, now) == ["sent"]
    assert b"department:civil_affairs:500103" in seen[0].content
