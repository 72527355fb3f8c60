"""The notification outbox: a delivery record per natural key, pluggable channels, retries with backoff.

A notification is inserted once under its natural key (`_id`), so a redelivered event never makes a second
text. Each delivery attempt is a durable timer (`<key>|<attempt>`); an attempt runs only if it is the next
one the record expects, so scheduling an attempt twice is harmless. A crash after the gateway accepted a
message but before the attempt was recorded resends it once, with the same `reference` for the gateway
to drop.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import structlog

from services.notify.documents import FailedAttempt, NotificationRecord, SentAttempt
from services.notify.domain.texts import Notification
from services.notify.settings import Settings
from services.notify.store import NotifyStore
from services.notify.timers import DueTimer, Timer

log = structlog.get_logger("notify.outbox")


class DeliveryError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


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

    def channel_for(self, recipient: str) -> str:
        if recipient == "caller":
            return "sms" if self.settings.sms_gateway_url else "log"
        return "webhook" if self.settings.alert_webhook_url else "log"

    async def enqueue(self, notification: Notification, now: datetime | None = None) -> bool:
        """Record the notification once and schedule its first attempt; False if it was already there."""
        return bool(await self.enqueue_many([notification], now))

    async def enqueue_many(self, notifications: list[Notification], now: datetime | None = None) -> set[str]:
        """Record notifications once each (one insert) and schedule their first attempts (one insert per
        timer bucket); returns the keys that were new. Scheduling again is harmless: an attempt that is not
        the next one expected does nothing."""
        now = now or datetime.now(UTC)
        records = [
            NotificationRecord(
                key=n.key,
                case_id=n.case_id,
                kind=n.kind,
                recipient=n.recipient,
                channel=self.channel_for(n.recipient),
                text_zh=n.text_zh,
                text_en=n.text_en,
                created_at=now,
            )
            for n in notifications
        ]
        created = await self.store.add_notifications(records)
        await self.store.outbox_timers.schedule(
            [Timer(f"{n.key}|1", now, {"key": n.key, "attempt": 1}) for n in notifications], now
        )
        return created

    def backoff(self, attempt: int) -> timedelta:
        base = min(self.settings.delivery_backoff_max_s, self.settings.delivery_backoff_initial_s * 2 ** (attempt - 1))
        return timedelta(seconds=base * (0.75 + random.random() / 2))

    async def deliver(self, timer: DueTimer, channels: dict[str, Channel], now: datetime | None = None) -> str:
        """Run one attempt; returns what happened (sent, retry, failed, skipped)."""
        now = now or datetime.now(UTC)
        key, attempt = timer.payload["key"], timer.payload["attempt"]
        record = await self.store.notification(key)
        if record is None or record.status != "pending" or len(record.attempts) != attempt - 1:
            await self.store.outbox_timers.done(timer)
            return "skipped"
        channel = channels.get(record.channel) or channels["log"]
        address = await self.store.caller_phone(record.case_id) if record.recipient == "caller" else None
        try:
            reference = await asyncio.wait_for(channel.send(record, address), self.settings.delivery_timeout_s)
        except (DeliveryError, TimeoutError) as exc:
            transient = isinstance(exc, TimeoutError) or exc.transient
            retry = transient and attempt < self.settings.delivery_max_attempts
            failed = FailedAttempt(at=now, channel=channel.name, error=str(exc) or type(exc).__name__)
            if retry:
                next_at = now + self.backoff(attempt)
                await self.store.outbox_timers.schedule(
                    [Timer(f"{key}|{attempt + 1}", next_at, {"key": key, "attempt": attempt + 1})], now
                )
            await self.store.record_attempt(key, failed, "pending" if retry else "failed")
            await self.store.outbox_timers.done(timer)
            log.warning("notification attempt failed", key=key, attempt=attempt, retry=retry, error=failed.error)
            return "retry" if retry else "failed"
        await self.store.record_attempt(key, SentAttempt(at=now, channel=channel.name, reference=reference), "sent")
        await self.store.outbox_timers.done(timer)
        if record.recipient == "caller":
            case = await self.store.load(record.case_id)
            if case and case.get("status") in ("closed", "merged"):
                await self.store.forget_caller(record.case_id)
        return "sent"


def build_channels(settings: Settings, client: httpx.AsyncClient) -> dict[str, Channel]:
    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.sms_gateway_url:
        channels["sms"] = SmsGatewayChannel(
            client, settings.sms_gateway_url, settings.sms_gateway_token.get_secret_value()
        )
    if settings.alert_webhook_url:
        channels["webhook"] = WebhookChannel(client, settings.alert_webhook_url)
    return channels
