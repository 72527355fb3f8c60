"""Store helpers that need no store: FerretDB's SQLITE_BUSY is retried, other failures are not."""

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from common.store import busy_retry

pytestmark = pytest.mark.unit


async def test_a_write_refused_with_sqlite_busy_is_retried() -> None:
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OperationFailure("database is locked (5) (SQLITE_BUSY)")
        return "done"

    assert await busy_retry(op) == "done" and calls == 3


async def test_other_failures_are_not_retried() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise DuplicateKeyError("E11000 duplicate key error")

    with pytest.raises(DuplicateKeyError):
        await busy_retry(op)
    assert calls == 1


async def test_busy_gives_up_after_the_last_attempt() -> None:
    async def op() -> None:
        raise OperationFailure("SQLITE_BUSY")

    with pytest.raises(OperationFailure):
        await busy_retry(op, attempts=2)
