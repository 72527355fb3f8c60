"""Relief and notify writing their history into memory: each service's own intake code (relief's
`CaseIntake`, notify's `Clockwork.fold`) runs unchanged over memory that keeps what it would have
written, so the documents can then go to the real store in bulk (`insert_many`): the same documents,
without tens of thousands of single updates, each of which scans a growing collection on FerretDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.events.hotline import HelpRequested
from services.notify.clockwork import CODEC, Clockwork, NotifyCase
from services.notify.domain import case as case_rules
from services.notify.domain.policy import load_policy
from services.notify.store import NotifyStore
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


class NotifyHistory:
    """Notify's clockwork folding a history's events in memory (`Clockwork.fold`, the change its write path
    applies), its effects (timers placed and cancelled, phones forgotten) kept in memory too: the case
    documents the service would have written, ready to insert in bulk."""

    def __init__(self, db: Any) -> None:
        self.policy = load_policy("")
        self.clockwork = Clockwork(NotifyStore(db), self.policy, outbox=None, caller_texts=False)  # type: ignore[arg-type]
        self.cases: dict[str, NotifyCase] = {}
        self.versions: dict[str, int] = {}
        self.contacts: dict[str, Doc] = {}
        self.live_timers: set[str] = set()

    def apply(self, event: Any) -> None:
        if isinstance(event, HelpRequested):
            self.contacts.setdefault(event.case_id, {"_id": event.case_id, "phone": event.caller.phone,
                                                     "stored_at": event.received_at})
        change = self.clockwork.fold(event.case_id, [(str(event.event_id),
                                                      lambda s: case_rules.apply(s, event, self.policy))],
                                     event.occurred_at)
        new = change(self.cases.get(event.case_id))
        if new is None:
            return
        for entry in new.outbox:
            ids = {t["id"] for t in entry.get("timers", [])}
            if entry["op"] == "schedule":
                self.live_timers |= ids
            elif entry["op"] == "cancel":
                self.live_timers -= ids
            elif entry["op"] == "forget_caller":
                self.contacts.pop(event.case_id, None)
        self.cases[event.case_id] = new.model_copy(update={"outbox": []})
        self.versions[event.case_id] = self.versions.get(event.case_id, 0) + 1

    def drain(self) -> tuple[list[Doc], list[Doc]]:
        """The case documents and contacts built so far (then forgotten)."""
        now = datetime.now(UTC)
        cases = [CODEC.dump(case) | {"version": self.versions[case_id], "updated_at": now, "outbox_pending": False}
                 for case_id, case in self.cases.items()]
        contacts = list(self.contacts.values())
        self.cases.clear(), self.versions.clear(), self.contacts.clear()
        return cases, contacts
