"""Caller texts through the outbox and the real Alibaba Cloud SMS SDK, against a local SendSms stand-in:
one text per event under redelivery and after a restart, consent (P6.2), retries on transient errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from pymongo import AsyncMongoClient

from common.app import Runtime
from common.store import CommandCounter
from contracts.events.hotline import HELP_REQUESTED_TOPIC, Caller
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseClosed
from services.notify.clockwork import Notify
from services.notify.domain import texts
from services.notify.domain.texts import Notification
from services.notify.outbox import Channel, DeliveryError, LogChannel, Outbox, build_channels
from services.notify.settings import Settings
from services.notify.sms import AliyunSmsChannel
from services.notify.store import NotifyStore
from tests.notify.texts_standin import SendSmsStandIn, aliyun_env
from tests.support.events import dispatched, help_requested, new_case_id, resolved

pytestmark = pytest.mark.component
PHONE = "13912345678"


@pytest.fixture
def standin() -> Iterator[SendSmsStandIn]:
    with SendSmsStandIn() as server:
        yield server


def aliyun_settings(rt: Runtime[Notify], url: str, **more: object) -> Settings:
    env = {k.removeprefix("NOTIFY_").lower(): v for k, v in aliyun_env(url).items()}
    return Settings.model_validate({**rt.service.settings.model_dump(), **env, **more})


@pytest.fixture
async def texting(runtime: Runtime[Notify], standin: SendSmsStandIn) -> AsyncIterator[dict[str, Channel]]:
    """The runtime's outbox sends caller texts through Alibaba Cloud SMS, i.e. the stand-in."""
    settings = aliyun_settings(runtime, standin.url, delivery_backoff_initial_s=1, delivery_max_attempts=4)
    runtime.service.outbox.settings = settings
    async with httpx.AsyncClient() as client:
        channels = build_channels(settings, client)
        assert isinstance(channels["sms"], AliyunSmsChannel)  # NOTIFY_SMS_PROVIDER=aliyun picks it
        yield channels


async def publish(rt: Runtime[Notify], event, topic: str = CASE_LIFECYCLE_TOPIC) -> None:
    assert rt.broker is not None
    await rt.broker.publish(event.model_dump(mode="json"), topic=topic, key=event.key)


async def relay(outbox: Outbox, channels: dict[str, Channel], after: timedelta = timedelta(0)) -> list[str]:
    """One pass of the outbox relay, `after` from now: every attempt due then, in order."""
    at = datetime.now(UTC) + after
    return [await outbox.deliver(t, channels, at) for t in await outbox.store.outbox_timers.due(at, 100)]


def caller(consents: bool, phone: str = PHONE) -> Caller:
    return Caller(name="李四", phone=phone, consents_to_texts=consents)


async def test_a_consented_call_gets_exactly_two_texts_under_redelivery_and_after_a_restart(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    call = help_requested(cid, "homeless_cold", at=now, caller=caller(True))
    first, done = dispatched(cid, at=now), resolved(cid, at=now + timedelta(minutes=30))
    for event, topic in [(call, HELP_REQUESTED_TOPIC), (call, HELP_REQUESTED_TOPIC), (first, CASE_LIFECYCLE_TOPIC)]:
        await publish(runtime, event, topic)
    await publish(runtime, first)  # redelivered
    await publish(runtime, dispatched(cid, at=now))  # the router republished the step: a new event id
    assert await relay(runtime.service.outbox, texting) == ["sent"]
    await publish(runtime, done)
    await publish(runtime, done)
    assert await relay(runtime.service.outbox, texting, timedelta(seconds=1)) == ["sent"]

    # A restart: a fresh outbox over the same store; the events come again; nothing more is sent.
    restarted = Outbox(NotifyStore(runtime.service.store.db, bucket_s=60), runtime.service.outbox.settings)
    for event in (first, done):
        await publish(runtime, event)
    assert await relay(restarted, texting, timedelta(minutes=5)) == []

    sent = standin.of(cid)
    assert [m["template"] for m in sent] == ["SMS_900001", "SMS_900002"]
    assert sent[0]["params"] == {"case_id": cid, "handler": "渝中区民政", "due": sent[0]["params"]["due"]}
    assert sent[1]["params"] == {"case_id": cid, "outcome": "rescued"}
    assert {m["phone"] for m in sent} == {PHONE} and {m["sign_name"] for m in sent} == {"社会救助热线"}
    records = await runtime.service.store.list_notifications(case_id=cid, recipient="caller")
    assert [(r.kind, r.status, r.channel) for r in records] == [
        ("caller_dispatched", "sent", "sms"),
        ("caller_resolved", "sent", "sms"),
    ]
    references = [getattr(r.attempts[-1], "reference", None) for r in records]
    assert all(references) and len(set(references)) == 2  # the provider's BizId of each
    assert [r.event_id for r in records] == [str(first.event_id), str(done.event_id)]
    assert PHONE not in str(records)


async def test_a_caller_who_did_not_consent_gets_no_text_and_the_record_says_why(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(False)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    await publish(runtime, resolved(cid, at=now))
    assert await relay(runtime.service.outbox, texting) == ["no consent", "no consent"]
    assert await relay(runtime.service.outbox, texting, timedelta(hours=1)) == []  # no retry either
    assert standin.of(cid) == [] and standin.refused == []
    records = await runtime.service.store.list_notifications(case_id=cid, recipient="caller")
    assert [(r.status, r.attempts[0].skipped) for r in records] == [("skipped", "no consent")] * 2  # type: ignore[union-attr]
    assert await runtime.service.store.caller_contact(cid) == (False, None)  # the phone was never kept


async def test_a_text_waits_for_the_call_when_the_dispatch_is_read_first(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, dispatched(cid, at=now))  # the call's record is still on its way
    assert await relay(runtime.service.outbox, texting) == ["waiting"]
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    assert await relay(runtime.service.outbox, texting, timedelta(seconds=5)) == ["sent"]
    assert len(standin.of(cid)) == 1


async def test_a_text_waits_for_a_call_that_comes_long_after_its_dispatch_without_using_up_its_attempts(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """P6.2: after an outage notify may read a dispatch many minutes before the call it answers. Waiting
    for the call is not a failed attempt: the text goes out once the call is read, however many rounds
    it waited (more than the attempts a failing provider gets); only past `delivery_call_wait_s` is it
    tried as an attempt that fails."""
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, dispatched(cid, at=now))
    outbox = runtime.service.outbox
    rounds = outbox.settings.delivery_max_attempts + 4
    waited = [await relay(outbox, texting, timedelta(minutes=7 * n)) for n in range(rounds)]
    assert waited == [["waiting"]] * rounds
    [record] = await runtime.service.store.list_notifications(case_id=cid, recipient="caller")
    assert record.status == "pending" and record.attempts == []
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    assert await relay(outbox, texting, timedelta(minutes=7 * rounds)) == ["sent"]
    assert len(standin.of(cid)) == 1

    late = new_case_id()
    await publish(runtime, dispatched(late, at=now))
    past = timedelta(seconds=outbox.settings.delivery_call_wait_s + 60)
    assert await relay(outbox, texting, past) == ["retry"]  # a day on, no call: an attempt that failed


async def test_flow_control_is_retried_after_a_minute_and_the_text_then_goes_out(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    standin.script[cid] = ["isv.BUSINESS_LIMIT_CONTROL"]
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    outbox = runtime.service.outbox
    assert await relay(outbox, texting) == ["retry"]
    assert await relay(outbox, texting, timedelta(seconds=30)) == []  # the per-minute limit holds
    assert await relay(outbox, texting, timedelta(seconds=61)) == ["sent"]
    record = await runtime.service.store.notification(f"{cid}|caller_dispatched")
    assert record is not None and record.status == "sent" and [a.ok for a in record.attempts] == [False, True]
    assert "isv.BUSINESS_LIMIT_CONTROL" in record.attempts[0].error  # type: ignore[union-attr]
    assert len(standin.of(cid)) == 1 and [r["code"] for r in standin.refused if cid in r["out_id"]] == [
        "isv.BUSINESS_LIMIT_CONTROL"
    ]


async def test_the_outcome_text_waits_while_the_case_number_text_is_retried(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """P6.2: a caller learns the case number and handler before the outcome, even when the first text is held
    back by the provider's flow control and the case is resolved meanwhile."""
    cid, now = new_case_id(), datetime.now(UTC)
    standin.script[cid] = ["isv.BUSINESS_LIMIT_CONTROL"]
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    outbox = runtime.service.outbox
    assert await relay(outbox, texting) == ["retry"]
    await publish(runtime, resolved(cid, at=now + timedelta(minutes=5)))
    assert await relay(outbox, texting, timedelta(seconds=1)) == ["waiting"]
    assert await relay(outbox, texting, timedelta(seconds=61)) == ["waiting", "sent"]
    assert await relay(outbox, texting, timedelta(seconds=63)) == ["sent"]
    assert [m["template"] for m in standin.of(cid)] == ["SMS_900001", "SMS_900002"]
    records = await runtime.service.store.list_notifications(case_id=cid, recipient="caller")
    assert [(r.kind, r.status, len(r.attempts)) for r in records] == [
        ("caller_dispatched", "sent", 2),
        ("caller_resolved", "sent", 1),  # waiting is not an attempt
    ]


async def test_two_notify_processes_reading_the_same_due_text_send_it_once(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """Two instances of notify side by side: both read the same due attempt; one claims and sends it."""
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    first = runtime.service.outbox
    second = Outbox(NotifyStore(runtime.service.store.db, bucket_s=60), first.settings)
    at = datetime.now(UTC) + timedelta(seconds=1)
    [timer] = await first.store.outbox_timers.due(at, 100)
    [again] = await second.store.outbox_timers.due(at, 100)
    outcomes = await asyncio.gather(first.deliver(timer, texting, at), second.deliver(again, texting, at))
    assert sorted(outcomes) == ["claimed", "sent"] or sorted(outcomes) == ["sent", "skipped"]
    assert len(standin.of(cid)) == 1
    assert await relay(second, texting, timedelta(minutes=5)) == []  # the timer is done: nothing left to send


async def test_a_claim_left_by_a_dead_process_is_taken_over(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    store = runtime.service.store
    assert await store.claim_delivery(f"{cid}|caller_dispatched", 1, now, takeover_s=60)  # then it died
    assert await relay(runtime.service.outbox, texting) == ["claimed"]
    assert standin.of(cid) == []
    assert await relay(runtime.service.outbox, texting, timedelta(seconds=61)) == ["sent"]
    assert len(standin.of(cid)) == 1


async def test_an_illegal_number_is_not_retried_and_the_record_masks_it(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    cid, now, phone = new_case_id(), datetime.now(UTC), "10012345678"  # no mobile number starts 10
    await publish(
        runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True, phone)), HELP_REQUESTED_TOPIC
    )
    await publish(runtime, dispatched(cid, at=now))
    await publish(runtime, CaseClosed(case_id=cid, actor="co-1", reason="duplicate"))
    assert await relay(runtime.service.outbox, texting) == ["failed"]
    assert await relay(runtime.service.outbox, texting, timedelta(hours=1)) == []
    record = await runtime.service.store.notification(f"{cid}|caller_dispatched")
    assert record is not None and record.status == "failed" and len(record.attempts) == 1
    assert "isv.MOBILE_NUMBER_ILLEGAL" in str(record.attempts[0]) and phone not in str(record)
    assert await runtime.service.store.caller_contact(cid) is None  # closed, last text done: forgotten


async def test_an_unreachable_provider_is_retried(runtime: Runtime[Notify], standin: SendSmsStandIn) -> None:
    port = standin.server.server_address[1]
    standin.__exit__()  # nothing listens there any more
    settings = aliyun_settings(runtime, f"http://127.0.0.1:{port}", delivery_timeout_s=2)
    runtime.service.outbox.settings = settings
    channels: dict[str, Channel] = {"log": LogChannel(), "sms": AliyunSmsChannel(settings)}
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    assert await relay(runtime.service.outbox, channels) == ["retry"]
    record = await runtime.service.store.notification(f"{cid}|caller_dispatched")
    assert record is not None and "unreachable" in record.attempts[0].error  # type: ignore[union-attr]


async def test_the_sdk_call_does_not_block_the_event_loop(runtime: Runtime[Notify], standin: SendSmsStandIn) -> None:
    """While a send waits on a slow provider, the loop goes on running other work."""
    settings = aliyun_settings(runtime, standin.url)
    channel = AliyunSmsChannel(settings)
    record = (await _one_record(runtime, settings))[0]
    slow = standin.answer

    def answer_slowly(target: str, headers: dict[str, str]):
        time.sleep(0.5)  # the stand-in's thread, not the loop
        return slow(target, headers)

    standin.answer = answer_slowly  # type: ignore[method-assign]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    reference = await channel.send(record, PHONE)
    ticker.cancel()
    assert reference and ticks >= 20  # about 50 ticks in 0.5 s; a blocked loop makes none


async def _one_record(runtime: Runtime[Notify], settings: Settings):
    cid, now = new_case_id(), datetime.now(UTC)
    runtime.service.outbox.settings = settings
    await publish(runtime, dispatched(cid, at=now))
    return await runtime.service.store.list_notifications(case_id=cid, recipient="caller")


async def test_the_relay_texts_many_callers_at_once_and_each_once(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """P6.2 in a surge: the relay runs the due attempts of different cases at the same time (one after
    another, texts fell minutes behind the calls), and still sends each caller's text once."""
    from services.notify.sweeper import deliver_once

    provider = texting["sms"]
    in_flight, most = 0, 0

    class Slow:
        name = provider.name

        async def send(self, notification, address):
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0.2)
                return await provider.send(notification, address)
            finally:
                in_flight -= 1

    now = datetime.now(UTC)
    cases = [new_case_id() for _ in range(12)]
    for n, cid in enumerate(cases):
        phone = f"139{n:08d}"
        await publish(
            runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True, phone)), HELP_REQUESTED_TOPIC
        )
        await publish(runtime, dispatched(cid, at=now))
    channels = {**texting, "sms": Slow()}
    assert await deliver_once(runtime, channels, datetime.now(UTC) + timedelta(seconds=1)) == 12
    assert most > 1, "attempts of different cases ran one after another"
    assert [len(standin.of(cid)) for cid in cases] == [1] * 12
    assert await deliver_once(runtime, channels, datetime.now(UTC) + timedelta(minutes=5)) == 0


async def test_a_round_of_texts_claims_and_records_them_together(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn, mongodb_url: str
) -> None:
    """P6.2 in a surge: one delivery round of twelve callers' texts claims them in one insert, records
    them in one update command and clears their timers in one delete per timer bucket; before, each text
    took one of each (and on FerretDB every command pays a scan or a round trip of its own)."""
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        now = datetime.now(UTC)
        cases = [new_case_id() for _ in range(12)]
        for n, cid in enumerate(cases):
            request = help_requested(cid, "homeless_cold", at=now, caller=caller(True, f"137{n:08d}"))
            await publish(runtime, request, HELP_REQUESTED_TOPIC)
            await publish(runtime, dispatched(cid, at=now))
        store = NotifyStore(client[runtime.settings.database_name], bucket_s=runtime.service.settings.timer_bucket_s)
        outbox = Outbox(store, runtime.service.outbox.settings)
        at = datetime.now(UTC) + timedelta(seconds=1)
        due = await store.outbox_timers.due(at, 100)
        assert len(due) == 12
        counter.sent.clear()
        outcomes = await outbox.deliver_many(due, texting, at)
        sent = dict(counter.sent)
        assert sorted(outcomes.values()) == ["sent"] * 12
        assert [len(standin.of(cid)) for cid in cases] == [1] * 12
        assert sent.get(("insert", "delivery_claims"), 0) <= 2, sent  # the first alone, the rest together
        assert sent.get(("update", "notifications"), 0) == 1, sent
        deletes = sum(n for (command, name), n in sent.items() if command == "delete" and name.startswith("outbox_"))
        assert 1 <= deletes <= len({t.bucket for t in due}), sent
        assert await store.outbox_timers.due(at + timedelta(minutes=5), 100) == []
        assert {
            r.status for r in (await store.notifications_by_key([f"{c}|caller_dispatched" for c in cases])).values()
        } == {"sent"}
    finally:
        await client.close()


class Unreachable:
    """A provider that is down: every attempt fails, transiently."""

    name = "sms"

    async def send(self, notification, address):
        raise DeliveryError("gateway unreachable", transient=True)


async def test_a_first_attempt_moments_after_the_call_reads_neither_its_text_nor_the_contact_back(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn, mongodb_url: str
) -> None:
    """P6.2 in a surge: the process that stored a caller's contact and text sends the text's first attempt
    from what it stored (on FerretDB each read back is a round trip that decodes the document); a process
    that did not store them reads them."""
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        store = NotifyStore(client[runtime.settings.database_name], bucket_s=runtime.service.settings.timer_bucket_s)
        outbox = Outbox(store, runtime.service.outbox.settings)
        cases = [new_case_id() for _ in range(3)]
        await store.remember_callers({cid: f"136{n:08d}" for n, cid in enumerate(cases)}, dict.fromkeys(cases, True))
        await outbox.enqueue_many([text_for(cid) for cid in cases])
        at = datetime.now(UTC) + timedelta(seconds=1)
        due = [t for t in await store.outbox_timers.due(at, 100) if t.payload["key"].split("|")[0] in cases]
        before = counter.sent.copy()
        outcomes = await outbox.deliver_many(due, texting, at)
        spent = counter.sent - before
        assert sorted(outcomes.values()) == ["sent"] * 3
        assert spent[("find", "notifications")] == 0 and spent[("find", "contacts")] == 0, dict(spent)
        assert [len(standin.of(cid)) for cid in cases] == [1] * 3
        cid = new_case_id()  # stored by another process: read back
        other = NotifyStore(client[runtime.settings.database_name], bucket_s=runtime.service.settings.timer_bucket_s)
        await other.remember_callers({cid: PHONE}, {cid: True})
        await Outbox(other, outbox.settings).enqueue_many([text_for(cid)])
        due = [t for t in await store.outbox_timers.due(at, 100) if t.payload["key"].startswith(cid)]
        before = counter.sent.copy()
        assert list((await outbox.deliver_many(due, texting, at)).values()) == ["sent"]
        spent = counter.sent - before
        assert spent[("find", "notifications")] >= 1 and spent[("find", "contacts")] >= 1, dict(spent)
    finally:
        await client.close()


async def test_a_retry_another_process_scheduled_is_not_skipped_for_what_this_one_remembers(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """This process stored the text (it remembers no attempt); another process's first attempt failed and
    scheduled the second. This process runs that second attempt from the store's record, not its own."""
    store = runtime.service.store
    outbox = runtime.service.outbox
    cid = new_case_id()
    await store.remember_callers({cid: PHONE}, {cid: True})
    await outbox.enqueue_many([text_for(cid)])
    other = Outbox(NotifyStore(store.db, bucket_s=runtime.service.settings.timer_bucket_s), outbox.settings)
    at = datetime.now(UTC) + timedelta(seconds=1)
    [first] = [t for t in await store.outbox_timers.due(at, 100) if t.payload["key"].startswith(cid)]
    assert await other.deliver(first, {"sms": Unreachable(), "log": LogChannel()}, at) == "retry"
    later = at + timedelta(minutes=5)
    [second] = [t for t in await store.outbox_timers.due(later, 100) if t.payload["key"].startswith(cid)]
    assert second.payload["attempt"] == 2
    assert store.recent_notifications.get(f"{cid}|caller_dispatched") is not None  # what this process remembers
    assert await outbox.deliver(second, texting, later) == "sent"
    assert len(standin.of(cid)) == 1
    [record] = (await store.notifications_by_key([f"{cid}|caller_dispatched"])).values()
    assert record.status == "sent" and len(record.attempts) == 2


def text_for(case_id: str) -> Notification:
    """The caller's dispatch text, as the clockwork makes it (P6.2)."""
    return texts.caller_dispatched(
        f"{case_id}|caller_dispatched",
        case_id,
        district="500103",
        department="civil_affairs",
        due_at=datetime.now(UTC) + timedelta(days=3),
        tz=timezone(timedelta(hours=8)),
    )


async def test_whether_a_texted_callers_case_is_closed_comes_from_what_this_process_wrote(
    runtime: Runtime[Notify], texting: dict[str, Channel], standin: SendSmsStandIn
) -> None:
    """P6.2: once a caller's last text is out, the phone goes if the case is closed. The case's status is
    the one this process wrote (its write path's memory), not read back for every text that ends."""
    cid, now = new_case_id(), datetime.now(UTC)
    await publish(runtime, help_requested(cid, "homeless_cold", at=now, caller=caller(True)), HELP_REQUESTED_TOPIC)
    await publish(runtime, dispatched(cid, at=now))
    await publish(runtime, CaseClosed(case_id=cid, actor="co-1", reason="duplicate"))
    cases = runtime.service.clockwork.cases
    hits = cases.cache_hits
    assert await relay(runtime.service.outbox, texting) == ["sent"]
    assert cases.cache_hits == hits + 1  # the status of the case, from memory
    assert await runtime.service.store.caller_contact(cid) is None  # closed, last text done: forgotten
    assert len(standin.of(cid)) == 1
