"""Relief's use cases: read the state, ask the pure domain, write the change with its events through the
shared write path (`common.aggregates`, `self.entitlements`), which publishes them. Kafka handlers and
HTTP routes stay thin by calling these (the batch intake is `services.relief.intake.CaseIntake`).

Every decision appends to the entitlement's `decisions`: who, when, which rule, on which facts (P6.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import structlog
from faststream.kafka import KafkaBroker

from common.aggregates import Aggregates
from common.errors import DomainError, Forbidden, NotFound
from common.kafka import publish_event
from common.principal import Principal, Role
from contracts.events import utcnow
from contracts.events.relief import (
    GrantApproved,
    GrantCancelled,
    GrantPaid,
    GrantProposed,
    GrantRejected,
    GrantStopped,
    HukouDistrictNotified,
)
from contracts.events.router import CasesMerged
from services.relief.documents import (
    Entitlement,
    ReliefCase,
    cases_of,
    decide_on,
    entitlements_of,
    from_outbox,
    mark_paid,
)
from services.relief.domain import lifecycle
from services.relief.domain.facts import Category
from services.relief.domain.lifecycle import Conflict, EntitlementState, Status
from services.relief.domain.money import as_str, to_fen, yuan
from services.relief.domain.rules import AmountKind, Schedule, p51_steps_followed
from services.relief.domain.schedule import PartMonthPolicy, monthly_payment, payable_months
from services.relief.domain.standards import Area, StandardsBook
from services.relief.intake import CHINA, CaseIntake
from services.relief.store import Doc, ReliefStore

log = structlog.get_logger("relief.service")


def today() -> date:
    """Business dates are Beijing time."""
    return datetime.now(CHINA).date()


@dataclass
class Relief(CaseIntake):
    store: ReliefStore
    book: StandardsBook  # the shipped standards; admin-added ones are merged in from the store
    broker: KafkaBroker | None = None
    topic_namespace: str = ""  # see ServiceSettings.topic_namespace
    four_eyes_above: Decimal = Decimal("5000.00")
    part_month_policy: PartMonthPolicy = PartMonthPolicy.FULL_MONTH
    id_hash_salt: str = ""
    clock: Any = field(default=today)
    cases: Aggregates[ReliefCase] = field(init=False)
    entitlements: Aggregates[Entitlement] = field(init=False)

    def __post_init__(self) -> None:
        self.cases = cases_of(self.store.db)
        # Without a broker (a tool, a test) the outboxes wait for a service's sweeper.
        self.entitlements = entitlements_of(self.store.db, self._publish_outboxes if self.broker is not None else None)

    async def _publish_outboxes(self, outboxes: Sequence[tuple[str, list[Doc]]]) -> None:
        """Publish entitlements' outbox entries (`Aggregates` calls this after a write, and the sweeper for
        what a failed publish left): each entitlement's in order, different entitlements concurrently.
        At least once: consumers dedupe on event_id."""

        async def in_order(entries: list[Doc]) -> None:
            for entry in entries:
                event = from_outbox(entry)
                await publish_event(self.broker, event, topic=f"{self.topic_namespace}{event.TOPIC}")  # type: ignore[arg-type]

        await asyncio.gather(*(in_order(entries) for _, entries in outboxes if entries))

    # ------------------------------------------------------------------ officer decisions

    async def get(self, entitlement_id: str, officer: Principal) -> Doc:
        doc = await self.store.get_entitlement(entitlement_id)
        if doc is None:
            raise NotFound("未找到该救助事项", f"no entitlement {entitlement_id}")
        if not officer.can_see_district(doc["district"]):
            raise Forbidden("只能办理本区县的救助", "officers act only on entitlements of their own district")
        return doc

    async def approve(
        self,
        entitlement_id: str,
        officer: Principal,
        amount: Decimal | None,
        note: str,
        confirmed_on: date | None = None,
        contested: bool = False,
    ) -> Doc:
        doc = await self.get(entitlement_id, officer)
        outcome = lifecycle.approve(_state(doc), officer.sub, amount)
        now, on = utcnow(), self.clock()
        signed = [*doc["signed_by"], officer.sub]
        fields: Doc = {
            "status": str(outcome.status),
            "signed_by": signed,
            "updated_at": now,
            "amount": as_str(outcome.amount) if outcome.amount is not None else None,
        }
        if confirmed_on is not None:
            if doc["schedule"] != Schedule.MONTHLY:
                raise DomainError(
                    "只有按月发放的救助有确诊日期",
                    "only a monthly grant has a confirmation date",
                    field="confirmed_on",
                    status=422,
                )
            fields["start_on"] = confirmed_on.isoformat()
        common = _common(doc, officer.sub)
        events: list[Any] = []
        if outcome.status is Status.PENDING_APPROVAL:
            events.append(
                GrantProposed(
                    **common,
                    amount_yuan=outcome.amount,
                    period=_period_label(doc, on),
                    reasons=tuple(doc["reasons"]),
                    facts=doc["facts"],
                    needs_second_approval=True,
                    schedule=doc["schedule"],
                )
            )
        else:
            fields["approved_on"] = on.isoformat()
            events.append(
                GrantApproved(
                    **common,
                    amount_yuan=outcome.amount or yuan(0),
                    approved_on=on,
                    approved_by=tuple(signed),
                    schedule=doc["schedule"],
                )
            )
            if doc["schedule"] == Schedule.MONTHLY and doc.get("end_on"):  # discharged before approval
                fields["status"] = str(Status.STOPPED)
                events.append(GrantStopped(**common, reason="discharged", stopped_on=date.fromisoformat(doc["end_on"])))
        action = "signed_pending_second_approval" if outcome.needs_second_approval else "approved"
        details: Doc = {"amount": outcome.amount}
        if doc["rule_id"] == "P5.1":
            details |= {"contested": contested, "steps": list(p51_steps_followed(doc.get("sla_class"), contested))}
        updated = await self._apply(doc, fields, _decision(doc, officer, action, now, note, **details), events)
        if doc["rule_id"] == "P5.1" and updated["status"] == Status.APPROVED:
            await self._enter_registry(updated, on)
        return updated

    async def _enter_registry(self, doc: Doc, on: date) -> None:
        """P5.1 -> P2.3: an approved dibao application enters the low-income population database, dated
        today, so this month's open holiday run pays the person in the same month (P2.1)."""
        if not doc.get("id_card_hash"):
            log.warning(
                "approved dibao recipient has no ID-card number: not entered in the registry", case_id=doc["case_id"]
            )
            return
        existing = await self.store.registry_by_id_hash(doc["id_card_hash"])
        categories = sorted({*(existing or {}).get("categories", []), str(Category.DIBAO)})
        record = (existing or {}) | {
            "_id": (existing or {}).get("_id", doc["recipient_id"]),
            "id_card_hash": doc["id_card_hash"],
            "id_card_masked": (existing or {}).get("id_card_masked", "-"),
            "name": (existing or {}).get("name", ""),
            "district": doc["district"],
            "area": doc.get("area") or (existing or {}).get("area") or str(Area.URBAN),
            "categories": categories,
            "approved_on": on.isoformat(),
            "ended_on": None,
            "source_case_id": doc["case_id"],
        }
        await self.store.upsert_registry([record])

    async def reject(self, entitlement_id: str, officer: Principal, reason: str) -> Doc:
        doc = await self.get(entitlement_id, officer)
        status = lifecycle.reject(_state(doc))
        now = utcnow()
        return await self._apply(
            doc,
            {"status": str(status), "updated_at": now},
            _decision(doc, officer, "rejected", now, reason),
            [GrantRejected(**_common(doc, officer.sub), reason=reason)],
        )

    async def cancel(self, entitlement_id: str, officer: Principal, reason: str) -> Doc:
        doc = await self.get(entitlement_id, officer)
        if await self.store.ledger_count({"entitlement_id": entitlement_id}):
            raise Conflict("已有发放记录，不能撤销", "payments are recorded: cannot cancel")
        status = lifecycle.cancel(_state(doc))
        now = utcnow()
        return await self._apply(
            doc,
            {"status": str(status), "updated_at": now},
            _decision(doc, officer, "cancelled", now, reason),
            [GrantCancelled(**_common(doc, officer.sub), reason=reason)],
        )

    async def on_cases_merged(self, event: CasesMerged) -> None:
        """A duplicate case was merged into another: its still-open proposals are cancelled so one hardship
        is not granted twice (the surviving case has its own); approved or paid grants stay with the officer."""
        system = Principal(sub="relief:case-merged", role=Role.RELIEF_OFFICER, district=None)
        reason = f"已并入案件 {event.into_case_id} | merged into case {event.into_case_id}"
        query = {"case_id": event.case_id, "status": {"$in": [str(s) for s in lifecycle.OPEN]}}
        for doc in await self.store.list_entitlements(query):
            try:
                await self.cancel(doc["_id"], system, reason)
            except Conflict:  # changed meanwhile (e.g. approved): the officer decides
                log.info("merged case entitlement left to the officer", entitlement_id=doc["_id"])

    async def discharge(self, entitlement_id: str, officer: Principal, discharged_on: date, note: str) -> Doc:
        """P5.2a: the patient left hospital; the monthly payment stops after the discharge month."""
        doc = await self.get(entitlement_id, officer)
        status = lifecycle.discharge(_state(doc))
        if doc.get("start_on") and discharged_on < date.fromisoformat(doc["start_on"]):
            raise DomainError(
                "出院日期早于确诊日期",
                "the discharge date is before the confirmation date",
                field="discharged_on",
                status=422,
            )
        now = utcnow()
        events = []
        if status is Status.STOPPED:
            events.append(GrantStopped(**_common(doc, officer.sub), reason="discharged", stopped_on=discharged_on))
        return await self._apply(
            doc,
            {"status": str(status), "end_on": discharged_on.isoformat(), "updated_at": now},
            _decision(doc, officer, "discharged", now, note, discharged_on=discharged_on.isoformat()),
            events,
        )

    async def _apply(self, doc: Doc, fields: Doc, decision: Doc, events: list[Any]) -> Doc:
        """Write one decision through the write path if nobody changed the entitlement since `doc` was
        read (compare-and-set on its version: two officers acting at once, the second gets 409)."""
        written = await self.entitlements.change(doc["_id"], decide_on(doc["version"], fields, decision, events))
        assert written is not None
        return written.value.to_document()

    # ------------------------------------------------------------------ payments (P6.1)

    async def pay(self, entitlement_id: str, officer: Principal, period: str, reference: str) -> tuple[bool, Doc]:
        """Record a payment once per (case, rule, period): retries and double clicks return the same entry."""
        doc = await self.get(entitlement_id, officer)
        state = _state(doc)
        key = f"{doc['case_id']}|{doc['rule_id']}|{period}"
        if period in doc["paid_periods"]:
            existing = await self.store.ledger_entries({"idempotency_key": key}, limit=1)
            if existing:
                return False, existing[0]
        lifecycle.check_payable(state)
        amount = self._amount_for(doc, period)
        now = utcnow()
        entry = {
            "idempotency_key": key,
            "entitlement_id": doc["_id"],
            "case_id": doc["case_id"],
            "rule_id": doc["rule_id"],
            "period": period,
            "run_id": None,
            "recipient_id": doc["recipient_id"],
            "district": doc["district"],
            "amount": as_str(amount),
            "amount_fen": to_fen(amount),
            "payment_reference": reference,
            "recorded_by": officer.sub,
            "recorded_at": now,
        }
        created, entry = await self.store.append_ledger(entry)
        common = _common(doc, officer.sub)
        approved_on = date.fromisoformat(doc["approved_on"]) if doc.get("approved_on") else None
        events: list[Any] = [
            GrantPaid(
                **common,
                amount_yuan=Decimal(entry["amount"]),
                payment_reference=entry["payment_reference"],
                approved_on=approved_on,
                period=period,
            )
        ]
        if doc.get("hukou_notice_district") and not doc["paid_periods"]:  # P5.2d, with the first payment
            events.append(
                HukouDistrictNotified(
                    case_id=doc["case_id"],
                    paying_district=doc["district"],
                    hukou_district=doc["hukou_notice_district"],
                    grant_id=doc["_id"],
                    rule_id=doc["rule_id"],
                    amount_yuan=Decimal(entry["amount"]),
                )
            )
        fields: Doc = {"updated_at": now}
        if doc["schedule"] == Schedule.ONCE:
            fields["status"] = str(Status.PAID)
        decision = _decision(
            doc,
            officer,
            "paid",
            now,
            "",
            amount=Decimal(entry["amount"]),
            period=period,
            payment_reference=entry["payment_reference"],
        )
        await self.entitlements.change(doc["_id"], mark_paid(period, fields, decision, events))
        return created, entry

    def due_periods(self, doc: Doc) -> list[dict[str, str]]:
        """P5.2a: the months payable today and not yet paid, with their amounts (the officer's to-do)."""
        if doc["schedule"] != Schedule.MONTHLY or doc["status"] not in (Status.APPROVED, Status.STOPPED):
            return []
        end = date.fromisoformat(doc["end_on"]) if doc.get("end_on") else None
        due = []
        for period in payable_months(date.fromisoformat(doc["start_on"]), end, self.clock()):
            if period in doc["paid_periods"]:
                continue
            try:
                due.append({"period": period, "amount": as_str(self._amount_for(doc, period))})
            except DomainError:  # e.g. pro rata: the running month is not payable yet
                continue
        return due

    def _amount_for(self, doc: Doc, period: str) -> Decimal:
        if doc["schedule"] == Schedule.ONCE:
            if period != "once":
                raise DomainError(
                    "一次性救助的期间应为 once", "a one-time grant's period is `once`", field="period", status=422
                )
            return Decimal(doc["amount"])
        end = date.fromisoformat(doc["end_on"]) if doc.get("end_on") else None
        return monthly_payment(
            Decimal(doc["amount"]),
            period,
            start=date.fromisoformat(doc["start_on"]),
            end=end,
            today=self.clock(),
            policy=self.part_month_policy,
        )


def _state(doc: Doc) -> EntitlementState:
    dec = lambda v: Decimal(v) if v is not None else None  # noqa: E731
    return EntitlementState(
        status=Status(doc["status"]),
        rule_id=doc["rule_id"],
        schedule=Schedule(doc["schedule"]),
        amount_kind=AmountKind(doc["amount_kind"]),
        amount=dec(doc.get("amount")),
        cap=dec(doc.get("cap")),
        four_eyes_above=dec(doc.get("four_eyes_above")),
        signed_by=tuple(doc.get("signed_by") or ()),
        payments=int(doc.get("payments") or 0),
    )


def _common(doc: Doc, actor: str) -> Doc:
    return {
        "grant_id": doc["_id"],
        "case_id": doc["case_id"],
        "rule_id": doc["rule_id"],
        "district": doc["district"],
        "actor": actor,
    }


def _period_label(doc: Doc, on: date) -> str:
    return on.strftime("%Y-%m") if doc["schedule"] == Schedule.MONTHLY else doc["schedule"]


def _decision(doc: Doc, officer: Principal, action: str, at: datetime, note: str, **details: Any) -> Doc:
    """Who, when, which rule and which facts (P6.3)."""
    record = {
        "action": action,
        "by": officer.sub,
        "role": str(officer.role),
        "district": officer.district,
        "at": at,
        "rule_id": doc["rule_id"],
        "facts": doc["facts"],
        "note": note,
    }
    record.update({k: as_str(v) if isinstance(v, Decimal) else v for k, v in details.items() if v is not None})
    return record
