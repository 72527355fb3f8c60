"""`common.store.Recent`: what a process stored moments ago, trusted for a bounded time and number."""

from __future__ import annotations

import time

import pytest

from common.store import Recent

pytestmark = pytest.mark.unit


def test_an_entry_is_kept_for_its_time_then_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    recent: Recent[int] = Recent(ttl_s=30, size=10)
    recent.put("a", 1)
    now[0] += 29
    assert recent.get("a") == 1 and recent.many(["a", "b"]) == {"a": 1}
    now[0] += 2
    assert recent.get("a") is None and recent.many(["a"]) == {}


def test_the_oldest_entries_go_beyond_its_size_and_a_dropped_one_is_gone() -> None:
    recent: Recent[str] = Recent(ttl_s=30, size=2)
    for key in ("a", "b", "c"):
        recent.put(key, key.upper())
    assert recent.many(["a", "b", "c"]) == {"b": "B", "c": "C"}
    recent.put("b", "B2")  # stored again: the newest
    recent.put("d", "D")
    assert recent.many(["b", "c", "d"]) == {"b": "B2", "d": "D"}
    recent.drop("b", "x")
    assert recent.get("b") is None and recent.get("d") == "D"
