"""The e2e benchmark's history: relief's grants decided by its officers, in memory, with no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pymongo import AsyncMongoClient

from benchmarks.e2e.history import NOTIFY_FINISHED, REJECTION, HistoryBuilder
from common.aggregates import matches
from services.hotline.store import kept_entries

pytestmark = pytest.mark.unit

CASES = 35  # five rounds of the history's needs


async def built() -> tuple[HistoryBuilder, dict[str, datetime], list[dict]]:
    client: AsyncMongoClient = AsyncMongoClient("mongodb://127.0.0.1:9/", connect=False)  # only named, never used
    builder = HistoryBuilder(client["h"], client["r"], client["n"])
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    received, intakes = {}, []
    for i in range(CASES):
        at = start + timedelta(hours=5 * i)
        _, intake = await builder.case(i, at, i + 1)
        received[intake["_id"]] = at
        intakes.append(intake)
    return builder, received, intakes


async def test_every_proposal_is_decided_through_relief_and_its_events_reach_notify_and_the_hotline() -> None:
    builder, received, intakes = await built()
    grants = builder.relief_memory.entitlements
    ledger = builder.relief_memory.ledger
    assert grants and {g["status"] for g in grants.values()} == {"approved", "paid", "rejected"}
    published: dict[str, list[str]] = {}  # the grant events each grant should have published, in order
    for gid, grant in grants.items():
        at = received[grant["case_id"]]
        actions = [d["action"] for d in grant["decisions"]]
        assert all(at <= d["at"] <= at + timedelta(days=2) for d in grant["decisions"]), gid  # the history's times
        if grant["status"] == "rejected":
            assert actions == ["proposed", "rejected"] and grant["decisions"][-1]["note"] == REJECTION
            published[gid] = ["grant.proposed", "grant.rejected"]
        elif grant["rule_id"] == "P5.1":  # a dibao review: approved, its allowance paid by the month's run
            assert grant["status"] == "approved" and actions == ["proposed", "approved", "paid_by_run"]
            assert grant["paid_periods"] == [grant["approved_on"][:7]]  # its month
            published[gid] = ["grant.proposed", "grant.approved", "grant.paid"]
        else:  # a one-time grant: approved (by two officers above the four-eyes threshold) and paid once
            four_eyes = Decimal(grant["amount"]) > Decimal(grant["four_eyes_above"])
            signed = ["signed_pending_second_approval"] if four_eyes else []
            assert grant["status"] == "paid" and actions == ["proposed", *signed, "approved", "paid"]
            assert len(set(grant["signed_by"])) == (2 if four_eyes else 1)
            assert grant["paid_periods"] == ["once"]
            assert ledger[f"{grant['case_id']}|{grant['rule_id']}|once"]["amount"] == grant["amount"]
            published[gid] = ["grant.proposed", *(["grant.proposed"] if four_eyes else []), "grant.approved"]
            published[gid].append("grant.paid")
    statuses = [g["status"] for g in grants.values()]
    assert statuses.count("rejected") < len(statuses) / 2
    assert any(len(g["signed_by"]) == 2 for g in grants.values())
    assert len(ledger) == statuses.count("paid")

    # Every grant event reached the hotline's intake record in time order, and notify: each approval's
    # payment clock opened and ended paid, no timer left.
    for intake in intakes:
        case_id = intake["_id"]
        kept = kept_entries(intake)  # packed, as the hotline's write path keeps them
        times = [datetime.fromisoformat(e["occurred_at"]) for e in kept]
        assert times == sorted(times)
        mine = [gid for gid, g in grants.items() if g["case_id"] == case_id]
        for gid in mine:
            assert [e["type"] for e in kept if e.get("grant_id") == gid] == published[gid]
        clocks = builder.notify.cases[case_id].state.payments
        approved = {gid for gid in mine if "grant.approved" in published[gid]}
        assert {c.key for c in clocks} == {f"payment:{gid}" for gid in approved}
        assert all(c.end_reason == "paid" for c in clocks)
    assert not builder.notify.live_timers
    notify_cases, _ = builder.notify.drain()
    assert all(matches(NOTIFY_FINISHED, doc) for doc in notify_cases)
