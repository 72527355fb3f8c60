"""ID-card (GB 11643) and phone validation, shared in contracts/validation.py."""

from datetime import date

import pytest

from contracts.validation import id_card_check_char, normalise_id_card, normalise_phone

pytestmark = pytest.mark.unit


def test_gb11643_check_digit_of_the_standard_example() -> None:
    assert id_card_check_char("11010519491231002") == "X"
    assert normalise_id_card("11010519491231002x") == "11010519491231002X"


def test_id_card_with_a_wrong_check_digit_is_refused_in_both_languages() -> None:
    with pytest.raises(ValueError) as err:
        normalise_id_card("110105194912310021")
    zh, en = str(err.value).split("|")
    assert "校验位" in zh and "check digit" in en


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("1101051949123100", "18"),  # too short
        ("990105194912310023", "region"),  # no province 99
        ("110105194902300021", "birth date"),  # 30 February
        ("110105209912310021", "birth date"),  # born in the future
    ],
)
def test_id_card_shape_region_and_birth_date_are_checked(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_id_card(raw, today=date(2026, 2, 15))


def test_a_valid_chongqing_id_card_passes() -> None:
    first17 = "50010319800101123"
    assert normalise_id_card(first17 + id_card_check_char(first17)) == first17 + id_card_check_char(first17)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("023-63891234", "023-63891234"),
        ("(023) 6389 1234", "023-63891234"),
        ("63891234", "023-63891234"),  # a local number is a Chongqing landline
        ("010-62345678", "010-62345678"),
        ("0571-87654321", "0571-87654321"),
    ],
)
def test_phone_numbers_are_forgiven_and_normalised(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "1381234567", "12812345678", "abc", "12345", "023-12"])
def test_bad_phone_numbers_are_refused_with_a_bilingual_reason(raw: str) -> None:
    with pytest.raises(ValueError) as err:
        normalise_phone(raw)
    assert "|" in str(err.value)
