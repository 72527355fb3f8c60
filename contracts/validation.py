"""Validators shared by every service: resident ID-card numbers (GB 11643), Chinese phone numbers, and the
bounds of the times and amounts people enter.

Each `normalise_*` returns the canonical form (used for storage and lookup keys) or raises `ValueError`
with a message written "中文原因 | English reason", which the HTTP layer turns into reason_zh/reason_en.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

# GB 11643-1999: weights of the first 17 digits; the check character is CHECK_CODES[sum % 11].
ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK_CODES = "10X98765432"
# First two digits: the province-level division (GB/T 2260); 11 Beijing ... 50 Chongqing ... 82 Macao.
_PROVINCES = frozenset(
    {
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
        71,
        81,
        82,
    }
)
_ID_CARD_SHAPE = re.compile(r"^\d{17}[\dX]$")

# Mobile: 11 digits starting 13-19. Landline: area code 0 + 2-3 digits, then a 7-8 digit local number.
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Three-digit area codes are 010 and 020-029; every other area code has four digits.
_LANDLINE = re.compile(r"^(010|02\d|0[3-9]\d{2})([2-9]\d{6,7})$")
_LOCAL = re.compile(r"^[2-9]\d{7}$")
CHONGQING_AREA_CODE = "023"


def id_card_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, ID_CARD_WEIGHTS, strict=True))
    return ID_CARD_CHECK_CODES[total % 11]


def normalise_id_card(raw: str, *, today: date | None = None) -> str:
    """An 18-character resident ID-card number, upper-case X, checked (shape, region, birth date, checksum)."""
    value = re.sub(r"\s+", "", raw or "").upper()
    if not _ID_CARD_SHAPE.match(value):
        raise ValueError("身份证号码应为18位，最后一位可为X | an ID-card number has 18 characters, the last may be X")
    if int(value[:2]) not in _PROVINCES:
        raise ValueError("身份证号码的地区码无效 | the ID-card number's region code is not valid")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("身份证号码中的出生日期无效 | the ID-card number's birth date is not a real date") from None
    if born > (today or date.today()) or born.year < 1890:
        raise ValueError("身份证号码中的出生日期不合理 | the ID-card number's birth date is out of range")
    if id_card_check_char(value[:17]) != value[17]:
        raise ValueError("身份证号码校验位不正确（GB 11643） | the ID-card number's check digit is wrong (GB 11643)")
    return value


def normalise_phone(raw: str) -> str:
    """A mobile number as 11 digits, a landline as `area-local` (e.g. `023-63891234`).

    Spaces, dashes, brackets and a +86/0086 prefix are forgiven; an 8-digit local number without area
    code is taken as a Chongqing (023) landline.
    """
    value = re.sub(r"[\s\-()（）]", "", raw or "")
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    if not value.isdigit():
        raise ValueError("电话号码只能包含数字 | a phone number may contain only digits")
    if _MOBILE.match(value):
        return value
    if m := _LANDLINE.match(value):
        return f"{m.group(1)}-{m.group(2)}"
    if _LOCAL.match(value):
        return f"{CHONGQING_AREA_CODE}-{value}"
    if value.startswith("1"):
        raise ValueError("手机号码应为11位，以13-19开头 | a mobile number has 11 digits starting 13-19")
    raise ValueError(
        "电话号码格式不正确：手机11位，或座机“区号-号码” | not a phone number: 11-digit mobile, or landline "
        "'area code-number'"
    )


# ------------------------------------------------------------------------ times and money people enter
# Rule data: how far from now a time someone enters may lie. A time something happened (a warm transfer,
# a follow-up call) is not in the future (a few minutes of clock skew forgiven) and not older than
# `RECORDED_TIME_PAST`; where the case is known it is not before the case was received either
# (`check_not_before`). A deadline someone sets (a co-handler's due time) is not in the past and not
# further ahead than `DUE_TIME_AHEAD`.
RECORDED_TIME_PAST = timedelta(days=7)
RECORDED_TIME_AHEAD = timedelta(minutes=5)
DUE_TIME_AHEAD = timedelta(days=366)
# Money people enter: yuan, never negative, at most two decimals and at most `MAX_YUAN` (far above any
# grant or standard the notice knows; it keeps arithmetic exact and finite).
MAX_YUAN = Decimal("10000000.00")


def _local(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="minutes")


def check_recorded_time(value: datetime, *, now: datetime | None = None) -> datetime:
    """A time something happened: within `RECORDED_TIME_PAST` before now and not in the future."""
    now = now or datetime.now(UTC)
    if value > now + RECORDED_TIME_AHEAD:
        raise ValueError(f"时间不能晚于现在（{_local(value)}） | the time is in the future ({_local(value)})")
    if value < now - RECORDED_TIME_PAST:
        days = RECORDED_TIME_PAST.days
        raise ValueError(
            f"时间不能早于{days}天前（{_local(value)}） | the time is more than {days} days ago ({_local(value)})"
        )
    return value


def check_due_time(value: datetime, *, now: datetime | None = None) -> datetime:
    """A deadline someone sets: not in the past and within `DUE_TIME_AHEAD` from now."""
    now = now or datetime.now(UTC)
    if value <= now:
        raise ValueError(f"期限不能早于现在（{_local(value)}） | the due time is in the past ({_local(value)})")
    if value > now + DUE_TIME_AHEAD:
        days = DUE_TIME_AHEAD.days
        raise ValueError(
            f"期限不能晚于{days}天后（{_local(value)}） | the due time is more than {days} days ahead ({_local(value)})"
        )
    return value


def check_not_before(value: datetime, earliest: datetime, *, what_zh: str, what_en: str) -> datetime:
    """A time that cannot precede another (e.g. a follow-up call before the case was received)."""
    if earliest.tzinfo is None:  # the store gives back naive UTC
        earliest = earliest.replace(tzinfo=UTC)
    if value < earliest:
        raise ValueError(
            f"时间不能早于{what_zh}（{_local(earliest)}） | the time is before {what_en} ({_local(earliest)})"
        )
    return value


RecordedTime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: check_recorded_time(v)),
    Field(description="when it happened: not in the future, at most 7 days ago"),
]
DueTime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: check_due_time(v)),
    Field(description="a deadline: after now, at most 366 days ahead"),
]
Yuan = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_YUAN,
        decimal_places=2,
        allow_inf_nan=False,
        description=f"yuan: not negative, at most two decimals, at most {MAX_YUAN}",
    ),
]
