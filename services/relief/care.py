"""The care register's use cases (P2.2, P5.3): enrol a person from the low-income registry or from a case,
with their groups and a named responsible worker; record visits; the worker's list of people and the
visits due or overdue; the sweep that reports missed visits (`VisitMissed`, through the write path's
outbox) and runs the discovery rules on them (`services.relief.discovery`).

Entries are written only through the shared write path (`common.aggregates`); their events ride in the
entry's outbox and are published on `relief.care-events.v1`. The visits due are an insert-only schedule
(`ReliefStore.schedule_care_due`): the sweep reads the day's items by equality, never the whole register.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from common.aggregates import Aggregates, Codec, Entry
from common.errors import DomainError, Forbidden, NotFound
from common.kafka import publish_event
from common.principal import Principal, Role
from contracts.events.care import OutreachProposed, care_event
from contracts.events.hotline import HouseholdStatus, Place, SpecialGroup
from services.relief.discovery import Discovery
from services.relief.domain import care as rules
from services.relief.domain import discovery as finding_rules
from services.relief.domain.care import CareEntry, CareGroup, CareVisit, VisitMode, VisitOutcome, VisitSchedule
from services.relief.domain.discovery import Finding
from services.relief.store import ReliefStore

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from common.app import Runtime
    from services.relief.service import Relief

log = structlog.get_logger("relief.care")

SWEEP_INTERVAL_S = 60.0
LOOKBACK_DAYS = 31  # days before today the sweep checks it has looked at (a service down for a while)


def _load(doc: dict[str, Any]) -> CareEntry:
    fields = CareEntry.model_fields
    return CareEntry.model_validate({k: v for k, v in ({**doc, "id": doc["_id"]}).items() if k in fields})


def _dump(entry: CareEntry) -> dict[str, Any]:
    return {"_id": entry.id, **entry.model_dump(mode="json", exclude={"id", "version"})}


CARE_CODEC: Codec[CareEntry] = Codec(_load, _dump)


def load_schedule(path: str | None = None) -> VisitSchedule:
    """Read and validate the visit schedule; an invalid file stops the service from starting."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.relief.data").joinpath("care_visits.yaml").read_text(encoding="utf-8")
    schedule = rules.load_visit_schedule(text)
    if schedule.example:
        log.warning("the visit schedule holds EXAMPLE intervals: set the district's own (care_visits.yaml)")
    return schedule


def shown(account: str, name: str | None) -> str:
    return f"{name}（{account}）" if name else account


@dataclass
class CareRegister:
    store: ReliefStore
    schedule: VisitSchedule
    clock: Callable[[], date]
    broker: KafkaBroker | None = None
    topic_namespace: str = ""
    discovery: Discovery | None = None  # proactive discovery on the register (P2.3), set by app.py
    entries: Aggregates[CareEntry] = field(init=False)
    _swept: set[str] = field(default_factory=set, init=False)  # past days known swept (not asked again)

    def __post_init__(self) -> None:
        db = self.store.db
        self.entries = Aggregates(db["care_entries"], db["care_entries_claims"], CARE_CODEC, self.publisher)

    @property
    def publisher(self) -> Callable[[Sequence[tuple[str, list[Entry]]]], Awaitable[None]] | None:
        """What publishes the care topic's outboxes (None without a broker: they wait for a sweeper)."""
        return self._publish if self.broker is not None else None

    async def _publish(self, outboxes: Sequence[tuple[str, list[Entry]]]) -> None:
        broker = self.broker
        if broker is None:  # pragma: no cover - the write path is given no publisher then
            raise RuntimeError("no broker to publish on")

        async def in_order(entries: list[Entry]) -> None:
            for entry in entries:
                event = care_event.validate_python(entry["event"])
                await publish_event(broker, event, topic=f"{self.topic_namespace}{event.TOPIC}")

        await asyncio.gather(*(in_order(entries) for _, entries in outboxes if entries))

    # ------------------------------------------------------------------ enrolment

    async def enrol(
        self,
        officer: Principal,
        *,
        recipient_id: str | None,
        case_id: str | None,
        groups: Sequence[CareGroup],
        worker: str,
        worker_name: str | None,
        address: str | None = None,
        township: str | None = None,
    ) -> CareEntry:
        """Put a person on the register, from the registry (`recipient_id`) or from a case (`case_id`)."""
        if recipient_id:
            record = await self.store.registry_get(recipient_id)
            if record is None:
                raise NotFound("低收入人口数据库中没有该人员", f"no registry record {recipient_id}")
            entry_id, name, district, source = f"R-{recipient_id}", record.name or "", record.district, "registry"
            if "tekun" in record.categories and CareGroup.TEKUN not in groups:
                groups = [*groups, CareGroup.TEKUN]
        elif case_id:
            applicants = await self.store.applicants_of([case_id])
            applicant = applicants.get(case_id)
            if applicant is None or not applicant.place_district:
                raise NotFound("未找到该案件的求助人", f"no applicant of case {case_id}")
            entry_id, name, district, source = f"C-{case_id}", applicant.name, applicant.place_district, "case"
        else:
            raise DomainError(
                "请提供低收入人口编号或案件编号",
                "give recipient_id (registry) or case_id (a case)",
                field="recipient_id",
                status=422,
            )
        if not officer.can_see_district(district):
            raise Forbidden("只能登记本区县的人员", "officers enrol people of their own district only")
        entry = rules.enrol(
            entry_id=entry_id,
            name=name,
            district=district,
            groups=groups,
            worker=worker,
            worker_shown=shown(worker, worker_name),
            source=source,
            enrolled_on=self.clock(),
            enrolled_by=officer.shown_as,
            schedule=self.schedule,
            recipient_id=recipient_id,
            case_id=case_id,
            township=township,
            address=address,
        )

        def create(current: CareEntry | None) -> CareEntry:
            if current is not None and current.status is rules.Status.ACTIVE:
                raise DomainError(
                    f"该人员已在关爱名册中（{current.id}）",
                    f"already on the register as {current.id}",
                    code="already_enrolled",
                    status=409,
                )
            return entry

        written = await self.entries.change(entry_id, create)
        assert written is not None  # `create` always changes (or raises)
        await self._schedule(written.value)
        return written.value

    async def _schedule(self, entry: CareEntry) -> None:
        """The entry's next due visit into the insert-only schedule (the sweep's to look at)."""
        due = entry.next_due_on
        check = rules.check_day(due, self.clock())
        await self.store.schedule_care_due([(entry.id, due.isoformat(), check.isoformat(), "visit")])

    # ------------------------------------------------------------------ reading

    async def get(self, entry_id: str, reader: Principal) -> CareEntry:
        doc = await self.store.care_entry(entry_id)
        if doc is None:
            raise NotFound("关爱名册中没有该人员", f"no register entry {entry_id}")
        entry = _load(doc)
        if not (reader.sub == entry.worker or (_officer(reader) and reader.can_see_district(entry.district))):
            raise Forbidden("只能查看本人负责或本区县的人员", "only the responsible worker or the district's officers")
        return entry

    async def mine(self, worker: Principal) -> list[CareEntry]:
        """The people this worker is responsible for, the most pressing visit first."""
        return [_load(doc) for doc in await self.store.care_entries(worker=worker.sub)]

    async def of_district(self, reader: Principal, district: str | None) -> list[CareEntry]:
        scope = district or (None if reader.city_level else reader.district)
        if scope is not None and not reader.can_see_district(scope):
            raise Forbidden("只能查看本区县的名册", "officers see their own district's register")
        return [_load(doc) for doc in await self.store.care_entries(district=scope)]

    async def history(self, entry: CareEntry) -> list[dict[str, Any]]:
        return await self.store.care_visits(entry.id)

    # ------------------------------------------------------------------ visits

    async def record_visit(
        self,
        visitor: Principal,
        entry_id: str,
        *,
        visited_on: date,
        mode: VisitMode,
        outcome: VisitOutcome,
        needs: Sequence[str] = (),
        note: str = "",
    ) -> tuple[CareEntry, CareVisit, bool]:
        """Record a visit (once per person, day, worker and mode); the entry after it, the visit, and
        whether it was recorded now (False: a retry of one recorded before)."""
        entry = await self.get(entry_id, visitor)
        if outcome is VisitOutcome.NEEDS_FOUND and not needs:
            raise DomainError("发现需求时请填写需求", "name the needs found", field="needs", status=422)
        visit_id = f"{entry.id}|{visited_on.isoformat()}|{visitor.sub}|{mode}"
        today = self.clock()
        findings = self._needs_found(entry, visit_id, today) if outcome is VisitOutcome.NEEDS_FOUND else []
        visit = CareVisit(
            visit_id=visit_id,
            visited_on=visited_on,
            worker=visitor.sub,
            worker_shown=visitor.shown_as,
            mode=mode,
            outcome=outcome,
            needs=tuple(needs),
            note=note,
            recorded_at=datetime.now(UTC),
            case_proposal=findings[0].proposal_id if findings else None,
        )
        change = self._visit_change(visit, today)
        written = await self.entries.change(entry.id, change)
        stored = written.value if written is not None else await self.get(entry.id, visitor)
        recorded = next((v for v in stored.visits if v.visit_id == visit.visit_id), visit)
        await self.store.add_care_visit(
            {"_id": recorded.visit_id, "entry_id": entry.id, **recorded.model_dump(mode="json")}
        )
        if written is not None:
            await self._schedule(stored)
        if findings and self.discovery is not None:  # again on a retry: the proposal id is natural
            await self.discovery.propose([self._proposal(f, stored, needs=recorded.needs) for f in findings])
        return stored, recorded, written is not None

    def _needs_found(self, entry: CareEntry, visit_id: str, on: date) -> list[Finding]:
        if self.discovery is None:
            return []
        return finding_rules.needs_found(entry.id, visit_id, self.discovery.rules, on)

    def _proposal(self, finding: Finding, entry: CareEntry, needs: Sequence[str] = ()) -> OutreachProposed:
        """P2.3: the outreach case a finding on the register asks the hotline to open."""
        known = {str(group) for group in SpecialGroup}
        groups = [SpecialGroup(str(g)) for g in entry.groups if str(g) in known]
        return finding_rules.proposal(
            finding,
            name=entry.name,
            place=Place(district=entry.district, township=entry.township, address=entry.address),
            status=HouseholdStatus.TEKUN if CareGroup.TEKUN in entry.groups else HouseholdStatus.UNKNOWN,
            special_groups=groups,
            needs=needs,
            worker=entry.worker,
        )

    def _visit_change(self, visit: CareVisit, today: date) -> Callable[[CareEntry | None], CareEntry | None]:
        def change(current: CareEntry | None) -> CareEntry | None:
            if current is None:
                raise NotFound("关爱名册中没有该人员", "no such register entry")
            return rules.record_visit(current, visit, self.schedule, today)

        return change

    async def reassign(self, officer: Principal, entry_id: str, worker: str, worker_name: str | None) -> CareEntry:
        entry = await self.get(entry_id, officer)
        if not _officer(officer):
            raise Forbidden("只有经办人或统筹协调人可以调整责任人", "only officers or coordinators reassign")

        def change(current: CareEntry | None) -> CareEntry | None:
            if current is None:
                raise NotFound("关爱名册中没有该人员", "no such register entry")
            return rules.reassign(current, worker, shown(worker, worker_name))

        written = await self.entries.change(entry.id, change)
        return written.value if written is not None else entry

    # ------------------------------------------------------------------ missed visits

    async def sweep(self) -> int:
        """Report the visits whose day is over with no visit recorded: one `VisitMissed` each (through the
        entries' outboxes), and run the visit_overdue discovery rules on those still not made (P2.3).
        Looks at every day of the last `LOOKBACK_DAYS` not yet swept, and at today; a past day is recorded
        as swept once all of it is done. Returns how many visits were reported missed now."""
        today = self.clock()
        days = [today - timedelta(days=n) for n in range(LOOKBACK_DAYS, 0, -1)]
        unknown = [d.isoformat() for d in days if d.isoformat() not in self._swept]
        self._swept = {d.isoformat() for d in days} - set(unknown) | await self.store.care_days_swept(unknown)
        swept = self._swept
        reported = 0
        for day in [d for d in days if d.isoformat() not in swept] + [today]:
            items = await self.store.care_due_checked_on(day.isoformat())
            visits = [(e, date.fromisoformat(d)) for e, d, kind in items if kind == "visit"]
            checks = [(e, date.fromisoformat(d), kind) for e, d, kind in items if kind != "visit"]
            missed, ok = await self._report_missed(visits, today)
            ok = await self._propose_overdue(checks, today) and ok
            reported += missed
            if ok and day < today:
                await self.store.mark_care_day_swept(day.isoformat())
                self._swept.add(day.isoformat())
        if reported:
            log.info("missed visits reported", count=reported)
        return reported

    async def _report_missed(self, visits: Sequence[tuple[str, date]], today: date) -> tuple[int, bool]:
        """Mark the missed visits (their events in the entries' outboxes) and schedule the discovery
        rules' later looks at them; how many were marked now, and whether all went through."""
        dues: dict[str, list[date]] = {}
        for entry_id, due_on in visits:
            dues.setdefault(entry_id, []).append(due_on)
        outcome = await self.entries.change_many({e: _missing(d, today) for e, d in dues.items()})
        for entry_id, error in outcome.failed.items():
            log.error("missed visit not recorded", entry_id=entry_id, error=repr(error))
        if self.discovery is not None and outcome.written:
            later = []
            for written in outcome.written.values():
                due = written.value.missed[-1]
                for rule_id, on in finding_rules.overdue_checks(due, self.discovery.rules, today):
                    later.append((written.id, due.isoformat(), max(on, today).isoformat(), rule_id))
            await self.store.schedule_care_due(later)
        return len(outcome.written), not outcome.failed

    async def _propose_overdue(self, checks: Sequence[tuple[str, date, str]], today: date) -> bool:
        """P2.3 + P2.2: a missed visit still not made once a visit_overdue rule's delay passed opens an
        outreach case (once per rule and due visit)."""
        if not checks or self.discovery is None:
            return True
        current = await self.entries.current(sorted({entry_id for entry_id, _, _ in checks}))
        events = []
        for entry_id, due_on, rule_id in checks:
            entry = current.get(entry_id)
            if entry is None or entry.status is not rules.Status.ACTIVE or entry.next_due_on != due_on:
                continue  # visited meanwhile, or off the register
            for finding in finding_rules.overdue_findings(entry_id, due_on, self.discovery.rules, today):
                if finding.rule.id == rule_id:
                    events.append(self._proposal(finding, entry))
        try:
            await self.discovery.propose(events)
        except Exception as exc:  # noqa: BLE001 - the day is looked at again at the next sweep
            log.error("overdue outreach not proposed", error=repr(exc))
            return False
        return True


def _missing(days_due: list[date], today: date) -> Callable[[CareEntry | None], CareEntry | None]:
    def change(current: CareEntry | None) -> CareEntry | None:
        if current is None:
            return None
        entry, changed = current, False
        for due_on in days_due:
            if (after := rules.mark_missed(entry, due_on, today)) is not None:
                entry, changed = after, True
        return entry if changed else None

    return change


def _officer(who: Principal) -> bool:
    return who.role in (Role.RELIEF_OFFICER, Role.COORDINATOR, Role.ADMIN)


async def care_sweeper(runtime: Runtime[Relief]) -> None:
    """Background loop: report missed visits every `SWEEP_INTERVAL_S` (idempotent across processes)."""
    register = runtime.service.care
    if register is None:  # pragma: no cover - started with the register (app.py)
        return
    while True:
        try:
            await register.sweep()
        except Exception as exc:  # noqa: BLE001 - the next sweep looks at the same days again
            log.warning("care sweep failed; retried at the next interval", error=repr(exc))
        await asyncio.sleep(SWEEP_INTERVAL_S)
