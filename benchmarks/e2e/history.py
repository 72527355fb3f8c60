"""The history: earlier cases in every service's store, as the services would have written them.

Each case is a call some days ago that was dispatched, signed for and resolved: the hotline's triage and
intake record, the router's routing, desk steps and archiving (resolved long ago, so in `cases_archive`),
relief's case intake and entitlements, decided by its officers a day or two later (approved and paid, or
rejected) with the payments in its ledger, notify's clocks; every service sees the events the others
published. The documents come from each service's own store and domain code, in memory
(`captured.py`), and go to the store with `insert_many`. Kept between runs in databases named after
the history's size (`E2eBench.history_database`), marked complete at the end, reused when complete.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pydantic_core
from pymongo import AsyncMongoClient

from benchmarks.e2e import captured
from benchmarks.e2e.settings import SERVICES, E2eBench
from common.aggregates import FINISHED, finished_day, matches, pack_entries
from common.principal import Principal, Role
from contracts.events import CASE_EVENTS_TOPIC, read_event
from contracts.events.hotline import CallbackRecorded, Caller, HelpRequested, Place
from contracts.events.relief import grant_event
from contracts.events.router import CaseDispatched, case_lifecycle_event
from services.hotline.callers import SLOTS_PER_CHUNK, slot_id
from services.hotline.domain import case_day, format_case_number, project_status, triage
from services.hotline.domain.search import search_entry
from services.hotline.search_index import BACKFILL_MARK
from services.hotline.settings import Settings as HotlineSettings
from services.hotline.store import EVENTS_PACKED, HotlineStore, kept_event
from services.notify.store import FINISHED as NOTIFY_FINISHED
from services.relief.documents import CASE_FINISHED, ENTITLEMENT_FINISHED, Entitlement
from services.relief.domain.facts import Category
from services.relief.domain.lifecycle import Status
from services.relief.domain.rules import AmountKind, Schedule
from services.relief.domain.runs import RunKind, RunSpec, run_id_for
from services.relief.domain.standards import Area
from services.relief.service import Relief
from services.relief.subsidies import _close_dibao_grant
from services.router.app import catalogue_of
from services.router.domain import desk
from services.router.domain.dispatching import mark_queued, open_case
from services.router.domain.routing import RoutingFacts, decide
from services.router.settings import Settings as RouterSettings

MARKER = "bench_history"  # collection holding {"_id": "complete", "cases": n, "layout": L} once the load finished
# Raised when the services' documents change where they live (a history of an older layout is built again):
# 2 has finished cases in every service's archive (`placing`), with the hotline's search entries and callbacks.
# 3 has notify's contacts as the store keeps them (consent), those of archived cases in `contacts_archive`.
# 4 has relief's grants decided by its officers (`HistoryBuilder.decide`) with their payments in `ledger`, and
#   relief's records and events at the history's times rather than at the time of the load.
# 5 has every document stamped as the write path stamps it for the archiver (`common.aggregates.FINISHED`).
# 6 has the hotline's search entries with their texts in one index (`search_index.RETIRED`).
LAYOUT = 6
CHUNK = 1000
NEEDS = [
    ["temp_assist_major"],
    ["dibao_application"],
    ["medical_aid"],
    ["special_group_visit"],
    ["other"],
    ["homeless_cold"],
    ["dibao_application", "medical_aid"],
]
DISTRICTS = ["500103", "500105", "500106", "500112", "500108"]
# Relief officers' decisions on the proposals: one in REJECTED_EVERY rejected, the others approved (a
# second officer signing what is above the four-eyes threshold, P5.2c) and paid.
OFFICER, REVIEWER, COORDINATOR = "history-officer", "history-reviewer", "history-coordinator"
REJECTED_EVERY = 5
REJECTION = "经核查，家庭经济状况不符合救助条件 | on checking, the household's means are above the conditions"
# What an officer sets where the rule leaves the amount to them; the last is above P5.2c's threshold.
AMOUNTS = (Decimal("1500.00"), Decimal("3000.00"), Decimal("4500.00"), Decimal("8000.00"))
Doc = dict[str, Any]


def history_request(i: int, at: datetime, case_id: str) -> HelpRequested:
    needs = NEEDS[i % len(NEEDS)]
    description = "家庭困难，需要帮助。" * 3
    verdict = triage(needs, description, False)
    return HelpRequested(
        case_id=case_id,
        correlation_id=case_id,
        received_at=at,
        channel="phone",
        operator_id="history-operator",
        caller=Caller(name=f"历史来电人{i}", phone=f"137{i % 10**8:08d}"),
        place=Place(district=DISTRICTS[i % len(DISTRICTS)], address=f"历史路{i}号"),
        needs=tuple(needs),
        household_status="low_income" if i % 2 else "unknown",
        emergency=verdict.emergency,
        emergency_reasons=verdict.reasons,
        description=description,
    )


class HistoryBuilder:
    """Turns case numbers into every service's documents for those cases."""

    def __init__(self, hotline_db: Any, relief_db: Any, notify_db: Any) -> None:
        self.catalogue = catalogue_of(RouterSettings())
        self.hotline = HotlineStore(hotline_db, pepper=HotlineSettings().lookup_pepper.get_secret_value())
        self.relief, self.relief_memory = captured.relief_intake(relief_db)
        self.notify = captured.NotifyHistory(notify_db)
        self.callers: dict[str, list[str]] = {}
        self.search_entries: list[Doc] = []
        self.days: set[str] = set()
        self.counters: dict[str, int] = {}
        self.proposals = 0  # decided so far: which to reject, which amount to set

    def route(self, request: HelpRequested) -> tuple[Doc, list[Doc]]:
        """The router's case, worked to resolution at the desk, as archived; and its lifecycle events."""
        at = request.received_at
        facts = RoutingFacts.of(request)
        case = open_case(
            request.case_id,
            facts,
            decide(self.catalogue, facts),
            self.catalogue,
            now=at + timedelta(seconds=30),
            correlation_id=request.case_id,
            summary=request.description[:200],
            request_event_id=str(request.event_id),
        )
        initial, writes = list(case.outbox), 1
        for task in case.tasks:
            writes += mark_queued(case, task.task_id, at + timedelta(seconds=31))
        lead = case.lead_task()
        assert lead is not None
        for n, task in enumerate(sorted(case.tasks, key=lambda t: t.role == "lead")):  # co-handlers first
            worker = Principal(
                sub="history-worker", role=Role.DEPT_WORKER, department=task.department, district=task.district
            )
            desk.sign_for(case, task.task_id, worker, at + timedelta(minutes=10 + n))
            desk.resolve(case, task.task_id, worker, "helped", "已帮扶", at + timedelta(days=1, minutes=n))
            writes += 2
        events = [e["body"] for e in case.outbox if e["queue"] == "lifecycle"]
        case.outbox = []
        case.version = writes + 1  # the archiving claims one more
        doc = case.to_document()
        doc["initial_events"] = pydantic_core.to_json(initial).decode()
        doc["updated_at"] = doc["archived_at"] = at + timedelta(days=8)
        return doc, events

    async def case(self, i: int, at: datetime, seq: int) -> tuple[Doc, Doc]:
        """One case everywhere; returns the router's and the hotline's documents (relief's and notify's
        are kept by their captured stores)."""
        day = case_day(at)
        case_id = format_case_number(day, seq)
        request = history_request(i, at, case_id)
        router_doc, lifecycle = self.route(request)
        dispatched = CaseDispatched.model_validate(lifecycle[0])  # routing's first event
        with captured.relief_at(self.relief, at + timedelta(seconds=1)):
            await self.relief.on_help_requested(request)
        with captured.relief_at(self.relief, dispatched.occurred_at + timedelta(seconds=1)):
            await self.relief.on_dispatched(dispatched)
        await self.decide(case_id, at)
        grants = [  # the grant events; a P5.2d notice goes to the hukou district's topic, which no service here reads
            body
            for key, ent in self.relief_memory.entitlements.items()
            if key.startswith(f"{case_id}:")
            for body in captured.published(ent)
            if body["type"].startswith("grant.")
        ]
        callback = CallbackRecorded(  # the operator's callback (回访) two days after the resolution
            case_id=case_id,
            correlation_id=case_id,
            occurred_at=at + timedelta(days=3),
            operator_id="history-operator",
            satisfaction="satisfied",
        ).model_dump(mode="json")
        downstream = sorted([*lifecycle, *grants, callback], key=lambda e: datetime.fromisoformat(e["occurred_at"]))
        self.notify.apply(request)
        for body in downstream:
            self.notify.apply(_typed(body))
        intake = self.hotline.intake_document(request)
        kept = [{**body, "_arrived_at": at + timedelta(seconds=n)} for n, body in enumerate(downstream)]
        intake[EVENTS_PACKED] = pack_entries(kept)  # as the write path keeps them
        status = project_status(
            case_id,
            received_at=at,
            emergency=request.emergency,
            events=[kept_event(entry) for entry in kept],  # in arrival order, as the store projects
        )
        intake.update(HotlineStore._status_fields(status), version=2 * len(downstream), created_at=at)
        intake["updated_at"] = intake["archived_at"] = at + timedelta(days=8)
        entry = search_entry(request, intake["keys"], status)
        self.search_entries.append(entry)
        self.days.add(entry["day"])
        for kind, value in intake["keys"].items():
            self.callers.setdefault(f"{kind}:{value}", []).append(case_id)
        self.counters[day] = max(self.counters.get(day, 0), seq)
        return router_doc, intake

    async def decide(self, case_id: str, at: datetime) -> None:
        """Relief officers deciding a case's proposals a day or two after the call, through the service's
        own decisions (those its HTTP API calls): one in `REJECTED_EVERY` rejected with a reason; the others
        approved, by a second officer too when the amount needs four eyes (P5.2c), and paid the day after
        (once per period, through the ledger: a one-time grant once, a monthly one its months due by then).
        A dibao application approved (P5.1) has its allowance paid by the month's first-payment run (P2.1),
        which marks the grant paid for the month as a run does (`subsidies.execute_run`; the history's
        callers give no ID-card number, so they are in no registry the run would pay in the ledger)."""
        proposed = [
            (eid, doc)
            for eid, doc in self.relief_memory.entitlements.items()
            if eid.startswith(f"{case_id}:") and doc["status"] == Status.PROPOSED
        ]
        for eid, doc in proposed:
            n, self.proposals = self.proposals, self.proposals + 1
            officer, reviewer = (
                Principal(sub=sub, role=Role.RELIEF_OFFICER, district=doc["district"]) for sub in (OFFICER, REVIEWER)
            )
            with captured.relief_at(self.relief, at + timedelta(days=1, hours=2)):
                if n % REJECTED_EVERY == REJECTED_EVERY - 1:
                    await self.relief.reject(eid, officer, REJECTION)
                    continue
                grant = await self.relief.approve(eid, officer, self.amount(doc, n), "已核实 | checked")
            if grant.status == Status.PENDING_APPROVAL:
                with captured.relief_at(self.relief, at + timedelta(days=1, hours=5)):
                    grant = await self.relief.approve(eid, reviewer, None, "复核同意 | second approval")
            with captured.relief_at(self.relief, at + timedelta(days=2)):
                if grant.schedule == Schedule.ONCE:
                    periods = ["once"]
                else:  # a dibao review has none
                    periods = [period for period, _ in self.relief.due_periods(grant)]
                for period in periods:
                    await self.relief.pay(eid, officer, period, f"HIST-{n:07d}-{period}")
                if grant.rule_id == "P5.1" and grant.status == Status.APPROVED:
                    await first_payment_run(self.relief, grant)

    @staticmethod
    def amount(doc: Doc, n: int) -> Decimal | None:
        """The amount an officer approves: the rule's when it fixes one (or none), else one of `AMOUNTS`
        (within the cap, if any)."""
        kind = AmountKind(doc["amount_kind"])
        if kind in (AmountKind.FIXED, AmountKind.NONE):
            return None
        amount = AMOUNTS[n % len(AMOUNTS)]
        return min(amount, Decimal(doc["cap"])) if kind is AmountKind.CAPPED and doc.get("cap") else amount

    def drain(self) -> tuple[list[Doc], list[Doc], list[Doc], list[Doc], list[Doc], list[Doc]]:
        """Relief's cases, entitlements, applicants and ledger entries, notify's cases and contacts built so
        far (then forgotten)."""
        relief = self.relief_memory
        notify_cases, contacts = self.notify.drain()
        out = (
            list(relief.cases.values()),
            list(relief.entitlements.values()),
            list(relief.applicants.values()),
            list(relief.ledger.values()),
            notify_cases,
            contacts,
        )
        relief.cases.clear()
        relief.entitlements.clear()
        relief.applicants.clear()
        relief.ledger.clear()
        return out


async def first_payment_run(relief: Relief, grant: Entitlement) -> None:
    """The first-payment run (P2.1) of the month a dibao application was approved in, paying its allowance
    at the district's standard: the grant marked paid for the month, with `grant.paid`."""
    approved_on = grant.approved_on
    assert approved_on is not None  # an approved grant has its day
    month = f"{approved_on:%Y-%m}"
    amount = (await relief.standards_book()).amount(grant.district, grant.area or Area.URBAN, approved_on)
    spec = RunSpec(
        run_id=run_id_for(RunKind.FIRST_PAYMENT, month, "history", "city"),
        kind=RunKind.FIRST_PAYMENT,
        month=month,
        districts=frozenset(DISTRICTS),
        amounts={Category.DIBAO: amount},
    )
    await _close_dibao_grant(relief.store, relief.entitlements, grant.case_id, spec, amount, COORDINATOR)


def placing(db: Any, name: str, docs: list[Doc], query: Doc) -> list[Any]:
    """The inserts of a history's documents where the archiver would have left them by now: the finished
    ones in `<name>_archive`, the others in the working set."""
    done: list[Doc] = []
    live: list[Doc] = []
    for doc in docs:  # stamped as the write path would have (the day of the write that finished it)
        if matches(query, doc):
            stamp = finished_day(doc.get("updated_at") or datetime.now(UTC))
            done.append(doc | {"archived_at": datetime.now(UTC), FINISHED: stamp})
        else:
            live.append(doc | {FINISHED: None})
    return [db[collection].insert_many(part) for collection, part in ((f"{name}_archive", done), (name, live)) if part]


def _typed(body: Doc) -> Any:
    """A downstream event's contract JSON as its event type."""
    if body["type"].startswith("grant."):
        return grant_event.validate_python(body)
    if body["type"].startswith("hotline."):
        return read_event(CASE_EVENTS_TOPIC, pydantic_core.to_json(body))
    return case_lifecycle_event.validate_python(body)


def history_times(opts: E2eBench, now: datetime) -> list[tuple[datetime, int]]:
    """(received at, sequence number of its day) for every case, evenly over `history_days`."""
    start = now - timedelta(days=opts.history_ends_days_ago + opts.history_days)
    span = timedelta(days=opts.history_days).total_seconds()
    times: list[tuple[datetime, int]] = []
    seqs: dict[str, int] = {}
    for i in range(opts.history):
        at = start + timedelta(seconds=span * i / max(opts.history, 1))
        day = case_day(at)
        seqs[day] = seqs.get(day, 0) + 1
        times.append((at, seqs[day]))
    return times


async def complete(client: AsyncMongoClient[Doc], opts: E2eBench) -> bool:
    for service in SERVICES:
        marker = await client[opts.history_database(service)][MARKER].find_one({"_id": "complete"})
        if not marker or marker.get("cases") != opts.history or marker.get("layout") != LAYOUT:
            return False
    return True


async def ensure_history(client: AsyncMongoClient[Doc], opts: E2eBench) -> str:
    """Load the history unless a complete one is there; returns what was done, for the report."""
    if not opts.rebuild and await complete(client, opts):
        return "reused"
    for service in SERVICES:
        await client.drop_database(opts.history_database(service))
    dbs = {s: client[opts.history_database(s)] for s in SERVICES}
    builder = HistoryBuilder(dbs["hotline"], dbs["relief"], dbs["notify"])
    started = time.perf_counter()
    times = history_times(opts, datetime.now(UTC))
    writing: asyncio.Future[Any] | None = None
    for first in range(0, len(times), CHUNK):
        routed, intakes = [], []
        for i in range(first, min(first + CHUNK, len(times))):
            router_doc, intake = await builder.case(i, *times[i])
            routed.append(router_doc)
            intakes.append(intake)
            await asyncio.sleep(0)  # the previous chunk's writes go on while this one is built
        relief_cases, entitlements, applicants, ledger, notify_cases, contacts = builder.drain()
        if writing is not None:
            await writing
        entries, builder.search_entries = builder.search_entries, []
        placed = [
            *placing(dbs["relief"], "cases", relief_cases, CASE_FINISHED),
            *placing(dbs["relief"], "entitlements", entitlements, ENTITLEMENT_FINISHED),
            *placing(dbs["notify"], "cases", notify_cases, NOTIFY_FINISHED),
        ]
        # A case's contact follows it into the archive (`NotifyStore.archive_followers`).
        archived = {doc["_id"] for doc in notify_cases if matches(NOTIFY_FINISHED, doc)}
        contacts_placed = [
            dbs["notify"][collection].insert_many(part)
            for collection, part in (
                ("contacts_archive", [c for c in contacts if c["_id"] in archived]),
                ("contacts", [c for c in contacts if c["_id"] not in archived]),
            )
            if part
        ]
        writing = asyncio.gather(
            dbs["router"]["cases_archive"].insert_many(routed),
            dbs["hotline"]["intakes_archive"].insert_many(intakes),
            dbs["hotline"]["case_search_archive"].insert_many(entries),
            *placed,
            *([dbs["relief"]["applicants"].insert_many(applicants)] if applicants else []),
            *([dbs["relief"]["ledger"].insert_many(ledger)] if ledger else []),  # append-only: never archived
            *contacts_placed,
        )
        done = first + len(routed)
        if done % 10_000 == 0 or done == len(times):
            elapsed = time.perf_counter() - started
            print(f"  history: {done} of {len(times)} cases built, {done / elapsed:.0f} cases/s", flush=True)
    if writing is not None:
        await writing
    # The repeat-caller index as the hotline files it: a slot per case and key, a head past the first chunk.
    slots = [
        {"_id": slot_id(key, n // SLOTS_PER_CHUNK, n % SLOTS_PER_CHUNK), "case_id": case_id, "at": datetime.now(UTC)}
        for key, ids in builder.callers.items()
        for n, case_id in enumerate(ids)
    ]
    for first in range(0, len(slots), CHUNK * 5):
        await dbs["hotline"]["caller_slots"].insert_many(slots[first : first + CHUNK * 5])
    heads = [
        {"_id": key, "chunk": (len(ids) - 1) // SLOTS_PER_CHUNK}
        for key, ids in builder.callers.items()
        if len(ids) > SLOTS_PER_CHUNK
    ]
    if heads:
        await dbs["hotline"]["caller_heads"].insert_many(heads)
    callers = builder.callers
    await dbs["hotline"]["case_search_days"].insert_many([{"_id": d} for d in sorted(builder.days)])
    await dbs["hotline"]["counters"].insert_many(
        [
            *({"_id": f"case:{d}", "last": n} for d, n in builder.counters.items()),
            {"_id": BACKFILL_MARK, "added": len(times), "updated": 0},  # filed above, as the hotline would
        ]
    )
    leftover = len(builder.notify.live_timers)
    for service in SERVICES:
        await dbs[service][MARKER].insert_one(
            {"_id": "complete", "cases": opts.history, "layout": LAYOUT, "at": datetime.now(UTC)}
        )
    elapsed = time.perf_counter() - started
    return (
        f"loaded {opts.history} cases in {elapsed:.0f} s ({opts.history / max(elapsed, 1e-9):.0f} cases/s, "
        f"{len(callers)} caller keys, {leftover} notify timers left open)"
    )
