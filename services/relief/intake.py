"""Case intake: the help request brings the caller's facts, the dispatch the paying district; once both
are known the rules propose (once per case and rule) and the proposals' events go out."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from decimal import Decimal
from typing import Any

import structlog

from common.consumer import PermanentError
from contracts.events.hotline import HelpRequested
from contracts.events.relief import GrantProposed, GrantRejected
from contracts.events.router import CaseDispatched
from services.relief.domain.facts import CaseFacts, Category, RegistryMatch
from services.relief.domain.lifecycle import Status
from services.relief.domain.money import as_str, yuan
from services.relief.domain.registry import hash_id_card
from services.relief.domain.rules import AmountKind, Proposal, Schedule, evaluate_case
from services.relief.domain.standards import Area, DibaoStandard, NoStandard, StandardsBook
from services.relief.outbox import Outbox, outbox_item, utcnow
from services.relief.store import Doc

log = structlog.get_logger("relief.intake")
CHINA = timezone(timedelta(hours=8), "CST")  # business dates are Beijing time (no DST)


class CaseIntake(Outbox):
    book: StandardsBook
    id_hash_salt: str
    four_eyes_above: Decimal
    clock: Any

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
                period=p.facts["reported_on"][:7] if p.schedule is Schedule.MONTHLY else str(p.schedule),
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
            "outbox": [outbox_item(event)],
        }

