"""What notify archives (`store.FINISHED`), which counters skip the archive (`store.OPEN_ONLY`), and how a
view's rows of both collections are merged (`store.merged_rows`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.events.hotline import CallbackRecorded, CaseReopened
from contracts.events.relief import GrantApproved, GrantPaid
from contracts.events.router import CaseClosed, CasesMerged
from services.notify.domain.case import CaseState, apply, timers
from services.notify.domain.policy import load_policy
from services.notify.domain.summary import summary
from services.notify.store import FINISHED, OPEN_ONLY, _open_only, merged_rows
from tests.support.events import dispatched, new_case_id, resolved, signed

pytestmark = pytest.mark.unit
POLICY = load_policy()
NOW = datetime.now(UTC)


def stored(state: CaseState) -> dict[str, Any]:
    """The fields of the case document the archive filter reads, as the write path stores them (`scheduled`:
    the timers the state calls for)."""
    return {**summary(state), "scheduled": [{"id": t.id} for t in timers(state, POLICY)]}


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """The filter's operators as the store applies them (equality, `$in`; None matches a missing field)."""
    for name, want in query.items():
        have = doc.get(name)
        if isinstance(want, dict) and "$in" in want:
            if have not in want["$in"]:
                return False
        elif have != want:
            return False
    return True


def folded(*events: Any) -> CaseState:
    state: CaseState | None = None
    for event in events:
        state = apply(state, event, POLICY)
    assert state is not None
    return state


def grant(case_id: str, kind: type, **fields: Any) -> Any:
    return kind(case_id=case_id, grant_id=f"G-{case_id}", rule_id="P5.2a", district="500103", **fields)


def test_finished_cases_are_resolved_closed_or_merged_with_no_deadline_or_timer_left() -> None:
    cid = new_case_id()
    start = NOW - timedelta(days=2)
    opened = folded(dispatched(cid, at=start), signed(cid, at=start + timedelta(minutes=5)))
    done = apply(opened, resolved(cid, at=start + timedelta(days=1)), POLICY)
    called_back = apply(done, CallbackRecorded(case_id=cid, operator_id="op", satisfaction="satisfied"), POLICY)
    closed = apply(called_back, CaseClosed(case_id=cid, actor="router"), POLICY)
    merged = apply(opened, CasesMerged(case_id=cid, actor="router", into_case_id=new_case_id()), POLICY)
    reopened = apply(done, CaseReopened(case_id=cid, operator_id="op", reason="不满意"), POLICY)
    paying = apply(done, grant(cid, GrantApproved, amount_yuan=Decimal("500"), approved_on=date.today()), POLICY)
    paid = apply(paying, grant(cid, GrantPaid, amount_yuan=Decimal("500"), payment_reference="P-1"), POLICY)

    for state in (done, called_back, closed, merged, paid):
        assert matches(stored(state), FINISHED), state.status
    for state in (opened, reopened, paying):  # a clock still runs: a deadline, and timers for it
        doc = stored(state)
        assert not matches(doc, FINISHED), state.status
        assert doc["next_due_at"] is not None and doc["scheduled"]
    # What the archive never holds: a case an open-only counter counts.
    for state in (done, called_back, closed, merged, paid):
        doc = stored(state)
        assert doc["m_open"] == doc["m_res_pending"] == 0
        assert all(c["m_sign_pending"] == 0 for c in doc["dept_clocks"])
    assert stored(opened)["m_open"] == 1 and stored(reopened)["m_res_pending"] == 1


def test_only_counters_of_open_cases_skip_the_archive() -> None:
    assert OPEN_ONLY == ("m_open", "m_res_pending", "dept_clocks.m_sign_pending")
    assert _open_only("$m_open")
    assert _open_only(1, {"m_res_pending": 1, "due_at": {"$lte": NOW}})
    assert _open_only(1, None, {"dept_clocks.m_sign_pending": 1})
    assert not _open_only("$m_res_on_time", {})
    assert not _open_only("$m_cb")
    assert not _open_only(1, {"district": "500103"}, None)
    assert not _open_only("$dept_clocks.m_sign_on_time", {"dept_clocks.sign_decided_on": {"$gte": "2026-01-01"}})


def row(case_id: str, due: datetime | None = None, updated: datetime | None = None) -> dict[str, Any]:
    return {"_id": case_id, "next_due_at": due, "updated_at": updated or NOW}


def test_rows_of_both_collections_merge_in_the_stores_order_and_once() -> None:
    late, later = row("CQ-1", NOW - timedelta(hours=2)), row("CQ-2", NOW + timedelta(hours=1))
    none_working, none_archived = row("CQ-5"), row("CQ-3")
    back = row("CQ-4")  # brought back, its archived copy not yet deleted: in both
    working = [none_working, back, late, later]  # as the store sorts: no deadline first, then by deadline
    archived = [none_archived, row("CQ-4", updated=NOW - timedelta(days=9))]
    rows = merged_rows(working, archived, "lateness", 10)
    assert [r["_id"] for r in rows] == ["CQ-3", "CQ-4", "CQ-5", "CQ-1", "CQ-2"]
    assert rows[1] is back  # the working set's copy
    assert [r["_id"] for r in merged_rows(working, archived, "lateness", 2)] == ["CQ-3", "CQ-4"]

    fresh = row("CQ-7", updated=NOW)
    old = row("CQ-8", updated=NOW - timedelta(days=30))  # open, unchanged for a month
    archived_recent = row("CQ-9", updated=NOW - timedelta(days=8))
    recent = merged_rows([fresh, old], [archived_recent], "recent", 2)
    assert [r["_id"] for r in recent] == ["CQ-7", "CQ-9"]  # an archived case newer than a full page's last
