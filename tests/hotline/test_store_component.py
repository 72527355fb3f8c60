"""The hotline's intake records under concurrent writers (FerretDB applies updates read-then-write)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from contracts.events.router import Assignment, CaseDispatched, Decision
from services.hotline.store import HotlineStore
from tests.hotline.test_outbox_component import help_requested

pytestmark = pytest.mark.component


async def test_events_arriving_at_once_from_several_topics_are_all_kept(db) -> None:
    """Lifecycle, grant and SLA events of one case handled concurrently: none is lost, none doubled."""
    store = HotlineStore(db, pepper="test-pepper")
    case_id = "CQ-20260215-000001"
    await store.claim_intake(help_requested(case_id))
    bodies = [{"type": "grant.proposed", "case_id": case_id, "n": i} for i in range(12)]
    kept = await asyncio.gather(
        *(store.record_event(case_id, b, event_id=f"e-{i}") for i, b in enumerate(bodies)),
        *(store.record_event(case_id, bodies[0], event_id="e-0") for _ in range(4)),
    )
    assert sum(kept) == 12  # each event once; the four redeliveries of e-0 change nothing
    intake = await store.get_intake(case_id)
    assert sorted(e["event_id"] for e in intake["events"]) == sorted(f"e-{i}" for i in range(12))


async def test_status_refreshed_while_events_arrive_loses_no_event(db) -> None:
    store = HotlineStore(db, pepper="test-pepper")
    case_id = "CQ-20260215-000002"
    await store.claim_intake(help_requested(case_id))
    dispatched = CaseDispatched(
        case_id=case_id,
        district="500103",
        lead=Assignment(department="civil_affairs", district="500103", role="lead"),
        needs=("other",),
        sla_class="standard",
        decision=Decision(rule_ids=("R-FALLBACK",)),
        occurred_at=datetime.now(UTC),
    )
    await asyncio.gather(
        store.record_event(case_id, dispatched.model_dump(mode="json"), event_id=str(dispatched.event_id)),
        *(store.refresh_status(case_id) for _ in range(5)),
        *(
            store.record_event(case_id, {"type": "grant.proposed", "case_id": case_id}, event_id=f"g-{i}")
            for i in range(5)
        ),
    )
    status = await store.refresh_status(case_id)
    intake = await store.get_intake(case_id)
    assert len(intake["events"]) == 6
    assert status is not None and status.status == "dispatched"
    assert intake["status"]["status"] == "dispatched"
