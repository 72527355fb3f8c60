"""What a case search asks for and whom it may cover (pure; P6.2, the hotline's handling standardised).

Phone and ID-card numbers are never searched in clear: the search carries their keyed hashes, the same
ones the repeat-caller index files each call under (`caller_keys`). Scope follows the lookup rules: an
operator answers calls from the whole city and looks up any caller, so an operator searches every
district; a district coordinator searches their own district; city-level users and admins every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from common.errors import Forbidden
from common.principal import Principal, Role
from contracts.events.base import BUSINESS_TZ

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class CaseFilter:
    """The filters of one search; every one given must hold (AND). Text filters are substrings."""

    case_id: str | None = None  # a full case number, or its beginning (`CQ-20260215`)
    phone_key: str | None = None
    id_card_key: str | None = None
    name: str | None = None
    address: str | None = None  # the street address or the township
    district: str | None = None
    needs: tuple[str, ...] = ()  # any of them
    statuses: tuple[str, ...] = ()  # the caller-facing status codes, any of them
    emergency: bool | None = None
    received_from: datetime | None = None  # inclusive
    received_before: datetime | None = None  # exclusive
    day: str | None = None  # one Chongqing day received, YYYYMMDD (an equality the store pushes down)

    @property
    def is_empty(self) -> bool:
        return self == CaseFilter()


def day_start(day: date) -> datetime:
    """The start of a Chongqing calendar day."""
    return datetime.combine(day, time(0), tzinfo=BUSINESS_TZ)


def received_range(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """A range of Chongqing calendar days, both included, as `[from, before)` instants."""
    return (day_start(first) if first else None, day_start(last + timedelta(days=1)) if last else None)


def single_day(first: date | None, last: date | None) -> str | None:
    """The day a range of one day names, as case numbers count it (YYYYMMDD)."""
    return first.strftime("%Y%m%d") if first and first == last else None


def scoped_district(principal: Principal, asked: str | None) -> str | None:
    """The district a search is limited to: what was asked for, within what the principal may see.
    A district coordinator searches their district (asking for another one is refused)."""
    if principal.role is Role.OPERATOR or principal.city_level:
        return asked
    if asked and asked != principal.district:
        raise Forbidden(
            f"只能查询本区县（{principal.district}）的案件",
            f"you can search your own district's cases only ({principal.district})",
            field="district",
        )
    return principal.district
