"""The bounds of the times and amounts people enter (contracts.validation), shared by every service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from common.http_errors import field_checked, validation_reply
from contracts.validation import (
    DUE_TIME_AHEAD,
    MAX_YUAN,
    RECORDED_TIME_PAST,
    DueTime,
    RecordedTime,
    Yuan,
    check_not_before,
)

pytestmark = pytest.mark.unit


class Body(BaseModel):
    at: RecordedTime | None = None
    due_at: DueTime | None = None
    amount: Yuan | None = None


def reasons(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Body.model_validate(fields)
    reply = validation_reply([dict(e) for e in caught.value.errors()])
    return {e["field"]: f"{e['reason_zh']} | {e['reason_en']}" for e in reply["errors"]}


def test_a_recorded_time_is_neither_in_the_future_nor_from_another_age() -> None:
    now = datetime.now(UTC)
    assert Body(at=now - timedelta(hours=1)).at == now - timedelta(hours=1)
    assert "the time is more than 7 days ago" in reasons(at="0073-05-01T00:00:00Z")["at"]
    assert "the time is more than 7 days ago" in reasons(at=(now - RECORDED_TIME_PAST - timedelta(minutes=1)))["at"]
    assert "the time is in the future" in reasons(at="2122-01-01T00:00:00+08:00")["at"]
    assert "时间不能晚于现在" in reasons(at=now + timedelta(hours=1))["at"]


def test_a_due_time_is_ahead_but_not_too_far() -> None:
    now = datetime.now(UTC)
    assert Body(due_at=now + timedelta(days=3)).due_at
    assert "the due time is in the past" in reasons(due_at="2000-01-01T00:00:00Z")["due_at"]
    assert "days ahead" in reasons(due_at=now + DUE_TIME_AHEAD + timedelta(days=1))["due_at"]


@pytest.mark.parametrize("raw", ["1e30", "1e20", 1e20, "NaN", "Infinity", "-0.01", "12.345", "10000000.01"])
def test_an_amount_out_of_bounds_is_refused_by_its_field_never_an_arithmetic_error(raw: object) -> None:
    assert "amount" in reasons(amount=raw)


def test_an_amount_up_to_the_maximum_with_two_decimals_is_taken() -> None:
    assert Body(amount=MAX_YUAN).amount == MAX_YUAN
    assert Body.model_validate({"amount": "1240.50"}).amount == Decimal("1240.50")


def test_a_time_before_the_case_was_received_is_a_field_error_of_the_request() -> None:
    received = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
    check_not_before(received, received.replace(tzinfo=None), what_zh="受理", what_en="the case was received")
    with pytest.raises(RequestValidationError) as caught:
        field_checked(
            ("body", "at"),
            lambda: check_not_before(
                received - timedelta(minutes=1), received, what_zh="案件受理时间", what_en="the case was received"
            ),
        )
    (error,) = validation_reply(list(caught.value.errors()))["errors"]
    assert error["field"] == "at" and error["reason_en"].startswith("the time is before the case was received")
    assert error["reason_zh"].startswith("时间不能早于案件受理时间")
