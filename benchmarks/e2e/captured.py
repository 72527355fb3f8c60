"""Relief and notify writing their history into memory: each service's own intake code (relief's
`CaseIntake`, notify's handler and `Clockwork`) runs unchanged over stores that keep what it would have
written, so the documents can then go to the real store in bulk (`insert_many`): the same documents,
without tens of thousands of single updates, each of which scans a growing collection on FerretDB."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from services.notify import handlers as notify_handlers
from services.notify.clockwork import Clockwork, Notify
from services.notify.domain.policy import load_policy
from services.notify.timers import Timer
from services.relief.app import load_standards_book
from services.relief.service import Relief
from services.relief.settings import Settings as ReliefSettings

Doc = dict[str, Any]


class ReliefMemory:
    """The part of `ReliefStore` that case intake uses."""

    def __init__(self) -> None:
        self.cases: dict[str, Doc] = {}
        self.entitlements: dict[str, Doc] = {}

    async def merge_case(self, case_id: str, part: str, value: Doc) -> Doc:
        doc = self.cases.setdefault(case_id, {"_id": case_id, "version": 0})
        doc[part] = value
        doc["version"] += 1
        return doc

    async def mark_case_evaluated(self, case_id: str, evaluation: Doc) -> None:
        self.cases[case_id]["evaluation"] = evaluation
        self.cases[case_id]["version"] += 1

    async def registry_by_id_hash(self, id_card_hash: str) -> Doc | None:
        return None  # the history's callers are not in the low-income registry

    async def added_standards(self) -> list[Doc]:
        return []

    async def insert_entitlement(self, doc: Doc) -> bool:
        return self.entitlements.setdefault(doc["_id"], doc) is doc


def relief_intake() -> tuple[Relief, ReliefMemory]:
    settings = ReliefSettings()
    memory = ReliefMemory()
    relief = Relief(store=memory, book=load_standards_book(settings), broker=None,  # type: ignore[arg-type]
                    four_eyes_above=settings.major_second_approval_above_yuan,
                    part_month_policy=settings.part_month_policy,
                    id_hash_salt=settings.id_hash_salt.get_secret_value())
    return relief, memory


def published(entitlement: Doc) -> list[Doc]:
    """The entitlement's events, taken out of its outbox as a successful publish would have."""
    items, entitlement["outbox"] = entitlement.get("outbox", []), []
    return [item["body"] for item in items]


class TimersMemory:
    def __init__(self, bucket_s: int) -> None:
        self.bucket_s = bucket_s
        self.live: dict[str, Timer] = {}

    async def schedule(self, timers: Iterable[Timer], now: datetime | None = None) -> dict[str, int]:
        placed = {}
        for timer in timers:
            self.live[timer.id] = timer
            placed[timer.id] = int(timer.due_at.timestamp()) // self.bucket_s * self.bucket_s
        return placed

    async def cancel(self, timers: Iterable[tuple[str, int]]) -> None:
        for timer_id, _ in timers:
            self.live.pop(timer_id, None)


class NotifyMemory:
    """The part of `NotifyStore` that the handlers and the clockwork use for case events."""

    def __init__(self, bucket_s: int = 300) -> None:
        self.cases: dict[str, Doc] = {}
        self.contacts: dict[str, Doc] = {}
        self.sla_timers = TimersMemory(bucket_s)

    async def load(self, case_id: str) -> Doc | None:
        return self.cases.get(case_id)

    async def save(self, case_id: str, previous: Doc | None, document: Doc) -> bool:
        version = (previous or {}).get("version", 0) + 1
        self.cases[case_id] = {"_id": case_id, **document, "version": version, "updated_at": datetime.now(UTC)}
        return True

    async def remember_caller(self, case_id: str, phone: str) -> None:
        self.contacts.setdefault(case_id, {"_id": case_id, "phone": phone, "stored_at": datetime.now(UTC)})

    async def caller_text_pending(self, case_id: str) -> bool:
        return False

    async def forget_caller(self, case_id: str) -> None:
        self.contacts.pop(case_id, None)


def notify_runtime() -> tuple[Any, NotifyMemory]:
    """What notify's handlers see as `runtime`; caller texts of the history are left out (long sent)."""
    policy = load_policy("")
    memory = NotifyMemory()
    clockwork = Clockwork(memory, policy, outbox=None, caller_texts=False)  # type: ignore[arg-type]
    notify = Notify(memory, policy, clockwork, outbox=None)  # type: ignore[arg-type]
    return SimpleNamespace(store=notify), memory


async def notify_apply(runtime: Any, event: Any) -> None:
    if getattr(event, "type", "") == "hotline.help_requested":
        await runtime.store.store.remember_caller(event.case_id, event.caller.phone)
    await notify_handlers.apply_event(runtime, event)
