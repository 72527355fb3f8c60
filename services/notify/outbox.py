"""The notification outbox: a delivery record per natural key, pluggable channels, retries with backoff.

A notification is inserted once under its natural key (`_id`), so a redelivered event never makes a second
text (nor does the router republishing a step under a new event id: the key names the case and the step,
e.g. `<case>|caller_dispatched`, `<case>|caller_resolved|<round>`). Each delivery attempt is a durable
timer (`<key>|<attempt>`); an attempt runs only if it is the next one the record expects, so scheduling an
attempt twice, or a restart, is harmless. A crash after the provider accepted a message but before the
attempt was recorded resends it once, with the same `reference` (the webhook) or `OutId` (Alibaba Cloud).

Caller texts go only to callers who agreed on the call (P6.2): before any channel is tried the contact is
read; no consent ends the record as `skipped` (`attempts[-1].skipped = "no consent"`); a call not seen yet
is a transient failure (retried). The phone is kept until the case is closed and its last caller text is
out (sent, failed or skipped), then forgotten.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import structlog

from services.notify.documents import (
    Attempt,
    DeliveryStatus,
    FailedAttempt,
    NotificationRecord,
    SentAttempt,
    SkippedAttempt,
)
from services.notify.domain import texts
from services.notify.domain.texts import Notification, consent_refusal, without_phone
from services.notify.settings import Settings
from services.notify.store import NotifyStore
from services.notify.timers import DueTimer, Timer, by_case

log = structlog.get_logger("notify.outbox")


class DeliveryError(Exception):
    def __init__(self, message: str, *, transient: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s  # the earliest a retry can succeed, if the provider says


class Channel(Protocol):
    name: str

    async def send(self, notification: NotificationRecord, address: str | None) -> str | None:
        """Deliver; return the provider's reference, raise DeliveryError on failure."""


class LogChannel:
    """Writes the message to the log (phone numbers are masked by the log pipeline and never passed here)."""

    name = "log"

    async def send(self, notification: NotificationRecord, address: str | None) -> str | None:
        log.info(
            "notification",
            channel="log",
            recipient=notification.recipient,
            kind=notification.kind,
            case_id=notification.case_id,
            text=notification.text_zh,
        )
        return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 300:
        return
    transient = response.status_code >= 500 or response.status_code in (408, 429)
    raise DeliveryError(f"HTTP {response.status_code}", transient=transient)


class SmsGatewayChannel:
    """POSTs `{to, text, reference}` as JSON to an SMS gateway with a bearer token."""

    name = "sms"

    def __init__(self, client: httpx.AsyncClient, url: str, token: str = "") -> None:
        self.client, self.url, self.token = client, url, token

    async def send(self, notification: NotificationRecord, address: str | None) -> str | None:
        if not address:
            raise DeliveryError("no phone number known for this case yet", transient=True)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.client.post(
                self.url,
                json={"to": address, "text": notification.text_zh, "reference": notification.key},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"gateway unreachable: {type(exc).__name__}", transient=True) from exc
        _raise_for(response)
        try:
            return str(response.json().get("id") or "") or None
        except ValueError:
            return None


class WebhookChannel:
    """POSTs the alert as JSON; the receiver routes it by `recipient` (department, head, coordinator)."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url = client, url

    async def send(self, notification: NotificationRecord, address: str | None) -> str | None:
        body = notification.model_dump(include={"recipient", "kind", "case_id", "text_zh", "text_en"})
        body["reference"] = notification.key
        try:
            response = await self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}", transient=True) from exc
        _raise_for(response)
        return None


@dataclass
class Outbox:
    store: NotifyStore
    settings: Settings
    # Each case's status as it stands (the clockwork's write path hands in its own, which answers from what
    # this process wrote before it reads the store); None: read from the store.
    case_statuses: Callable[[Sequence[str]], Awaitable[dict[str, str | None]]] | None = None

    def channel_for(self, recipient: str) -> str:
        if recipient == "caller":
            return "sms" if self.settings.sms_provider == "aliyun" or self.settings.sms_gateway_url else "log"
        return "webhook" if self.settings.alert_webhook_url else "log"

    async def enqueue(self, notification: Notification, now: datetime | None = None) -> bool:
        """Record the notification once and schedule its first attempt; False if it was already there."""
        return bool(await self.enqueue_many([notification], now))

    async def enqueue_many(self, notifications: list[Notification], now: datetime | None = None) -> set[str]:
        """Record notifications once each (one insert) and schedule their first attempts (one insert per
        timer bucket); returns the keys that were new. Scheduling again is harmless: an attempt that is not
        the next one expected does nothing."""
        now = now or datetime.now(UTC)
        # One millisecond apart (the store keeps milliseconds): records list, and first attempts run, in the
        # order they were decided, e.g. a caller's dispatch text before the resolution text of the same batch.
        at = [now + timedelta(milliseconds=i) for i in range(len(notifications))]
        records = [
            NotificationRecord(
                key=n.key,
                case_id=n.case_id,
                kind=n.kind,
                recipient=n.recipient,
                channel=self.channel_for(n.recipient),
                text_zh=n.text_zh,
                text_en=n.text_en,
                params=n.params,
                event_id=n.event_id,
                created_at=when,
            )
            for n, when in zip(notifications, at, strict=True)
        ]
        created = await self.store.add_notifications(records)
        pairs = zip(notifications, at, strict=True)
        first = [Timer(f"{n.key}|1", when, {"key": n.key, "attempt": 1}) for n, when in pairs]
        await self.store.outbox_timers.schedule(first, now)
        return created

    def backoff(self, attempt: int, at_least_s: float | None = None) -> timedelta:
        base = min(self.settings.delivery_backoff_max_s, self.settings.delivery_backoff_initial_s * 2 ** (attempt - 1))
        return timedelta(seconds=max(base * (0.75 + random.random() / 2), at_least_s or 0.0))

    async def deliver(self, timer: DueTimer, channels: dict[str, Channel], now: datetime | None = None) -> str:
        """Run one attempt (a round of one, `deliver_many`); returns what happened."""
        return (await self.deliver_many([timer], channels, now))[timer.id]

    async def deliver_many(
        self, timers: list[DueTimer], channels: dict[str, Channel], now: datetime | None = None
    ) -> dict[str, str]:
        """Run due attempts as one round; returns what happened to each, by timer id: sent, retry, failed,
        "no consent", waiting (the caller's earlier text is still on its way, or their call not seen yet),
        claimed (another notify process runs this attempt), skipped (not the attempt expected next).

        The round reads its notifications, the earlier texts they wait for and the callers' contacts in one
        read each, and writes at its end: the attempts' next timers first, then the attempts, then the
        timers done, so a crash in between repeats an attempt at most (the provider gets the same reference)
        and never loses one. Different cases' attempts run at the same time (an attempt is mostly waiting
        for the provider), one case's in order, so a caller's texts keep theirs."""
        now = now or datetime.now(UTC)
        round_ = _Round()
        round_.records = await self._records_due(timers)
        earlier = {
            _earlier_key(r) for r in round_.records.values() if r.kind in texts.WAITS_FOR and r.status == "pending"
        }
        if missing := sorted(earlier - set(round_.records)):
            round_.records |= await self.store.notifications_by_key(missing)
        callers = sorted({r.case_id for r in round_.records.values() if r.recipient == "caller"})
        round_.contacts = await self.store.caller_contacts(callers) if callers else {}
        outcomes: dict[str, str] = {}

        async def attempt(timer: DueTimer) -> None:
            outcomes[timer.id] = await self._attempt(round_, timer, channels, now)

        try:
            await by_case(timers, lambda timer: str(timer.payload["key"]).split("|", 1)[0], attempt)
        finally:
            await self._write(round_, now)
        return outcomes

    async def _records_due(self, timers: list[DueTimer]) -> dict[str, NotificationRecord]:
        """The round's notifications: those this process stored moments ago as they are in its memory, when
        each of their timers is the attempt they expect next (a first attempt, mostly), the rest read.
        One that another process moved on meanwhile is refused by the delivery claim that process holds."""
        keys = sorted({t.payload["key"] for t in timers})
        recent = self.store.recent_notifications.many(keys)
        for timer in timers:
            key, attempt = timer.payload["key"], timer.payload["attempt"]
            record = recent.get(key)
            if record is not None and (record.status != "pending" or len(record.attempts) != attempt - 1):
                del recent[key]  # not what this attempt expects: read as the store has it
        return recent | await self.store.notifications_by_key([key for key in keys if key not in recent])

    async def _attempt(self, round_: _Round, timer: DueTimer, channels: dict[str, Channel], now: datetime) -> str:
        key, attempt = timer.payload["key"], timer.payload["attempt"]
        record = round_.records.get(key)
        if record is None or record.status != "pending" or len(record.attempts) != attempt - 1:
            round_.done.append(timer)
            return "skipped"
        channel = channels.get(record.channel) or channels["log"]
        address: str | None = None
        earlier = round_.records.get(_earlier_key(record)) if record.kind in texts.WAITS_FOR else None
        if earlier is not None and earlier.status == "pending":
            # A caller's texts arrive in order: the outcome never before the case number (P6.2).
            return self._again(round_, timer, now, "waits", lambda _: self.settings.delivery_backoff_initial_s)
        contact = round_.contacts.get(record.case_id) if record.recipient == "caller" else None
        if record.recipient == "caller" and contact is None and self._may_wait_for_call(record, now):
            # The dispatch was read before the call (notify behind on the hotline's topic, after an outage):
            # not a failed attempt. It is tried again later, for as long as a call can take to arrive.
            return self._again(round_, timer, now, "calls", lambda waits: self.backoff(waits).total_seconds())
        takeover_s = max(60.0, 4 * self.settings.delivery_timeout_s)
        if not await self.store.claim_delivery(key, attempt, now, takeover_s):
            return "claimed"  # another notify process runs this attempt (and marks its timer done)
        try:
            if record.recipient == "caller":
                if contact is None:
                    raise DeliveryError("the call is not known yet (consent and phone unknown)", transient=True)
                consents, address = contact
                if refusal := consent_refusal(consents):
                    round_.record(record, SkippedAttempt(at=now, skipped=refusal), "skipped", timer)
                    log.info("caller text not sent", key=key, kind=record.kind, reason=refusal)
                    return refusal
            reference = await asyncio.wait_for(channel.send(record, address), self.settings.delivery_timeout_s)
        except (DeliveryError, TimeoutError) as exc:
            transient = isinstance(exc, TimeoutError) or exc.transient
            retry = transient and attempt < self.settings.delivery_max_attempts
            error = without_phone(str(exc) or type(exc).__name__, address)
            failed = FailedAttempt(at=now, channel=channel.name, error=error)
            if retry:
                wait = exc.retry_after_s if isinstance(exc, DeliveryError) else None
                next_at = now + self.backoff(attempt, wait)
                round_.later.append(Timer(f"{key}|{attempt + 1}", next_at, {"key": key, "attempt": attempt + 1}))
            round_.record(record, failed, "pending" if retry else "failed", timer)
            log.warning("notification attempt failed", key=key, attempt=attempt, retry=retry, error=failed.error)
            return "retry" if retry else "failed"
        round_.record(record, SentAttempt(at=now, channel=channel.name, reference=reference), "sent", timer)
        return "sent"

    def _again(
        self, round_: _Round, timer: DueTimer, now: datetime, counter: str, after_s: Callable[[int], float]
    ) -> str:
        """The same attempt later, not counted as one: its timer again, with how often it waited for this
        reason (`counter`) in the payload and the timer's id."""
        key, attempt = timer.payload["key"], timer.payload["attempt"]
        waits = int(timer.payload.get(counter, 0)) + 1
        later = now + timedelta(seconds=after_s(waits))
        payload = {**timer.payload, counter: waits}
        round_.later.append(Timer(f"{key}|{attempt}|{counter[0]}{waits}", later, payload))
        round_.done.append(timer)
        return "waiting"

    async def _write(self, round_: _Round, now: datetime) -> None:
        """The round's writes, in the order that loses nothing (see `deliver_many`); then the callers whose
        case is closed and whose last text is out are forgotten."""
        if round_.later:
            await self.store.outbox_timers.schedule(round_.later, now)
        await self.store.record_attempts(round_.attempts)
        if round_.done:
            await self.store.outbox_timers.cancel((t.id, t.bucket) for t in round_.done)
        if round_.callers_done:
            await self._forget_callers_when_done(sorted(round_.callers_done))

    def _may_wait_for_call(self, record: NotificationRecord, now: datetime) -> bool:
        return now - record.created_at < timedelta(seconds=self.settings.delivery_call_wait_s)

    async def _forget_callers_when_done(self, case_ids: list[str]) -> None:
        """Forget the callers' contacts of the cases that are closed and have no text to them still on its way."""
        statuses = await (self.case_statuses or self.store.case_statuses)(case_ids)
        closed = [case_id for case_id in case_ids if statuses.get(case_id) in ("closed", "merged")]
        await self.store.forget_callers_texted(closed)


def build_channels(settings: Settings, client: httpx.AsyncClient) -> dict[str, Channel]:
    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.sms_provider == "aliyun":
        from services.notify.sms import AliyunSmsChannel  # imports this module (DeliveryError)

        channels["sms"] = AliyunSmsChannel(settings)
    elif settings.sms_gateway_url:
        channels["sms"] = SmsGatewayChannel(
            client, settings.sms_gateway_url, settings.sms_gateway_token.get_secret_value()
        )
    if settings.alert_webhook_url:
        channels["webhook"] = WebhookChannel(client, settings.alert_webhook_url)
    return channels


def _earlier_key(record: NotificationRecord) -> str:
    """The key of the caller text this one waits for (`texts.WAITS_FOR`)."""
    return f"{record.case_id}|{texts.WAITS_FOR[record.kind]}"


@dataclass
class _Round:
    """One delivery round: what it read up front, and the writes it leaves for its end."""

    records: dict[str, NotificationRecord] = field(default_factory=dict)
    contacts: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    later: list[Timer] = field(default_factory=list)  # attempts to run later
    attempts: list[tuple[str, Attempt, DeliveryStatus]] = field(default_factory=list)
    done: list[DueTimer] = field(default_factory=list)
    callers_done: set[str] = field(default_factory=set)  # cases a text to whose caller ended this round

    def record(self, record: NotificationRecord, attempt: Attempt, status: DeliveryStatus, timer: DueTimer) -> None:
        """An attempt made: written at the round's end; the round's copy of the record moves on at once, so a
        later timer of the round (the same attempt again, the text waiting for this one) sees it."""
        self.attempts.append((record.key, attempt, status))
        self.records[record.key] = record.model_copy(update={"attempts": [*record.attempts, attempt], "status": status})
        self.done.append(timer)
        if record.recipient == "caller" and status != "pending":
            self.callers_done.add(record.case_id)
