"""The caller index's slot arithmetic and its memory, without a store."""

from __future__ import annotations

import pytest

from services.hotline.callers import CallerMemory, KeyView, _KeyState

pytestmark = pytest.mark.unit


def test_slots_run_through_a_chunk_then_start_the_next() -> None:
    state = _KeyState()
    assert [state.take(3) for _ in range(7)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]


def test_memory_catches_up_with_slots_another_process_wrote() -> None:
    state = _KeyState()
    state.catch_up(KeyView(head=1, cases=("CQ-2", "CQ-1"), filed=5), per_chunk=3)  # slots up to (1, 1) taken
    assert state.take(3) == (1, 2) and state.head == 1
    state.catch_up(KeyView(head=1, cases=("CQ-3",), filed=6), per_chunk=3)  # the last slot of a chunk
    assert state.take(3) == (2, 0)


def test_memory_ahead_of_an_older_read_stays_where_it_is() -> None:
    state = _KeyState(chunk=4, slot=2, head=4)
    state.catch_up(KeyView(head=3, cases=("CQ-1",), filed=40), per_chunk=10)
    assert state.take(10) == (4, 2) and state.head == 4


def test_an_empty_chunk_under_a_raised_head_is_started_at_its_first_slot() -> None:
    state = _KeyState()
    state.catch_up(KeyView(head=5), per_chunk=10)
    assert state.take(10) == (5, 0)


def test_memory_keeps_each_case_once_and_answers_newest_first() -> None:
    memory = CallerMemory()
    memory.note("phone:a", "CQ-20260215-000003")
    memory.merge({CallerMemory.digest("phone:a"): ["CQ-20260215-000002", "CQ-20260215-000003", "CQ-20260215-000001"]})
    memory.note("phone:a", "CQ-20260215-000003")  # e.g. this process's own call, back from the topic
    view = memory.view("phone:a")
    assert memory.ready
    assert view.case_ids(5) == ["CQ-20260215-000003", "CQ-20260215-000002", "CQ-20260215-000001"]
    assert view.case_ids(1) == ["CQ-20260215-000003"]
    assert view.filed == 3 and view.head == 0  # three slots taken; the stored head is not memory's to say
    assert memory.view("phone:b") == KeyView(head=0)


def test_memory_holds_a_one_case_key_as_its_id_and_a_call_s_keys_share_it() -> None:
    """Kept compact (it holds every call ever filed): a key of one case holds the id itself, not a list;
    the keys of one call share one string; a key's second case turns it into a list, each case once."""
    memory = CallerMemory()
    case_id = "".join(["CQ-20260215-", "000001"])  # a string of its own, as one read from the store is
    memory.note("phone:a", case_id)
    memory.note("household:h", case_id)
    held = memory._cases  # the representation is what this test is about
    assert held[CallerMemory.digest("phone:a")] is held[CallerMemory.digest("household:h")] is case_id
    assert all(len(digest) == 16 for digest in held)
    memory.note("phone:a", "CQ-20260215-000002")
    memory.note("phone:a", "CQ-20260215-000002")
    assert held[CallerMemory.digest("phone:a")] == ["CQ-20260215-000001", "CQ-20260215-000002"]
    assert memory.view("household:h").case_ids(5) == ["CQ-20260215-000001"]
    # What a load read (a case once or more, in any order) joins what was noted meanwhile, each case once.
    memory.merge({CallerMemory.digest("phone:a"): ["CQ-20260215-000003", "CQ-20260215-000001", "CQ-20260215-000003"]})
    assert memory.view("phone:a").case_ids(5) == ["CQ-20260215-000003", "CQ-20260215-000002", "CQ-20260215-000001"]
    assert memory.view("household:h").filed == 1
