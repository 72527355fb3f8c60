"""Store helpers that need no store: a write the store refused for a concurrent one (PostgreSQL's deadlock
or serialization failure through FerretDB, MongoDB's write conflict) is retried, other failures are not;
kept events read back typed."""

from datetime import UTC, datetime

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from common.store import busy_retry
from contracts.events.router import CaseSignedFor, CasesMerged
from services.hotline.domain import OtherUpdate
from services.hotline.store import kept_entry, kept_event

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "refusal",
    [
        OperationFailure("ERROR: deadlock detected (SQLSTATE 40P01)"),
        OperationFailure("ERROR: could not serialize access due to concurrent update (SQLSTATE 40001)"),
        OperationFailure("WriteConflict error: this operation conflicted with another operation", code=112),
    ],
)
async def test_a_write_refused_for_a_concurrent_one_is_retried(refusal: OperationFailure) -> None:
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise refusal
        return "done"

    assert await busy_retry(op) == "done" and calls == 3


@pytest.mark.parametrize(
    "failure",
    [DuplicateKeyError("E11000 duplicate key error"), OperationFailure("unknown operator: $foo", code=2)],
)
async def test_other_failures_are_not_retried(failure: OperationFailure) -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise failure

    with pytest.raises(type(failure)):
        await busy_retry(op)
    assert calls == 1


async def test_busy_gives_up_after_the_last_attempt() -> None:
    async def op() -> None:
        raise OperationFailure("ERROR: deadlock detected (SQLSTATE 40P01)")

    with pytest.raises(OperationFailure):
        await busy_retry(op, attempts=2)


def test_events_kept_in_intake_records_read_back_as_their_contract_classes() -> None:
    """What an intake record keeps (the event's JSON, the id it is kept under, its arrival) reads back typed,
    documents written before the events were typed included."""
    merge = CasesMerged(case_id="CQ-20260215-000002", into_case_id="CQ-20260215-000001", actor="w1")
    parent_copy = kept_entry(merge, f"{merge.event_id}:CQ-20260215-000001")
    assert kept_event(parent_copy) == merge
    older = {
        "type": "case.signed_for",
        "case_id": "CQ-20260215-000001",
        "event_id": "0b6c2f0e-5f0c-4f59-9a39-3d0d3f1b2c11",
        "occurred_at": "2026-02-15T08:00:00Z",
        "task_id": "t",
        "actor": "w1",
        "_arrived_at": datetime(2026, 2, 15, 8, 0, 1, tzinfo=UTC),
    }
    assert isinstance(kept_event(older), CaseSignedFor)
    unknown = kept_event({**older, "type": "case.something_new", "event_id": "e-1"})
    assert isinstance(unknown, OtherUpdate) and unknown.type == "case.something_new"
    unfit = kept_event({"type": "grant.proposed", "case_id": "CQ-20260215-000001", "event_id": "g-1"})
    assert isinstance(unfit, OtherUpdate) and unfit.type == "grant.proposed"
