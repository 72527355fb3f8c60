"""Relief's use cases: read the state, ask the pure domain, write the change with its events through the
shared write path (`common.aggregates`, `self.entitlements`), which publishes them. Kafka handlers and
HTTP routes stay thin by calling these (the batch intake is `services.relief.intake.CaseIntake`).

Every decision appends to the entitlement's `decisions`: who, when, which rule, on which facts (P6.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from faststream.kafka import KafkaBroker

from common.aggregates import Aggregates, Entry
from common.errors import DomainError, Forbidden, NotFound
from common.kafka import publish_event
from common.principal import Principal, Role
from contracts.events import BUSINESS_TZ, utcnow
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
    Changes,
    Decision,
    Entitlement,
    OutboxEvent,
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
from services.relief.domain.parameters import RulesBook, packaged_rules
from services.relief.domain.rules import Schedule, p51_steps_followed
from services.relief.domain.runs import FundingSource
from services.relief.domain.schedule import PartMonthPolicy, monthly_payment, payable_months
from services.relief.domain.standards import Area, StandardsBook
from services.relief.intake import CaseIntake
from services.relief.records import LedgerEntry, RegistryRecord
from services.relief.store import ReliefStore

if TYPE_CHECKING:
    from services.relief.care import CareRegister

log = structlog.get_logger("relief.service")


def today() -> date:
    """Business dates are Beijing time."""
    return datetime.now(BUSINESS_TZ).date()


@dataclass
class Relief(CaseIntake):
    store: ReliefStore
    book: StandardsBook  # the shipped standards; admin-added ones are merged in from the store
    rules: RulesBook = field(default_factory=packaged_rules)  # the shipped rule parameters, likewise
    broker: KafkaBroker | None = None
    topic_namespace: str = ""  # see ServiceSettings.topic_namespace
    four_eyes_above: Decimal | None = None  # overrides the P5.2c threshold of the rule parameters when set
    part_month_policy: PartMonthPolicy = PartMonthPolicy.FULL_MONTH
    id_hash_salt: str = ""
    run_batch_size: int = 1000  # ledger inserts per batch in subsidy runs
    clock: Callable[[], date] = field(default=today)
    care: CareRegister | None = None  # the care register (P2.2, P5.3), set by app.py
    cases: Aggregates[ReliefCase] = field(init=False)
    entitlements: Aggregates[Entitlement] = field(init=False)

    def __post_init__(self) -> None:
        self.cases = cases_of(self.store.db, self.store.archive_after)
        # Without a broker (a tool, a test) the outboxes wait for a service's sweeper.
        publish = self._publish_outboxes if self.broker is not None else None
        self.entitlements = entitlements_of(self.store.db, publish, self.store.archive_after)

    async def _publish_outboxes(self, outboxes: Sequence[tuple[str, list[Entry]]]) -> None:
        """Publish entitlements' outbox entries (`Aggregates` calls this after a write, and the sweeper for
        what a failed publish left): each entitlement's in order, different entitlements concurrently.
        At least once: consumers dedupe on event_id."""
        broker = self.broker
        if broker is None:  # pragma: no cover - the write path is given no publisher then
            raise RuntimeError("no broker to publish on")

        async def in_order(entries: list[Entry]) -> None:
            for entry in entries:
                event = from_outbox(entry)
                await publish_event(broker, event, topic=f"{self.topic_namespace}{event.TOPIC}")

        await asyncio.gather(*(in_order(entries) for _, entries in outboxes if entries))

    # ------------------------------------------------------------------ officer decisions

    async def get(self, entitlement_id: str, officer: Principal) -> Entitlement:
        entitlement = await self.store.get_entitlement(entitlement_id)
        if entitlement is None:
            raise NotFound("未找到该救助事项", f"no entitlement {entitlement_id}")
        if not officer.can_see_district(entitlement.district):
            raise Forbidden("只能办理本区县的救助", "officers act only on entitlements of their own district")
        return entitlement

    async def visible_to(
        self,
        reader: Principal,
        *,
        status: str | None = None,
        rule_id: str | None = None,
        case_id: str | None = None,
        limit: int = 200,
    ) -> list[Entitlement]:
        """Entitlements of the reader's district (city level: all), newest first."""
        return await self.store.list_entitlements(
            district=district_scope(reader), status=status, rule_id=rule_id, case_id=case_id, limit=limit
        )

    async def approve(
        self,
        entitlement_id: str,
        officer: Principal,
        amount: Decimal | None,
        note: str,
        confirmed_on: date | None = None,
        contested: bool = False,
    ) -> Entitlement:
        grant = await self.get(entitlement_id, officer)
        outcome = lifecycle.approve(_state(grant), officer.sub, amount)
        now, on = utcnow(), self.clock()
        signed = [*grant.signed_by, officer.sub]
        changes: Changes = {
            "status": outcome.status,
            "signed_by": signed,
            "signed_by_shown": [*_signers_shown(grant), officer.shown_as],
            "updated_at": now,
            "amount": yuan(outcome.amount) if outcome.amount is not None else None,
        }
        if confirmed_on is not None:
            if grant.schedule != Schedule.MONTHLY:
                raise DomainError(
                    "只有按月发放的救助有确诊日期",
                    "only a monthly grant has a confirmation date",
                    field="confirmed_on",
                    status=422,
                )
            changes["start_on"] = confirmed_on
        common = _common(grant, officer.sub)
        events: list[OutboxEvent] = []
        if outcome.status is Status.PENDING_APPROVAL:
            events.append(
                GrantProposed(
                    **common,
                    amount_yuan=outcome.amount,
                    period=_period_label(grant, on),
                    reasons=tuple(grant.reasons),
                    facts=grant.facts,
                    needs_second_approval=True,
                    schedule=str(grant.schedule),
                )
            )
        else:
            changes["approved_on"] = on
            events.append(
                GrantApproved(
                    **common,
                    amount_yuan=outcome.amount or yuan(0),
                    approved_on=on,
                    approved_by=tuple(signed),
                    schedule=str(grant.schedule),
                )
            )
            if grant.schedule == Schedule.MONTHLY and grant.end_on:  # discharged before approval
                changes["status"] = Status.STOPPED
                events.append(GrantStopped(**common, reason="discharged", stopped_on=grant.end_on))
        action = "signed_pending_second_approval" if outcome.needs_second_approval else "approved"
        details: dict[str, Any] = {"amount": outcome.amount}
        if grant.checks:  # the officer signs for the intake answers the rule lacked (P6.3)
            details["verified"] = [check["field"] for check in grant.checks]
        if grant.rule_id == "P5.1":
            steps = p51_steps_followed(grant.sla_class, contested, grant.review_steps)
            details |= {"contested": contested, "steps": list(steps)}
        updated = await self._apply(grant, changes, _decision(grant, officer, action, now, note, **details), events)
        if grant.rule_id == "P5.1" and updated.status == Status.APPROVED:
            await self._enter_registry(updated, on)
        return updated

    async def _enter_registry(self, grant: Entitlement, on: date) -> None:
        """P5.1 -> P2.3: an approved dibao application enters the low-income population database, dated
        today, so this month's first-payment (or pre-holiday) run pays the allowance in the same month (P2.1)."""
        if not grant.id_card_hash:
            log.warning(
                "approved dibao recipient has no ID-card number: not entered in the registry", case_id=grant.case_id
            )
            return
        existing = await self.store.registry_by_id_hash(grant.id_card_hash)
        entered: dict[str, Any] = {
            "id_card_hash": grant.id_card_hash,
            "district": grant.district,
            "area": grant.area or (existing.area if existing else None) or str(Area.URBAN),
            "categories": sorted({*(existing.categories if existing else []), str(Category.DIBAO)}),
            "approved_on": on,
            "ended_on": None,
            "source_case_id": grant.case_id,
        }
        if existing is not None:
            record = existing.model_copy(update=entered)
        else:
            record = RegistryRecord.model_validate(
                {"_id": grant.recipient_id, "id_card_masked": "-", "name": ""} | entered
            )
        await self.store.upsert_registry([record])

    async def reject(self, entitlement_id: str, officer: Principal, reason: str) -> Entitlement:
        grant = await self.get(entitlement_id, officer)
        status = lifecycle.reject(_state(grant))
        now = utcnow()
        return await self._apply(
            grant,
            {"status": status, "updated_at": now},
            _decision(grant, officer, "rejected", now, reason),
            [GrantRejected(**_common(grant, officer.sub), reason=reason)],
        )

    async def cancel(self, entitlement_id: str, officer: Principal, reason: str) -> Entitlement:
        grant = await self.get(entitlement_id, officer)
        if await self.store.has_payments(entitlement_id):
            raise Conflict("已有发放记录，不能撤销", "payments are recorded: cannot cancel")
        status = lifecycle.cancel(_state(grant))
        now = utcnow()
        return await self._apply(
            grant,
            {"status": status, "updated_at": now},
            _decision(grant, officer, "cancelled", now, reason),
            [GrantCancelled(**_common(grant, officer.sub), reason=reason)],
        )

    async def on_cases_merged(self, event: CasesMerged) -> None:
        """A duplicate case was merged into another: its still-open proposals are cancelled so one hardship
        is not granted twice (the surviving case has its own); approved or paid grants stay with the officer."""
        system = Principal(sub="relief:case-merged", role=Role.RELIEF_OFFICER, district=None)
        reason = f"已并入案件 {event.into_case_id} | merged into case {event.into_case_id}"
        for grant in await self.store.open_entitlements_of_case(event.case_id):
            try:
                await self.cancel(grant.id, system, reason)
            except Conflict:  # changed meanwhile (e.g. approved): the officer decides
                log.info("merged case entitlement left to the officer", entitlement_id=grant.id)

    async def discharge(self, entitlement_id: str, officer: Principal, discharged_on: date, note: str) -> Entitlement:
        """P5.2a: the patient left hospital; the monthly payment stops after the discharge month."""
        grant = await self.get(entitlement_id, officer)
        status = lifecycle.discharge(_state(grant))
        if grant.start_on and discharged_on < grant.start_on:
            raise DomainError(
                "出院日期早于确诊日期",
                "the discharge date is before the confirmation date",
                field="discharged_on",
                status=422,
            )
        now = utcnow()
        events: list[OutboxEvent] = []
        if status is Status.STOPPED:
            events.append(GrantStopped(**_common(grant, officer.sub), reason="discharged", stopped_on=discharged_on))
        return await self._apply(
            grant,
            {"status": status, "end_on": discharged_on, "updated_at": now},
            _decision(grant, officer, "discharged", now, note, discharged_on=discharged_on.isoformat()),
            events,
        )

    async def _apply(
        self, grant: Entitlement, changes: Changes, decision: Decision, events: Sequence[OutboxEvent]
    ) -> Entitlement:
        """Write one decision through the write path if nobody changed the entitlement since `grant` was
        read (compare-and-set on its version: two officers acting at once, the second gets 409)."""
        written = await self.entitlements.change(grant.id, decide_on(grant.version, changes, decision, events))
        assert written is not None  # decide_on always changes (or raises)
        return written.value

    # ------------------------------------------------------------------ payments (P6.1)

    async def pay(
        self, entitlement_id: str, officer: Principal, period: str, reference: str
    ) -> tuple[bool, LedgerEntry]:
        """Record a payment once per (case, rule, period): retries and double clicks return the same entry."""
        grant = await self.get(entitlement_id, officer)
        key = ledger_key(grant, period)
        if period in grant.paid_periods:
            existing = await self.store.ledger_entry(key)
            if existing is not None:
                return False, existing
        lifecycle.check_payable(_state(grant))
        now = utcnow()
        created, entry = await self.store.append_ledger(self._ledger_entry(grant, officer, period, reference, now))
        change = self._marking_paid(grant, officer, entry, now, notify_hukou=not grant.paid_periods)
        await self.entitlements.change(grant.id, change)
        return created, entry

    async def pay_many(self, officer: Principal, payments: Sequence[PaymentOrder]) -> list[bool]:
        """Record many payments (a bank's return file) on grants already read and judged payable: one ledger
        insert, one write of the grants. Per payment, True if recorded now, False if its ledger entry was
        there already (then the grant is only marked paid, as `pay` does): nothing is paid twice."""
        now = utcnow()
        entries = [self._ledger_entry(p.grant, officer, p.period, p.reference, now) for p in payments]
        earlier = await self.store.append_ledger_batch(entries)
        marks: dict[str, list[Callable[[Entitlement | None], Entitlement | None]]] = {}
        noticed: set[str] = set()
        for order, entry, before in zip(payments, entries, earlier, strict=True):
            grant = order.grant
            first = not grant.paid_periods and grant.id not in noticed
            noticed.add(grant.id)
            change = self._marking_paid(grant, officer, before or entry, now, notify_hukou=first, **order.details)
            marks.setdefault(grant.id, []).append(change)
        outcome = await self.entitlements.change_many({gid: _in_turn(changes) for gid, changes in marks.items()})
        for error in outcome.failed.values():
            raise error
        return [before is None for before in earlier]

    def _ledger_entry(
        self, grant: Entitlement, officer: Principal, period: str, reference: str, now: datetime
    ) -> LedgerEntry:
        amount = yuan(self._amount_for(grant, period))
        return LedgerEntry(
            idempotency_key=ledger_key(grant, period),
            entitlement_id=grant.id,
            case_id=grant.case_id,
            rule_id=grant.rule_id,
            period=period,
            run_id=None,
            recipient_id=grant.recipient_id,
            district=grant.district,
            funding_source=str(FundingSource.CITY_DISTRICT_FINANCE),  # temporary assistance: city and district
            amount=amount,
            amount_fen=to_fen(amount),
            payment_reference=reference,
            recorded_by=officer.sub,
            recorded_by_shown=officer.shown_as,
            recorded_at=now,
        )

    def _marking_paid(
        self,
        grant: Entitlement,
        officer: Principal,
        entry: LedgerEntry,
        now: datetime,
        *,
        notify_hukou: bool,
        **details: Any,
    ) -> Callable[[Entitlement | None], Entitlement | None]:
        """The change that marks the entry's period paid, with grant.paid and, with a grant's first payment
        when the hukou district is elsewhere, the P5.2d notice."""
        period = entry.period
        events: list[OutboxEvent] = [
            GrantPaid(
                **_common(grant, officer.sub),
                amount_yuan=entry.amount,
                payment_reference=entry.payment_reference,
                approved_on=grant.approved_on,
                period=period,
            )
        ]
        if grant.hukou_notice_district and notify_hukou:  # P5.2d, with the first payment
            events.append(
                HukouDistrictNotified(
                    case_id=grant.case_id,
                    paying_district=grant.district,
                    hukou_district=grant.hukou_notice_district,
                    grant_id=grant.id,
                    rule_id=grant.rule_id,
                    amount_yuan=entry.amount,
                )
            )
        changes: Changes = {"updated_at": now}
        if grant.schedule == Schedule.ONCE:
            changes["status"] = Status.PAID
        note = str(details.pop("note", ""))
        decision = _decision(
            grant,
            officer,
            "paid",
            now,
            note,
            amount=entry.amount,
            period=period,
            payment_reference=entry.payment_reference,
            **details,
        )
        return mark_paid(period, changes, decision, events)

    def due_periods(self, grant: Entitlement) -> list[tuple[str, Decimal]]:
        """P5.2a: the months payable today and not yet paid, with their amounts (the officer's to-do)."""
        if grant.schedule != Schedule.MONTHLY or grant.status not in (Status.APPROVED, Status.STOPPED):
            return []
        assert grant.start_on is not None  # a monthly grant starts on the day reported, or as confirmed
        due = []
        for period in payable_months(grant.start_on, grant.end_on, self.clock()):
            if period in grant.paid_periods:
                continue
            try:
                due.append((period, yuan(self._amount_for(grant, period))))
            except DomainError:  # e.g. pro rata: the running month is not payable yet
                continue
        return due

    def _amount_for(self, grant: Entitlement, period: str) -> Decimal:
        assert grant.amount is not None  # an approved grant has its amount
        if grant.schedule == Schedule.ONCE:
            if period != "once":
                raise DomainError(
                    "一次性救助的期间应为 once", "a one-time grant's period is `once`", field="period", status=422
                )
            return grant.amount
        assert grant.start_on is not None  # a monthly grant starts on the day reported, or as confirmed
        return monthly_payment(
            grant.amount,
            period,
            start=grant.start_on,
            end=grant.end_on,
            today=self.clock(),
            policy=self.part_month_policy,
        )


@dataclass(frozen=True)
class PaymentOrder:
    """A payment to record on a grant already read (`Relief.pay_many`); `details` go into its decision."""

    grant: Entitlement
    period: str
    reference: str
    details: dict[str, Any] = field(default_factory=dict)


def ledger_key(grant: Entitlement, period: str) -> str:
    """The ledger's idempotency key of a case grant's period: one payment per (case, rule, period), ever."""
    return f"{grant.case_id}|{grant.rule_id}|{period}"


def _in_turn(
    changes: Sequence[Callable[[Entitlement | None], Entitlement | None]],
) -> Callable[[Entitlement | None], Entitlement | None]:
    """Several changes of one entitlement applied in turn (two months of one grant in one return file)."""

    def change(current: Entitlement | None) -> Entitlement | None:
        value, changed = current, False
        for one in changes:
            after = one(value)
            if after is not None:
                value, changed = after, True
        return value if changed else None

    return change


def district_scope(reader: Principal) -> str | None:
    """The district a reader sees; None at city level (every district)."""
    return None if reader.city_level else reader.district


def _state(grant: Entitlement) -> EntitlementState:
    return EntitlementState(
        status=grant.status,
        rule_id=grant.rule_id,
        schedule=grant.schedule,
        amount_kind=grant.amount_kind,
        amount=grant.amount,
        cap=grant.cap,
        four_eyes_above=grant.four_eyes_above,
        signed_by=tuple(grant.signed_by),
        payments=grant.payments,
    )


def _signers_shown(grant: Entitlement) -> list[str]:
    """How the signers so far are shown; a record signed before names were kept shows their ids."""
    if len(grant.signed_by_shown) == len(grant.signed_by):
        return list(grant.signed_by_shown)
    return list(grant.signed_by)


def _common(grant: Entitlement, actor: str) -> dict[str, Any]:
    return {
        "grant_id": grant.id,
        "case_id": grant.case_id,
        "rule_id": grant.rule_id,
        "district": grant.district,
        "actor": actor,
    }


def _period_label(grant: Entitlement, on: date) -> str:
    return on.strftime("%Y-%m") if grant.schedule == Schedule.MONTHLY else str(grant.schedule)


def _decision(grant: Entitlement, officer: Principal, action: str, at: datetime, note: str, **details: Any) -> Decision:
    """Who, when, which rule and which facts (P6.3)."""
    record: dict[str, Any] = {
        "action": action,
        "by": officer.sub,
        "shown_as": officer.shown_as,
        "role": str(officer.role),
        "district": officer.district,
        "at": at,
        "rule_id": grant.rule_id,
        "facts": grant.facts,
        "note": note,
    }
    if grant.parameters:  # the rule parameter set the proposal used (older records have none)
        record["parameters"] = grant.parameters
    record.update({k: as_str(v) if isinstance(v, Decimal) else v for k, v in details.items() if v is not None})
    return Decision.model_validate(record)
