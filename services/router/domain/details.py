"""Who and where: what a department worker needs to act on a case (P2.2, P2.3, P6.2), and the rules that
keep the caller's personal fields masked until a worker who may see the case reveals them with a reason.

The router keeps two things from a help request beyond the routing facts:
- `CaseDetails`, the clear record (the caller's name and phone, the place, the needs' answers, the
  emergency reasons, the full description), stored once, apart from the case;
- `MaskedContact`, a few masked characters (李*, 138****5678, the start of the address) inside the case,
  so a queue row shows who and where without a second read and without anything in clear.
Phone and ID-card numbers are also kept as keyed hashes (`lookup_keys`) to find the caller's earlier cases.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.principal import Principal, Role
from contracts.events.hotline import HelpRequested
from services.router.domain.errors import not_your_district

if TYPE_CHECKING:
    from services.router.domain.case import Case

ADDRESS_SHOWN = 6  # characters of the address a masked view keeps (district and township are shown whole)
# What a reveal shows in clear; the audit record names them (P6.3).
REVEALED_FIELDS: tuple[str, ...] = ("caller_name", "caller_phone", "address")
RevealedField = Literal["caller_name", "caller_phone", "address"]


class PlaceDetails(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    district: str
    township: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class CaseDetails(BaseModel):
    """The clear record of a help request a worker acts on. Never logged; read in clear only by a reveal."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    caller_name: str
    caller_phone: str
    place: PlaceDetails
    attributes: dict[str, str | float | list[str]] = Field(default_factory=dict)
    emergency_reasons: tuple[str, ...] = ()
    description: str = ""
    consents_to_texts: bool = False

    @classmethod
    def of(cls, request: HelpRequested) -> CaseDetails:
        place = request.place
        return cls(
            caller_name=request.caller.name,
            caller_phone=request.caller.phone,
            place=PlaceDetails(
                district=place.district,
                township=place.township,
                address=place.address,
                latitude=place.latitude,
                longitude=place.longitude,
            ),
            attributes=dict(request.attributes),
            emergency_reasons=request.emergency_reasons,
            description=request.description,
            consents_to_texts=request.caller.consents_to_texts,
        )


class MaskedContact(BaseModel):
    """Who and where, masked: what a queue row and a case view show before a reveal."""

    model_config = ConfigDict(extra="ignore")

    name: str
    phone: str
    district: str
    township: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, details: CaseDetails) -> MaskedContact:
        return cls(
            name=mask_name(details.caller_name),
            phone=mask_phone(details.caller_phone),
            district=details.place.district,
            township=details.place.township,
            address=mask_address(details.place.address),
        )


def mask_name(name: str) -> str:
    """The family name and a star per other character: 李四 -> 李*, 欧阳娜娜 -> 欧***; a Latin name keeps
    its first letter (Li Si -> L****)."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str) -> str:
    """The first three and last four digits of a mobile: 13812345678 -> 138****5678; a shorter number
    keeps only its last two digits. China's country code is left out (+86 138… shows as 138****…)."""
    digits = normal_phone(phone)
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) > 2:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def mask_address(address: str | None) -> str | None:
    """The start of the address (enough to know the street), the rest cut: 解放碑地下通道3号口 -> 解放碑地下通…"""
    if not address:
        return address
    address = address.strip()
    return address if len(address) <= ADDRESS_SHOWN else address[:ADDRESS_SHOWN] + "…"


def normal_phone(phone: str) -> str:
    """Digits only, without China's country code: +86 138-1234-5678 and 13812345678 are one caller."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def lookup_keys(phone: str | None, id_card: str | None, pepper: bytes) -> tuple[str, ...]:
    """Keyed hashes (HMAC-SHA256 with the router's pepper) of the caller's phone and ID card: what earlier
    cases are found by, without either number being stored in clear (P2.3: discover repeat hardship)."""
    keys: list[str] = []
    if phone and (digits := normal_phone(phone)):
        keys.append("p:" + hmac.new(pepper, b"phone:" + digits.encode(), hashlib.sha256).hexdigest())
    if id_card and (card := id_card.strip().upper()):
        keys.append("i:" + hmac.new(pepper, b"id_card:" + card.encode(), hashlib.sha256).hexdigest())
    return tuple(keys)


def may_see(case: Case, who: Principal) -> None:
    """Who may see a case's details and reveal its caller: a worker whose department has a task in the
    case in its district; a coordinator of the case's district (or city level). Raises Forbidden."""
    if who.role is Role.DEPT_WORKER:
        if any(t.department == who.department and t.district == who.district for t in case.tasks):
            return
    elif who.role is Role.COORDINATOR and who.can_see_district(case.district):
        return
    raise not_your_district(case.case_id)


def may_list_reveals(case: Case, who: Principal) -> str | None:
    """Who may read a case's reveal records: coordinators of its district and admins (every record), a
    worker of a department with a task in it (their department's records). Returns the department whose
    records are listed, None for all; raises Forbidden."""
    if who.role is Role.ADMIN:
        return None
    may_see(case, who)
    return who.department if who.role is Role.DEPT_WORKER else None


class RevealRecord(BaseModel):
    """One reveal of a case's personal fields: who, when, why, which case, which fields (append-only)."""

    model_config = ConfigDict(frozen=True)

    reveal_id: str
    case_id: str
    at: datetime
    who: str  # the principal as records name them (`shown_as`)
    sub: str
    role: str
    department: str | None
    district: str | None
    reason: str
    fields: tuple[RevealedField, ...]


def reveal_record(case: Case, who: Principal, reason: str, reveal_id: str, now: datetime) -> RevealRecord:
    """The audit record of `who` revealing the caller of `case` (after `may_see`)."""
    return RevealRecord(
        reveal_id=reveal_id,
        case_id=case.case_id,
        at=now,
        who=who.shown_as,
        sub=who.sub,
        role=who.role.value,
        department=who.department,
        district=who.district,
        reason=reason,
        fields=REVEALED_FIELDS,
    )
