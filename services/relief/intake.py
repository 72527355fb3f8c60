"""Case intake, a batch of events at a time: the help request brings the caller's facts, the dispatch the
paying district; once both are known the rules propose (once per case and rule) and the proposals'
events go out.

Everything is written through the shared write path (`common.aggregates`), in a bounded number of store
round trips per batch whatever its size (`take`):

1. one read of the batch's cases (through the write path: those this process wrote lately come from its
   memory; those opened by their help request in this batch are not read), to see which will have both
   parts once the batch's are merged;
2. for those, one `$in` read of the registry by ID-card hash and one read of the added standards; the rules
   (`domain.rules.evaluate_case`, pure) evaluate each case;
3. one `entitlements.change_many` creates every proposal (create-only: a redelivered event, or a second
   consumer handling the same records, proposes nothing twice) and publishes their events;
4. one `cases.change_many` merges every case's parts, in the order its records came, and records the
   evaluation in the same write. The entitlements are created first, so a crash in between leaves a case
   that is evaluated again when its records are redelivered (the evaluation record is no guard).

A case that another process changed between 1 and 4 (its two parts consumed by two consumers at once) is
evaluated again on what was written, and only then is its evaluation recorded (a second, rare, write).
A case whose reported day has no dibao standard in force is a data gap: its records are returned as
rejected (dead-lettered with the error), the rest of the batch goes on. Merges (`case.merged`, rare)
are handled one by one after the batch's proposals, through the same write path (`Relief.on_cases_merged`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Literal, TypeVar

import structlog

from common.aggregates import Aggregates
from common.consumer import PermanentError
from contracts.events import BUSINESS_TZ, utcnow
from contracts.events.hotline import HelpRequested
from contracts.events.relief import GrantProposed, GrantRejected
from contracts.events.router import CaseDispatched, CasesMerged
from services.relief.documents import (
    Decision,
    DispatchPart,
    Entitlement,
    Evaluation,
    HelpPart,
    OutboxEvent,
    ReliefCase,
    create_only,
    outbox_item,
)
from services.relief.domain.facts import CaseFacts, Category, RegistryMatch
from services.relief.domain.lifecycle import Status
from services.relief.domain.money import yuan
from services.relief.domain.parameters import NoParameters, RulesBook
from services.relief.domain.personal import mask_phone
from services.relief.domain.registry import hash_id_card, mask_id_card
from services.relief.domain.rules import AmountKind, Proposal, Schedule, evaluate_case
from services.relief.domain.standards import Area, NoStandard, StandardsBook
from services.relief.records import Applicant, RegistryRecord
from services.relief.store import ReliefStore

log = structlog.get_logger("relief.intake")
T = TypeVar("T")  # what the caller tags each event with (its Kafka record)
IntakeEvent = HelpRequested | CaseDispatched | CasesMerged
Part = tuple[Literal["help"], HelpPart] | tuple[Literal["dispatch"], DispatchPart]


class CaseIntake:
    store: ReliefStore
    book: StandardsBook
    rules: RulesBook
    id_hash_salt: str
    four_eyes_above: Decimal | None  # a deployer's override of the P5.2c threshold of the rule parameters
    clock: Callable[[], date]
    cases: Aggregates[ReliefCase]
    entitlements: Aggregates[Entitlement]

    async def on_cases_merged(self, event: CasesMerged) -> None:  # pragma: no cover - Relief defines it
        raise NotImplementedError

    # ------------------------------------------------------------------ one event (tests, tools)

    async def on_help_requested(self, event: HelpRequested) -> None:
        await self._take_one(event)

    async def on_dispatched(self, event: CaseDispatched) -> None:
        await self._take_one(event)

    async def _take_one(self, event: IntakeEvent) -> None:
        for _, error in await self.take([(None, event)]):
            raise PermanentError(str(error)) from error

    # ------------------------------------------------------------------ a batch

    async def take(self, events: Sequence[tuple[T, IntakeEvent]]) -> list[tuple[T, Exception]]:
        """Take a batch of events (each tagged, e.g. with its Kafka record), in their order per case; returns
        the tagged events to reject (a data gap in the standards), each with its error (module docstring)."""
        parts: dict[str, list[Part]] = {}
        tags: dict[str, list[T]] = {}
        merges: list[CasesMerged] = []
        callers: dict[str, HelpRequested] = {}
        for tag, event in events:
            if isinstance(event, CasesMerged):
                merges.append(event)
                continue
            if isinstance(event, HelpRequested):
                callers[event.case_id] = event
            part: Part = (
                ("help", self._help_part(event))
                if isinstance(event, HelpRequested)
                else ("dispatch", _dispatch_part(event))
            )
            parts.setdefault(event.case_id, []).append(part)
            tags.setdefault(event.case_id, []).append(tag)
        refused: dict[str, Exception] = {}
        if parts:
            # A case whose help request is here is new (its redelivery, which finds the case there after
            # all, is read and merged alone by the write path): not read. A batch of two topics need not
            # hold a case's help request before its dispatch, so it is any of its records here.
            opened = {case_id for case_id, case_parts in parts.items() if any(kind == "help" for kind, _ in case_parts)}
            stored = await self.cases.current(list(parts), new=opened)
            expected = {
                case_id: _merged(stored.get(case_id) or ReliefCase(id=case_id), case_parts)
                for case_id, case_parts in parts.items()
            }
            # Who each new case's grants pay, before the grants appear (one insert; a redelivery's refused).
            await self.store.add_applicants(
                [
                    applicant_of(event, self.id_hash_salt)
                    for case_id, event in callers.items()
                    if (known := stored.get(case_id)) is None or known.help is None
                ]
            )
            evaluations = await self._evaluate([case for case in expected.values() if case.ready], refused)
            written: dict[str, ReliefCase] = {}

            def merge(case_id: str) -> Callable[[ReliefCase | None], ReliefCase | None]:
                def change(current: ReliefCase | None) -> ReliefCase | None:
                    case = _merged(current or ReliefCase(id=case_id), parts[case_id])
                    ours = expected[case_id]
                    if (case.help, case.dispatch) == (ours.help, ours.dispatch) and case_id in evaluations:
                        case = _with_evaluation(case, evaluations[case_id])
                    written[case_id] = case
                    return case if current is None or case != current else None

                return change

            await self.cases.change_many({case_id: merge(case_id) for case_id in parts}, new=opened)
            # Changed meanwhile by another consumer (e.g. it took the other part): evaluate what was written.
            late = [
                case
                for case_id, case in written.items()
                if case.ready and (case.help, case.dispatch) != (expected[case_id].help, expected[case_id].dispatch)
            ]
            if late:
                again = await self._evaluate(late, refused)
                await self.cases.change_many({case_id: _recording(evaluation) for case_id, evaluation in again.items()})
        for event in merges:
            await self.on_cases_merged(event)
        return [
            (tag, refused[case_id]) for case_id, case_tags in tags.items() if case_id in refused for tag in case_tags
        ]

    def _help_part(self, event: HelpRequested) -> HelpPart:
        return HelpPart(
            needs=list(event.needs),
            place_district=event.place.district,
            hukou_district=event.caller.hukou_district,
            household_status=str(event.household_status),
            special_groups=[str(g) for g in event.special_groups],
            months_without_income=event.months_without_income,
            reported_on=event.received_at.astimezone(BUSINESS_TZ).date(),
            id_card_hash=hash_id_card(event.caller.id_card, self.id_hash_salt) if event.caller.id_card else None,
            emergency=event.emergency,
            emergency_reasons=list(event.emergency_reasons),
            event_id=str(event.event_id),
            attributes=dict(event.attributes),
        )

    async def dated_data(self, *, cached: bool = False) -> tuple[StandardsBook, RulesBook]:
        """The shipped dibao standards and rule parameters with those an admin added (one read, or none when
        `cached` and the last is recent: `ReliefStore.added_dated_data`)."""
        standards, parameters = await self.store.added_dated_data(cached=cached)
        book = self.book.with_added(standards) if standards else self.book
        rules = self.rules.with_added(parameters) if parameters else self.rules
        return book, rules

    async def standards_book(self) -> StandardsBook:
        """The shipped standards with those an admin added."""
        added = await self.store.added_standards()
        return self.book.with_added(added) if added else self.book

    async def _evaluate(self, cases: Sequence[ReliefCase], refused: dict[str, Exception]) -> dict[str, list[str]]:
        """Evaluate cases with both parts and create their entitlements (one registry read, one standards read,
        one `change_many`); the rules each case was evaluated by. A case without a standard goes to `refused`."""
        if not cases:
            return {}
        hashes = sorted({case.help.id_card_hash for case in cases if case.help and case.help.id_card_hash})
        registry = await self.store.registry_by_id_hashes(hashes) if hashes else {}
        book, rules = await self.dated_data(cached=True)
        created: dict[str, Entitlement] = {}
        evaluations: dict[str, list[str]] = {}
        for case in cases:
            help_, dispatch = case.help, case.dispatch
            assert help_ is not None and dispatch is not None  # only ready cases are evaluated
            rec = registry.get(help_.id_card_hash or "")
            match = _registry_match(rec) if rec else None
            facts = CaseFacts(
                case_id=case.id,
                needs=tuple(dispatch.needs or help_.needs),
                place_district=dispatch.district,
                reported_on=help_.reported_on,
                household_status=help_.household_status,
                special_groups=frozenset(help_.special_groups),
                months_without_income=help_.months_without_income,
                hukou_district=help_.hukou_district,
                registry=match,
                answers=help_.attributes,
            )
            try:
                proposals = evaluate_case(facts, book, rules)
            except (NoStandard, NoParameters) as exc:  # a data gap the deployer must fix; the DLQ keeps the records
                log.error("no standard or rule parameters in force: dead-lettered", case_id=case.id, error=str(exc))
                refused[case.id] = exc
                continue
            recipient = (
                match.recipient_id
                if match
                else (f"H-{help_.id_card_hash[:16]}" if help_.id_card_hash else f"C-{case.id}")
            )
            for proposal in proposals:
                entitlement = self._entitlement(case, proposal, recipient, help_.id_card_hash)
                created[entitlement.id] = entitlement
            evaluations[case.id] = [p.rule_id for p in proposals]
        # Keyed by the case (`<case id>:<rule>`) and made by its first evaluation: inserted without a read (one
        # there after all, a redelivery, is refused and read alone; one the archive may hold is read as usual).
        outcome = await self.entitlements.change_many(
            {eid: create_only(e) for eid, e in created.items()}, new=list(created)
        )
        for failure in outcome.failed.values():  # pragma: no cover - create_only raises nothing
            raise failure
        if outcome.written:
            proposed = sum(w.value.status == Status.PROPOSED for w in outcome.written.values())
            log.info(
                "entitlements created",
                cases=len({w.value.case_id for w in outcome.written.values()}),
                proposed=proposed,
                rejected_by_rule=len(outcome.written) - proposed,
            )
        return evaluations

    def _entitlement(self, case: ReliefCase, p: Proposal, recipient_id: str, id_hash: str | None) -> Entitlement:
        case_id = case.id
        eid = f"{case_id}:{p.rule_id}"
        now = utcnow()
        four_eyes = None
        if p.amount_kind is AmountKind.CASE_BY_CASE:
            four_eyes = self.four_eyes_above if self.four_eyes_above is not None else p.four_eyes_above
        status = Status.PROPOSED if p.eligible else Status.REJECTED
        common = {"grant_id": eid, "case_id": case_id, "rule_id": p.rule_id, "district": p.payer_district}
        event: OutboxEvent
        if p.eligible:
            event = GrantProposed(
                **common,
                amount_yuan=p.amount or p.cap or yuan(0),
                period=p.facts["reported_on"][:7] if p.schedule is Schedule.MONTHLY else str(p.schedule),
                reasons=p.reasons,
                facts=p.facts,
                schedule=str(p.schedule),
                cap_yuan=p.cap,
                amount_to_be_decided=p.amount_kind in (AmountKind.CAPPED, AmountKind.CASE_BY_CASE),
                to_verify=p.to_verify,
                sla_class=p.sla_class,
                review_steps=p.review_steps,
            )
        else:
            event = GrantRejected(**common, reason="; ".join(p.reasons))
        return Entitlement(
            id=eid,
            case_id=case_id,
            rule_id=p.rule_id,
            need=p.need,
            provisions=list(p.provisions),
            status=status,
            schedule=p.schedule,
            amount_kind=p.amount_kind,
            amount=yuan(p.amount) if p.amount is not None else None,
            cap=yuan(p.cap) if p.cap is not None else None,
            four_eyes_above=yuan(four_eyes) if four_eyes is not None else None,
            district=p.payer_district,
            hukou_notice_district=p.hukou_notice_district,
            recipient_id=recipient_id,
            id_card_hash=id_hash,
            area=str(p.area) if p.area else None,
            reasons=list(p.reasons),
            to_verify=list(p.to_verify),
            facts=p.facts,
            sla_class=p.sla_class,
            review_steps=list(p.review_steps),
            checks=[c.as_record() for c in p.checks],
            parameters=p.parameters,
            payer_basis=p.payer_basis,
            start_on=p.facts.get("reported_on"),
            emergency=case.emergency,
            emergency_reasons=case.emergency_reasons,
            created_at=now,
            updated_at=now,
            decisions=[
                Decision(
                    action="proposed" if p.eligible else "rejected_by_rule",
                    by=f"rule:{p.rule_id}",
                    at=now,
                    rule_id=p.rule_id,
                    facts=p.facts,
                    reasons=list(p.reasons),
                    parameters=p.parameters,
                )
            ],
            outbox=[outbox_item(event)],
        )


def applicant_of(event: HelpRequested, salt: str) -> Applicant:
    """The caller of a help request as relief keeps them (`records.Applicant`)."""
    caller = event.caller
    id_card = caller.id_card.strip().upper() if caller.id_card else None
    return Applicant.model_validate(
        {
            "_id": event.case_id,
            "name": caller.name,
            "id_card": id_card,
            "id_card_masked": mask_id_card(id_card) if id_card else None,
            "id_card_hash": hash_id_card(id_card, salt) if id_card else None,
            "phone": caller.phone,
            "phone_masked": mask_phone(caller.phone) if caller.phone else None,
            "hukou_district": caller.hukou_district,
            "household_status": str(event.household_status),
            "special_groups": [str(g) for g in event.special_groups],
            "place_district": event.place.district,
            "event_id": str(event.event_id),
            "recorded_at": utcnow(),
        }
    )


def _registry_match(rec: RegistryRecord) -> RegistryMatch:
    return RegistryMatch(
        rec.id,
        frozenset(Category(c) for c in rec.categories),
        rec.district,
        Area(rec.area),
        active=not rec.ended_on,
    )


def _dispatch_part(event: CaseDispatched) -> DispatchPart:
    return DispatchPart(
        district=event.district,
        needs=list(event.needs),
        lead=event.lead.model_dump(),
        sla_class=event.sla_class,
        emergency=event.emergency,
        event_id=str(event.event_id),
    )


def _merged(case: ReliefCase, parts: Sequence[Part]) -> ReliefCase:
    for part in parts:  # in the order the records came: a later part of the same kind wins
        match part:
            case ("help", HelpPart() as help_):
                case = case.model_copy(update={"help": help_})
            case ("dispatch", DispatchPart() as dispatch):
                case = case.model_copy(update={"dispatch": dispatch})
    return case


def _with_evaluation(case: ReliefCase, rules: list[str]) -> ReliefCase:
    """Record the evaluation, unless the same rules are recorded already (a redelivery writes nothing)."""
    if case.evaluation is not None and case.evaluation.rules == rules:
        return case
    return case.model_copy(update={"evaluation": Evaluation(at=utcnow(), rules=rules)})


def _recording(rules: list[str]) -> Callable[[ReliefCase | None], ReliefCase | None]:
    def change(current: ReliefCase | None) -> ReliefCase | None:
        if current is None:
            return None
        case = _with_evaluation(current, rules)
        return case if case != current else None

    return change
