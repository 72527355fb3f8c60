"""Money: yuan as `Decimal` with exactly two places (fen), never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def yuan(value: Decimal | str | int) -> Decimal:
    """A yuan amount rounded half-up to the fen; rejects floats (binary fractions are not money)."""
    if isinstance(value, float):
        raise TypeError("amounts must be Decimal, str or int, not float")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def has_at_most_two_places(value: Decimal) -> bool:
    return value == value.quantize(FEN)


def to_fen(amount: Decimal) -> int:
    """Integer fen, stored beside the string so the store can sum amounts exactly."""
    return int(yuan(amount) * 100)


def as_str(amount: Decimal) -> str:
    return str(yuan(amount))
