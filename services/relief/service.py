"""Relief's use cases: read the state, ask the pure domain, write one atomic change with its events,
then publish the events. Kafka handlers and HTTP routes stay thin by calling these.

Every decision appends to the entitlement's `decisions`: who, when, which rule, on which facts (P6.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import structlog
from faststream.kafka import KafkaBroker

from common.auth import Principal
from common.consumer import PermanentError
from common.errors import DomainError, Forbidden, NotFound
from common.kafka import publish_event
from contracts.events.hotline import HelpRequested
from contracts.events.relief import (
    GrantApproved, GrantCancelled, GrantPaid, GrantProposed, GrantRejected, GrantStopped, HukouDistrictNotified,
    grant_event,
)
from contracts.events.router import CaseDispatched
from services.relief.domain import lifecycle
from services.relief.domain.facts import CaseFacts, Category, RegistryMatch
from services.relief.domain.lifecycle import Conflict, EntitlementState, Status
from services.relief.domain.money import as_str, to_fen, yuan
from services.relief.domain.registry import hash_id_card
from services.relief.domain.rules import AmountKind, Proposal, Schedule, evaluate_case
from services.relief.domain.schedule import PartMonthPolicy, monthly_payment
from services.relief.domain.standards import Area, DibaoStandard, NoStandard, StandardsBook
from services.relief.store import Doc, ReliefStore

log = structlog.get_logger("relief.service")
CHINA = timezone(timedelta(hours=8), "CST")  # business dates are Beijing time (no DST)


def utcnow() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return datetime.now(CHINA).date()


@dataclass
class Relief:
    store: ReliefStore
    book: StandardsBook  # the shipped standards; admin-added ones are merged in from the store
    broker: KafkaBroker | None = None
    four_eyes_above: Decimal = Decimal("5000.00")
    part_month_policy: PartMonthPolicy = PartMonthPolicy.FULL_MONTH
    id_hash_salt: str = ""
    clock: Any = field(default=today)

    # ------------------------------------------------------------------ intake of cases

    async def on_help_requested(self, event: HelpRequested) -> None:
        part = {
            "needs": list(event.needs), "place_district": event.place.district,
            "hukou_district": event.caller.hukou_district, "household_status": str(event.household_status),
            "special_groups": [str(g) for g in event.special_groups],
            "months_without_income": event.months_without_income,
            "reported_on": event.received_at.astimezone(CHINA).date().isoformat(),
            "id_card_hash": hash_id_card(event.caller.id_card, self.id_hash_salt) if event.caller.id_card else None,
            "event_id": str(event.event_id),
        }
        await self._evaluate(await self.store.merge_case(event.case_id, "help", part))

    async def on_dispatched(self, event: CaseDispatched) -> None:
        part = {"district": event.district, "needs": list(event.needs), "lead": event.lead.model_dump(),
                "sla_class": event.sla_class, "event_id": str(event.event_id)}
        await self._evaluate(await self.store.merge_case(event.case_id, "dispatch", part))

    async def standards_book(self) -> StandardsBook:
        fields = DibaoStandard.model_fields
        added = [DibaoStandard.model_validate({k: v for k, v in d.items() if k in fields})
                 for d in await self.store.added_standards()]
        return self.book.with_added(added) if added else self.book

    async def _evaluate(self, case: Doc) -> None:
        """Once both the help request and the dispatch are known, propose what the rules say (once)."""
        help_, dispatch = case.get("help"), case.get("dispatch")
        if not help_ or not dispatch:
            return
        registry = None
        if help_.get("id_card_hash") and (rec := await self.store.registry_by_id_hash(help_["id_card_hash"])):
            registry = RegistryMatch(rec["_id"], frozenset(Category(c) for c in rec["categories"]), rec["district"],
                                     Area(rec["area"]), active=not rec.get("ended_on"))
        facts = CaseFacts(
            case_id=case["_id"], needs=tuple(dispatch["needs"] or help_["needs"]), place_district=dispatch["district"],
            reported_on=date.fromisoformat(help_["reported_on"]), household_status=help_["household_status"],
            special_groups=frozenset(help_["special_groups"]), months_without_income=help_["months_without_income"],
            hukou_district=help_["hukou_district"], registry=registry)
        try:
            proposals = evaluate_case(facts, await self.standards_book())
        except NoStandard as exc:  # a data gap the deployer must fix; the DLQ keeps the message
            raise PermanentError(str(exc)) from exc
        recipient = registry.recipient_id if registry else (
            f"H-{help_['id_card_hash'][:16]}" if help_.get("id_card_hash") else f"C-{case['_id']}")
        for proposal in proposals:
            doc = self._entitlement_doc(case["_id"], proposal, recipient, help_.get("id_card_hash"))
            if await self.store.insert_entitlement(doc):
                log.info("entitlement proposed", case_id=case["_id"], rule_id=proposal.rule_id,
                         eligible=proposal.eligible)
            await self.flush(doc["_id"])
        await self.store.mark_case_evaluated(case["_id"], {"at": utcnow(), "rules": [p.rule_id for p in proposals]})

    def _entitlement_doc(self, case_id: str, p: Proposal, recipient_id: str, id_hash: str | None) -> Doc:
        eid = f"{case_id}:{p.rule_id}"
        now = utcnow()
        four_eyes = self.four_eyes_above if p.amount_kind is AmountKind.CASE_BY_CASE else None
        status = Status.PROPOSED if p.eligible else Status.REJECTED
        common = {"grant_id": eid, "case_id": case_id, "rule_id": p.rule_id, "district": p.payer_district}
        if p.eligible:
            event: Any = GrantProposed(
                **common, amount_yuan=p.amount or p.cap or yuan(0),
                period=self.clock().strftime("%Y-%m") if p.schedule is Schedule.MONTHLY else str(p.schedule),
                reasons=p.reasons, facts=p.facts, schedule=str(p.schedule), cap_yuan=p.cap,
                amount_to_be_decided=p.amount_kind in (AmountKind.CAPPED, AmountKind.CASE_BY_CASE),
                to_verify=p.to_verify, sla_class=p.sla_class, review_steps=p.review_steps)
        else:
            event = GrantRejected(**common, reason="; ".join(p.reasons))
        return {
            "_id": eid, "case_id": case_id, "rule_id": p.rule_id, "need": p.need, "provisions": list(p.provisions),
            "status": str(status), "schedule": str(p.schedule), "amount_kind": str(p.amount_kind),
            "amount": as_str(p.amount) if p.amount is not None else None,
            "cap": as_str(p.cap) if p.cap is not None else None,
            "four_eyes_above": as_str(four_eyes) if four_eyes is not None else None,
            "district": p.payer_district, "hukou_notice_district": p.hukou_notice_district,
            "recipient_id": recipient_id, "id_card_hash": id_hash, "area": str(p.area) if p.area else None,
            "reasons": list(p.reasons), "to_verify": list(p.to_verify), "facts": p.facts,
            "sla_class": p.sla_class, "review_steps": list(p.review_steps),
            "start_on": p.facts.get("reported_on"), "end_on": None, "signed_by": [], "paid_periods": [],
            "payments": 0, "version": 1, "created_at": now, "updated_at": now,
            "decisions": [{"action": "proposed" if p.eligible else "rejected_by_rule", "by": f"rule:{p.rule_id}",
                           "at": now, "rule_id": p.rule_id, "facts": p.facts, "reasons": list(p.reasons)}],
            "outbox": [_outbox(event)],
        }

    # ------------------------------------------------------------------ officer decisions

    async def get(self, entitlement_id: str, officer: Principal) -> Doc:
        doc = await self.store.get_entitlement(entitlement_id)
        if doc is None:
            raise NotFound("未找到该救助事项", f"no entitlement {entitlement_id}")
        if not officer.can_see_district(doc["district"]):
            raise Forbidden("只能办理本区县的救助", "officers act only on entitlements of their own district")
        return doc

    async def approve(self, entitlement_id: str, officer: Principal, amount: Decimal | None, note: str,
                      confirmed_on: date | None = None) -> Doc:
        doc = await self.get(entitlement_id, officer)
        outcome = lifecycle.approve(_state(doc), officer.sub, amount)
        now, on = utcnow(), self.clock()
        signed = [*doc["signed_by"], officer.sub]
        fields: Doc = {"status": str(outcome.status), "signed_by": signed, "updated_at": now,
                       "amount": as_str(outcome.amount) if outcome.amount is not None else None}
        if confirmed_on is not None:
            if doc["schedule"] != Schedule.MONTHLY:
                raise DomainError("只有按月发放的救助有确诊日期", "only a monthly grant has a confirmation date",
                                  field="confirmed_on", status=422)
            fields["start_on"] = confirmed_on.isoformat()
        common = _common(doc, officer.sub)
        events: list[Any] = []
        if outcome.status is Status.PENDING_APPROVAL:
            events.append(GrantProposed(**common, amount_yuan=outcome.amount, period=_period_label(doc, on),
                                        reasons=tuple(doc["reasons"]), facts=doc["facts"], needs_second_approval=True,
                                        schedule=doc["schedule"]))
        else:
            fields["approved_on"] = on.isoformat()
            events.append(GrantApproved(**common, amount_yuan=outcome.amount or yuan(0), approved_on=on,
                                        approved_by=tuple(signed), schedule=doc["schedule"]))
            if doc["schedule"] == Schedule.MONTHLY and doc.get("end_on"):  # discharged before approval
                fields["status"] = str(Status.STOPPED)
                events.append(GrantStopped(**common, reason="discharged", stopped_on=date.fromisoformat(doc["end_on"])))
        action = "signed_pending_second_approval" if outcome.needs_second_approval else "approved"
        return await self._apply(doc, fields, _decision(doc, officer, action, now, note, amount=outcome.amount), events)

    async def reject(self, entitlement_id: str, officer: Principal, reason: str) -> Doc:
        doc = await self.get(entitlement_id, officer)
        status = lifecycle.reject(_state(doc))
        now = utcnow()
        return await self._apply(doc, {"status": str(status), "updated_at": now},
                                 _decision(doc, officer, "rejected", now, reason),
                                 [GrantRejected(**_common(doc, officer.sub), reason=reason)])

    async def cancel(self, entitlement_id: str, officer: Principal, reason: str) -> Doc:
        doc = await self.get(entitlement_id, officer)
        if await self.store.ledger_count({"entitlement_id": entitlement_id}):
            raise Conflict("已有发放记录，不能撤销", "payments are recorded: cannot cancel")
        status = lifecycle.cancel(_state(doc))
        now = utcnow()
        return await self._apply(doc, {"status": str(status), "updated_at": now},
                                 _decision(doc, officer, "cancelled", now, reason),
                                 [GrantCancelled(**_common(doc, officer.sub), reason=reason)])

    async def discharge(self, entitlement_id: str, officer: Principal, discharged_on: date, note: str) -> Doc:
        """P5.2a: the patient left hospital; the monthly payment stops after the discharge month."""
        doc = await self.get(entitlement_id, officer)
        status = lifecycle.discharge(_state(doc))
        if doc.get("start_on") and discharged_on < date.fromisoformat(doc["start_on"]):
            raise DomainError("出院日期早于确诊日期", "the discharge date is before the confirmation date",
                              field="discharged_on", status=422)
        now = utcnow()
        events = []
        if status is Status.STOPPED:
            events.append(GrantStopped(**_common(doc, officer.sub), reason="discharged", stopped_on=discharged_on))
        return await self._apply(doc, {"status": str(status), "end_on": discharged_on.isoformat(), "updated_at": now},
                                 _decision(doc, officer, "discharged", now, note, discharged_on=discharged_on.isoformat()),
                                 events)

    async def _apply(self, doc: Doc, fields: Doc, decision: Doc, events: list[Any]) -> Doc:
        updated = await self.store.update_entitlement(doc["_id"], doc["version"], fields, decision=decision,
                                                      events=[_outbox(e) for e in events])
        if updated is None:
            raise Conflict("该事项刚被他人处理，请刷新后重试", "someone else changed this entitlement: reload and retry",
                           code="concurrent_change")
        await self.flush(doc["_id"])
        return updated

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
        entry = {"idempotency_key": key, "entitlement_id": doc["_id"], "case_id": doc["case_id"],
                 "rule_id": doc["rule_id"], "period": period, "run_id": None, "recipient_id": doc["recipient_id"],
                 "district": doc["district"], "amount": as_str(amount), "amount_fen": to_fen(amount),
                 "payment_reference": reference, "recorded_by": officer.sub, "recorded_at": now}
        created, entry = await self.store.append_ledger(entry)
        common = _common(doc, officer.sub)
        approved_on = date.fromisoformat(doc["approved_on"]) if doc.get("approved_on") else None
        events: list[Any] = [GrantPaid(**common, amount_yuan=Decimal(entry["amount"]),
                                       payment_reference=entry["payment_reference"], approved_on=approved_on,
                                       period=period)]
        if doc.get("hukou_notice_district") and not doc["paid_periods"]:  # P5.2d, with the first payment
            events.append(HukouDistrictNotified(case_id=doc["case_id"], paying_district=doc["district"],
                                                hukou_district=doc["hukou_notice_district"], grant_id=doc["_id"],
                                                rule_id=doc["rule_id"], amount_yuan=Decimal(entry["amount"])))
        fields: Doc = {"updated_at": now}
        if doc["schedule"] == Schedule.ONCE:
            fields["status"] = str(Status.PAID)
        decision = _decision(doc, officer, "paid", now, "", amount=Decimal(entry["amount"]), period=period,
                             payment_reference=entry["payment_reference"])
        await self.store.record_period_paid(doc["_id"], period, fields, decision, [_outbox(e) for e in events])
        await self.flush(doc["_id"])
        return created, entry

    def _amount_for(self, doc: Doc, period: str) -> Decimal:
        if doc["schedule"] == Schedule.ONCE:
            if period != "once":
                raise DomainError("一次性救助的期间应为 once", "a one-time grant's period is `once`",
                                  field="period", status=422)
            return Decimal(doc["amount"])
        end = date.fromisoformat(doc["end_on"]) if doc.get("end_on") else None
        return monthly_payment(Decimal(doc["amount"]), period, start=date.fromisoformat(doc["start_on"]), end=end,
                               today=self.clock(), policy=self.part_month_policy)

    # ------------------------------------------------------------------ the event outbox

    async def flush(self, entitlement_id: str, older_than: datetime | None = None) -> int:
        """Publish the entitlement's pending events, removing each once the broker acknowledged it.

        At least once: should two flushes overlap, an event is published twice with the same event_id,
        which consumers dedupe on."""
        if self.broker is None:
            return 0
        sent = 0
        for item in await self.store.outbox_of(entitlement_id):
            if older_than is not None and item["queued_at"] > older_than:
                continue  # just written: the request that wrote it is publishing it
            event = _from_outbox(item)
            try:
                await publish_event(self.broker, event)
            except Exception as exc:  # noqa: BLE001 - Kafka down: the relay publishes it later
                log.warning("event publish deferred to the outbox relay", error=repr(exc), event_id=item["event_id"])
                return sent
            await self.store.remove_from_outbox(entitlement_id, item)
            sent += 1
        return sent

    async def relay_outbox(self, min_age_s: float = 5.0) -> int:
        """Publish events left in outboxes (their first publish failed, e.g. Kafka was down)."""
        sent, cutoff = 0, utcnow() - timedelta(seconds=min_age_s)
        for doc in await self.store.with_outbox():
            sent += await self.flush(doc["_id"], older_than=cutoff)
        return sent


def _outbox(event: Any) -> Doc:
    kind = "hukou" if isinstance(event, HukouDistrictNotified) else "grant"
    return {"event_id": str(event.event_id), "kind": kind, "queued_at": utcnow(), "body": event.model_dump(mode="json")}


def _from_outbox(item: Doc) -> Any:
    if item["kind"] == "hukou":
        return HukouDistrictNotified.model_validate(item["body"])
    return grant_event.validate_python(item["body"])


def _state(doc: Doc) -> EntitlementState:
    dec = lambda v: Decimal(v) if v is not None else None  # noqa: E731
    return EntitlementState(
        status=Status(doc["status"]), rule_id=doc["rule_id"], schedule=Schedule(doc["schedule"]),
        amount_kind=AmountKind(doc["amount_kind"]), amount=dec(doc.get("amount")), cap=dec(doc.get("cap")),
        four_eyes_above=dec(doc.get("four_eyes_above")), signed_by=tuple(doc.get("signed_by") or ()),
        payments=int(doc.get("payments") or 0))


def _common(doc: Doc, actor: str) -> Doc:
    return {"grant_id": doc["_id"], "case_id": doc["case_id"], "rule_id": doc["rule_id"], "district": doc["district"],
            "actor": actor}


def _period_label(doc: Doc, on: date) -> str:
    return on.strftime("%Y-%m") if doc["schedule"] == Schedule.MONTHLY else doc["schedule"]


def _decision(doc: Doc, officer: Principal, action: str, at: datetime, note: str, **details: Any) -> Doc:
    """Who, when, which rule and which facts (P6.3)."""
    record = {"action": action, "by": officer.sub, "role": str(officer.role), "district": officer.district,
              "at": at, "rule_id": doc["rule_id"], "facts": doc["facts"], "note": note}
    record.update({k: as_str(v) if isinstance(v, Decimal) else v for k, v in details.items() if v is not None})
    return record
