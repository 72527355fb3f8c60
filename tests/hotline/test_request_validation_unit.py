"""An operator's request is checked whole: every bad field, the needs' attributes included, in one reply."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.hotline.schemas import HelpRequestIn, PlaceIn

pytestmark = pytest.mark.unit


def fields_refused(model: type[HelpRequestIn] | type[PlaceIn], body: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as err:
        model.model_validate(body)
    return {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}


def test_a_missing_required_attribute_is_reported_with_the_callers_missing_name_and_phone() -> None:
    body = {"caller": {"name": "", "phone": ""}, "place": {"district": "500103"}, "needs": ["temp_assist_unemployed"]}
    assert fields_refused(HelpRequestIn, body) == {
        "caller.name",
        "caller.phone",
        "attributes.months_without_income",
    }


def test_a_months_value_refused_on_its_own_is_not_also_reported_missing() -> None:
    body = {
        "caller": {"name": "王五", "phone": "13812345678"},
        "place": {"district": "500103"},
        "needs": ["temp_assist_unemployed"],
        "months_without_income": -1,
    }
    assert fields_refused(HelpRequestIn, body) == {"months_without_income"}


def test_coordinates_going_together_is_checked_with_the_other_place_fields() -> None:
    assert fields_refused(PlaceIn, {"district": "999999", "latitude": 29.5}) == {"district", "longitude"}


def test_a_valid_request_types_its_attributes() -> None:
    body = {
        "caller": {"name": "王五", "phone": "13812345678"},
        "place": {"district": "500103"},
        "needs": ["temp_assist_unemployed"],
        "months_without_income": 4,
    }
    assert HelpRequestIn.model_validate(body).typed_attributes() == ({"months_without_income": 4.0}, {})
