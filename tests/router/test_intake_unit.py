"""Help-request intake batches: a bad record or an undispatchable request never blocks the others."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faststream.exceptions import NackMessage
from pymongo.errors import AutoReconnect

from common.consumer import DeliveryPolicy
from contracts.events.hotline import HelpRequested
from services.router.cases import BatchOutcome
from services.router.intake import handle_batch
from tests.support.events import help_requested

pytestmark = pytest.mark.unit


class Policy(DeliveryPolicy):
    """Two attempts without backoff; dead letters are kept here instead of sent."""

    def __init__(self) -> None:
        super().__init__("router", max_attempts=2, backoff_initial_s=0, backoff_max_s=0)
        self.dead: list[tuple[bytes, str]] = []

    async def dead_letter(self, record: Any, exc: BaseException, attempts: int) -> None:
        self.dead.append((record.key, type(exc).__name__))


class Service:
    """Dispatches requests unless a batch holds the poisoned case (or the store is down)."""

    def __init__(self, poisoned: str = "", down: bool = False, taken: str = "") -> None:
        self.poisoned, self.down, self.taken = poisoned, down, taken
        self.dispatched: list[str] = []

    async def dispatch_requests(self, requests: list[HelpRequested]) -> BatchOutcome:
        if self.down:
            raise AutoReconnect("store down")
        if any(r.case_id == self.poisoned for r in requests):
            raise RuntimeError("cannot route this one")
        outcome = BatchOutcome()
        for r in requests:
            if r.case_id == self.taken:
                outcome.conflicts[str(r.event_id)] = f"case id {r.case_id} already belongs to another request"
            else:
                self.dispatched.append(r.case_id)
                outcome.created += 1
        return outcome


def record(case_id: str, value: bytes | None = None) -> SimpleNamespace:
    body = value if value is not None else help_requested(case_id, "other").model_dump_json().encode()
    return SimpleNamespace(key=case_id.encode(), value=body, topic="t", partition=0, offset=0, headers=[])


async def test_an_invalid_record_is_dead_lettered_and_the_rest_dispatched() -> None:
    policy, service = Policy(), Service()
    records = (record("CQ-20260215-000001"), record("bad", b"{not json"), record("CQ-20260215-000002"))
    assert await handle_batch(service.dispatch_requests, policy, records) == 2
    assert policy.dead == [(b"bad", "ValidationError")]
    assert service.dispatched == ["CQ-20260215-000001", "CQ-20260215-000002"]


async def test_a_request_that_cannot_be_dispatched_is_found_and_dead_lettered() -> None:
    policy, service = Policy(), Service(poisoned="CQ-20260215-000002")
    records = tuple(record(f"CQ-20260215-00000{i}") for i in (1, 2, 3))
    assert await handle_batch(service.dispatch_requests, policy, records) == 2
    assert policy.dead == [(b"CQ-20260215-000002", "RuntimeError")]
    assert service.dispatched == ["CQ-20260215-000001", "CQ-20260215-000003"]


async def test_a_store_outage_redelivers_the_batch_instead_of_dropping_it() -> None:
    policy = Policy()
    with pytest.raises(NackMessage):
        await handle_batch(Service(down=True).dispatch_requests, policy, (record("CQ-20260215-000001"),))
    assert policy.dead == []


async def test_a_different_request_reusing_a_case_id_is_dead_lettered_not_dispatched() -> None:
    policy, service = Policy(), Service(taken="CQ-20260215-000001")
    records = (record("CQ-20260215-000001"), record("CQ-20260215-000002"))
    assert await handle_batch(service.dispatch_requests, policy, records) == 1
    assert policy.dead == [(b"CQ-20260215-000001", "CaseIdConflict")]


async def test_a_store_error_that_is_not_a_lost_connection_still_redelivers_and_dead_letters_nothing() -> None:
    from pymongo.errors import OperationFailure

    class Busy(Service):
        async def dispatch_requests(self, requests: list[HelpRequested]) -> BatchOutcome:
            raise OperationFailure("database is locked")

    policy = Policy()
    with pytest.raises(NackMessage):
        await handle_batch(
            Busy().dispatch_requests, policy, (record("CQ-20260215-000001"), record("CQ-20260215-000002"))
        )
    assert policy.dead == []
