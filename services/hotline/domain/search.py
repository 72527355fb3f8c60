"""What a case search asks for and whom it may cover (pure; P6.2, the hotline's handling standardised).

Phone and ID-card numbers are never searched in clear: the search carries their keyed hashes, the same
ones the repeat-caller index files each call under (`caller_keys`). Scope follows the lookup rules: an
operator answers calls from the whole city and looks up any caller, so an operator searches every
district; a district coordinator searches their own district; city-level users and admins every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from common.errors import Forbidden
from common.principal import Principal, Role
from common.text_terms import normalise_text, query_terms, text_terms
from contracts.events.base import BUSINESS_TZ
from contracts.events.hotline import HelpRequested
from services.hotline.domain.intake import case_day, mask_name, mask_phone
from services.hotline.domain.status import CaseStatus

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


# ---------------------------------------------------------------------------- the search index's entries
#
# Every case has one small entry in the search index, with what a search filters on as top-level fields
# an equality finds (the store's cost model: only equalities are pushed down on FerretDB) and what a result
# row shows, masked. Text is found through terms: every character and pair of characters of the name, the
# address and the township (and every run of 3 to 6 letters or digits, so that a house number is a term of
# its own); a query's terms must all be an entry's, and the text itself is then matched exactly.


def entry_matches(f: CaseFilter, entry: dict[str, Any]) -> bool:
    """Whether a search index entry answers every filter (the store's equalities found the candidates;
    this decides, so that a candidate found by a term alone is never a result by mistake)."""
    checks = (
        not f.case_id or entry["_id"].startswith(f.case_id),
        not f.phone_key or entry.get("phone_key") == f.phone_key,
        not f.id_card_key or entry.get("id_card_key") == f.id_card_key,
        not f.district or entry["district"] == f.district,
        not f.needs or bool(set(f.needs) & set(entry["needs"])),
        not f.statuses or entry["status"] in f.statuses,
        f.emergency is None or entry["emergency"] is f.emergency,
        not f.received_from or entry["at"] >= f.received_from,
        not f.received_before or entry["at"] < f.received_before,
        not f.day or entry["day"] == f.day,
        not f.name or normalise_text(f.name) in entry.get("name", ""),
        not f.address or any(normalise_text(f.address) in entry.get(k, "") for k in ("address", "township")),
    )
    return all(checks)


def newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results in the order a search pages them: newest first, the case number breaking a tie."""
    return sorted(entries, key=lambda e: (e["at"], e["_id"]), reverse=True)


def days_between(days: list[str], f: CaseFilter) -> list[str]:
    """The days (YYYYMMDD) with cases that a filter's received range covers, newest first."""
    first = case_day(f.received_from) if f.received_from else ""
    last = case_day(f.received_before - timedelta(microseconds=1)) if f.received_before else "99999999"
    if f.day:
        first = last = f.day
    return sorted((d for d in set(days) if first <= d <= last), reverse=True)


def search_entry(event: HelpRequested, keys: dict[str, str], status: CaseStatus) -> dict[str, Any]:
    """A case's search index entry: its equality keys (hashes, never a clear number), its text terms,
    and what a result row shows (masked)."""
    place = event.place
    return {
        "_id": event.case_id,
        "at": event.received_at,
        "day": case_day(event.received_at),
        "month": case_day(event.received_at)[:6],
        "district": place.district,
        "needs": list(event.needs),
        "emergency": event.emergency,
        "phone_key": keys.get("phone"),
        "id_card_key": keys.get("id_card"),
        "name": normalise_text(event.caller.name),
        "address": normalise_text(place.address),
        "township": normalise_text(place.township),
        "terms": sorted(
            text_terms("n", event.caller.name or "")
            | text_terms("a", place.address or "")
            | text_terms("a", place.township or "")
        ),
        "caller_name": mask_name(event.caller.name or ""),
        "phone_masked": mask_phone(event.caller.phone or ""),
        **status_fields(status),
    }


TEXT_FIELDS = ("terms", "name", "address", "township")  # what only a search by name or address reads


def status_fields(status: CaseStatus) -> dict[str, Any]:
    """The part of an entry a status change rewrites."""
    return {"status": status.status, "label_zh": status.label_zh, "label_en": status.label_en}


def index_equalities(f: CaseFilter) -> dict[str, Any]:
    """The filters the search index answers by equality (what FerretDB pushes down to PostgreSQL); the
    rest (several needs or statuses, a range, a number's beginning, the text) `entry_matches` decides."""
    query: dict[str, Any] = {}
    if f.case_id and len(f.case_id) == 18:
        query["_id"] = f.case_id
    if f.case_id and len(f.case_id) >= 11:  # `CQ-YYYYMMDD`: the day it was counted in
        query["day"] = f.case_id[3:11]
    if f.day:
        query["day"] = f.day
    single = {
        "phone_key": f.phone_key,
        "id_card_key": f.id_card_key,
        "district": f.district,
        "emergency": f.emergency,
        "needs": f.needs[0] if len(f.needs) == 1 else None,
        "status": f.statuses[0] if len(f.statuses) == 1 else None,
    }
    query.update({field: value for field, value in single.items() if value is not None})
    return query


BOUNDED_BY = ("_id", "day", "phone_key", "id_card_key")  # an equality on one of these finds few entries


def filter_terms(f: CaseFilter) -> list[str]:
    """The text terms a search looks entries up by, the most telling first."""
    return (query_terms("n", f.name) if f.name else []) + (query_terms("a", f.address) if f.address else [])
