"""The registry import (P2.3) and batch subsidy runs over it (P1.3 price linkage, P2.1 holiday subsidy).

A run pays every eligible registry recipient exactly once: each payment's ledger idempotency key is
(run, recipient) under a unique index, so a repeated run, a resumed run after a crash, or two runs of
the same run at once insert nothing twice. Runs can be executed by the API or from the command line:

    python -m services.relief.subsidies RUN_ID        # e.g. from a scheduler; safe to repeat
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog

from common.aggregates import Aggregates
from common.store import open_mongo
from contracts.events.relief import GrantPaid
from services.relief.documents import Decision, Entitlement, entitlements_of, mark_paid
from services.relief.domain.facts import Category
from services.relief.domain.lifecycle import Status
from services.relief.domain.money import as_str, to_fen
from services.relief.domain.registry import ImportReport, parse_registry_csv
from services.relief.domain.runs import RUN_PROVISION, Recipient, RunKind, RunSpec, funding_source, run_payment
from services.relief.records import LedgerEntry, RegistryRecord, RunExecution, SubsidyRun
from services.relief.store import ReliefStore

log = structlog.get_logger("relief.subsidies")
# Runs that pay the dibao/tekun allowance itself (P2.1 approved and paid in the same month).
ALLOWANCE_RUNS = (RunKind.FIRST_PAYMENT, RunKind.PRE_HOLIDAY)


async def import_registry(
    store: ReliefStore,
    csv_text: str,
    salt: str,
    *,
    only_district: str | None = None,
    on_change: Callable[[dict[str, RegistryRecord], list[RegistryRecord]], Awaitable[int]] | None = None,
) -> ImportReport:
    """Validate a registry CSV, keep the good rows (insert or replace by recipient id), report the bad.

    A district officer's file may only hold their own district's rows; other rows are reported as bad.
    `on_change` is told the records as they were and as written (proactive discovery, P2.3).
    """
    report = parse_registry_csv(csv_text, salt)
    if only_district is not None:
        for row in [r for r in report.accepted if r.district != only_district]:
            report.accepted.remove(row)
            report.rejected.append(
                {
                    "line": report.lines.get(row.recipient_id),
                    "recipient_id": row.recipient_id,
                    "errors": [
                        {
                            "field": "district",
                            "reason_zh": f"不属于本区县 {only_district}",
                            "reason_en": f"not in your district {only_district}",
                        }
                    ],
                }
            )
    records = [RegistryRecord.of_row(row) for row in report.accepted]
    before = await store.registry_records([r.id for r in records]) if on_change is not None else {}
    await store.upsert_registry(records)
    if on_change is not None:
        await on_change(before, records)
    return report


def spec_of(run: SubsidyRun) -> RunSpec:
    return RunSpec(
        run.id,
        RunKind(run.kind),
        run.month,
        frozenset(run.districts),
        {Category(c): Decimal(a) for c, a in run.amounts.items()},
        date.fromisoformat(run.pay_before) if run.pay_before else None,
    )


def run_document(spec: RunSpec, label: str, scope: str, opened_by: str, now: datetime) -> SubsidyRun:
    """A run as opened (status `open`, nothing paid yet)."""
    return SubsidyRun.model_validate(
        {
            "_id": spec.run_id,
            "kind": str(spec.kind),
            "provision": RUN_PROVISION[spec.kind],
            "month": spec.month,
            "label": label,
            "scope": scope,
            "districts": sorted(spec.districts),
            "amounts": {str(c): as_str(a) for c, a in spec.amounts.items()},
            "due_on": spec.due_on.isoformat(),
            **({"pay_before": spec.pay_before.isoformat()} if spec.pay_before else {}),
            "status": "open",
            "opened_by": opened_by,
            "opened_at": now,
            "paid_count": 0,
            "paid_fen": 0,
        }
    )


def _recipient(record: RegistryRecord) -> Recipient:
    return Recipient(
        record.id,
        record.district,
        frozenset(Category(c) for c in record.categories),
        record.approved_on,
        record.ended_on,
    )


@dataclass
class RunResult:
    run_id: str
    scanned: int
    eligible: int
    inserted: int
    ledger_count: int
    paid_fen: int
    seconds: float


async def execute_run(
    store: ReliefStore,
    run_id: str,
    *,
    by: str,
    batch_size: int = 1000,
    pause_s: float = 0.0,
    on_batch: Callable[[int], Any] | None = None,
    grants: Aggregates[Entitlement] | None = None,
) -> RunResult:
    """Pay every eligible recipient of the run not yet paid; safe to repeat, resume or run concurrently.
    `grants` is the service's entitlement write path (publishing at once); without it, the events of the
    P5.1 grants a run pays wait in their outboxes for the service's sweeper."""
    run = await store.get_run(run_id)
    if run is None:
        raise LookupError(f"no run {run_id}")
    spec = spec_of(run)
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    await store.run_started(run_id, started_at)
    scanned = eligible = inserted = 0
    entries: list[LedgerEntry] = []
    # Skip those already paid (a repeat or a resume); the unique index on the idempotency key still
    # refuses any duplicate that a concurrent execution of the same run inserts in between.
    paid = await store.paid_recipients(run_id)
    newcomers: list[tuple[str, Decimal]] = []  # (the approving case, amount) of P5.1 recipients paid here

    async def flush() -> None:
        nonlocal inserted
        inserted += await store.append_ledger_many(entries)
        entries.clear()
        if on_batch is not None:
            on_batch(inserted)
        if pause_s:
            await asyncio.sleep(pause_s)

    async for record in store.registry_scan(sorted(spec.districts), batch_size):
        scanned += 1
        due = run_payment(spec, _recipient(record))
        if due is None:
            continue
        eligible += 1
        if record.source_case_id and spec.kind in ALLOWANCE_RUNS:
            newcomers.append((record.source_case_id, due[0]))
        if record.id in paid:
            continue
        amount, category = due
        entries.append(
            LedgerEntry(
                idempotency_key=f"{run_id}|{record.id}",
                run_id=run_id,
                rule_id=RUN_PROVISION[spec.kind],
                period=spec.month,
                recipient_id=record.id,
                district=record.district,
                category=str(category),
                funding_source=str(funding_source(spec.kind, category)),
                amount=amount,
                amount_fen=to_fen(amount),
                case_id=None,
                entitlement_id=None,
                payment_reference=run_id,
                recorded_by=by,
                recorded_at=datetime.now(UTC),
            )
        )
        if len(entries) >= batch_size:
            await flush()
    await flush()
    for case_id, amount in newcomers:
        await _close_dibao_grant(
            store, grants or entitlements_of(store.db, None, store.archive_after), case_id, spec, amount, by
        )
    paid_count, paid_fen = await store.run_totals(run_id)
    seconds = time.perf_counter() - started
    await store.record_execution(
        run_id,
        RunExecution(
            by=by,
            started_at=started_at,
            scanned=scanned,
            eligible=eligible,
            inserted=inserted,
            seconds=round(seconds, 3),
        ),
    )
    await store.run_completed(run_id, paid_count=paid_count, paid_fen=paid_fen, eligible=eligible, at=datetime.now(UTC))
    log.info(
        "subsidy run executed",
        run_id=run_id,
        scanned=scanned,
        eligible=eligible,
        inserted=inserted,
        ledger_count=paid_count,
        seconds=round(seconds, 2),
    )
    return RunResult(run_id, scanned, eligible, inserted, paid_count, paid_fen, seconds)


async def _close_dibao_grant(
    store: ReliefStore, grants: Aggregates[Entitlement], case_id: str, spec: RunSpec, amount: Decimal, by: str
) -> None:
    """P2.1: a dibao recipient approved through a case (P5.1) has their allowance itself paid by this run (a
    first-payment or pre-holiday run, not a holiday subsidy), so that grant is paid for the run's month: its
    `grant.paid` (queued in the entitlement's outbox, published by the write path) closes the same-month
    payment deadline notify keeps. Once per grant and month."""
    grant = await store.get_entitlement(f"{case_id}:P5.1")
    if grant is None or grant.status != Status.APPROVED or spec.month in grant.paid_periods:
        return
    if grant.approved_on is None or f"{grant.approved_on:%Y-%m}" != spec.month:
        return  # the same-month deadline concerns the month of approval only
    now = datetime.now(UTC)
    event = GrantPaid(
        grant_id=grant.id,
        case_id=case_id,
        rule_id=grant.rule_id,
        district=grant.district,
        actor=by,
        amount_yuan=amount,
        payment_reference=spec.run_id,
        approved_on=grant.approved_on,
        period=spec.month,
    )
    decision = Decision(
        action="paid_by_run",
        by=by,
        at=now,
        rule_id=RUN_PROVISION[spec.kind],
        facts={"run_id": spec.run_id, "month": spec.month, "amount": as_str(amount)},
        note="",
        parameters=grant.parameters,
    )
    await grants.change(grant.id, mark_paid(spec.month, {"updated_at": now}, decision, [event]))


async def _cli() -> None:
    from services.relief.settings import Settings

    parser = argparse.ArgumentParser(description="Execute (or resume) a subsidy run; paying nobody twice.")
    parser.add_argument("run_id")
    parser.add_argument("--by", default="scheduler")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--pause-s", type=float, default=0.0, help="pause between batches, to spare the store")
    args = parser.parse_args()
    settings = Settings()
    mongo = open_mongo(settings)
    try:
        store = ReliefStore(mongo[settings.database_name])
        await store.ensure_indexes()
        result = await execute_run(
            store, args.run_id, by=args.by, batch_size=args.batch_size or settings.run_batch_size, pause_s=args.pause_s
        )
        print(
            f"run {result.run_id}: scanned {result.scanned}, eligible {result.eligible}, "
            f"inserted {result.inserted}, ledger {result.ledger_count}, {result.seconds:.1f} s",
            flush=True,
        )
    finally:
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(_cli())
