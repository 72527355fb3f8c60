"""A `finished` filter, as the write path decides it for the stamp the archiver looks for
(`common.aggregates.matches`): as the store would, or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.aggregates import Aggregates, Codec, matches

pytestmark = pytest.mark.unit


def test_a_finished_filter_is_decided_as_the_store_would_and_an_unknown_operator_is_refused() -> None:
    hotline = {"status_code": {"$in": ["resolved", "closed"]}, "awaiting_callback": False}
    assert matches(hotline, {"status_code": "resolved", "awaiting_callback": False})
    assert not matches(hotline, {"status_code": "resolved", "awaiting_callback": True})
    assert not matches(hotline, {"status_code": "dispatched", "awaiting_callback": False})
    notify: dict[str, object] = {"status": {"$in": ["closed"]}, "next_due_at": None, "scheduled": []}
    assert matches(notify, {"status": "closed", "scheduled": []})  # None: null or missing
    assert not matches(notify, {"status": "closed", "next_due_at": old_enough(), "scheduled": []})
    assert not matches(notify, {"status": "closed", "next_due_at": None, "scheduled": [{"kind": "visit"}]})
    relief = {"evaluation": {"$ne": None}, "kind": {"$nin": ["test"]}}
    assert matches(relief, {"evaluation": {"eligible": True}, "kind": "grant"})
    assert not matches(relief, {"kind": "grant"}) and not matches(relief, {"evaluation": {}, "kind": "test"})
    for unknown in ({"at": {"$lt": 3}}, {"a.b": 1}, {"$or": [{"a": 1}]}):
        with pytest.raises(ValueError):
            matches(unknown, {})
    with pytest.raises(ValueError, match=r"\$gt"):
        Aggregates(None, None, Codec(load=dict, dump=dict), finished={"status": {"$gt": "a"}})  # type: ignore[arg-type]


def old_enough() -> datetime:
    return datetime.now(UTC) - timedelta(days=30)
