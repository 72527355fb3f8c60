"""The service catalogue: every core and route provision has a service, typed like Open311 definitions."""

import pytest

from contracts.catalogue import service_catalogue, validate_attributes

pytestmark = pytest.mark.unit

# Every provision of POLICY.md marked core or route must be reachable from the one door (P2.3, P6.2).
CORE_AND_ROUTE = [
    "P1.1",
    "P1.2",
    "P2.1",
    "P2.2",
    "P2.3",
    "P3.1",
    "P3.2",
    "P4.1",
    "P5.1",
    "P5.2a",
    "P5.2b",
    "P5.2c",
    "P5.2d",
    "P5.3",
    "P6.2",
]


def test_every_core_and_route_provision_has_a_service() -> None:
    cited = {p for s in service_catalogue().services for p in s.provisions}
    assert set(CORE_AND_ROUTE) <= cited


def test_issue_services_exist_with_stable_codes() -> None:
    codes = set(service_catalogue().by_code())
    assert {
        "temp_assist_epidemic",
        "temp_assist_unemployed",
        "temp_assist_major",
        "dibao_application",
        "homeless_cold",
        "special_group_visit",
        "disability_subsidy",
        "child_allowance",
        "disaster_relief",
        "disaster_housing",
        "institution_hazard",
        "price_gouging",
        "supply_shortage",
        "chronic_followup",
        "stranded_person",
        "medical_aid",
        "education_aid",
        "housing_aid",
        "employment_aid",
        "other",
    } <= codes


def test_every_service_has_the_common_attributes_first_and_list_values() -> None:
    catalogue = service_catalogue()
    for service in catalogue.services:
        attributes = catalogue.attributes_of(service.code)
        assert [a.code for a in attributes[:4]] == ["district", "township", "household_status", "special_groups"]
        for attribute in attributes:
            assert attribute.description_zh and attribute.description_en
            if attribute.datatype.endswith("valuelist"):
                assert attribute.options(), attribute.code
    districts = catalogue.attributes_of("other")[0]
    assert districts.required and len(districts.options()) == 41


def test_p52b_months_without_income_is_a_required_number() -> None:
    values, errors = validate_attributes(
        ["temp_assist_unemployed"], {"months_without_income": "4"}, include_common=False
    )
    assert values == {"months_without_income": 4.0} and errors == {}
    _, errors = validate_attributes(["temp_assist_unemployed"], {}, include_common=False)
    assert "months_without_income" in errors and "|" in errors["months_without_income"]


def test_attribute_values_are_typed_and_checked() -> None:
    values, errors = validate_attributes(
        ["disaster_relief"],
        {
            "district": "500103",
            "special_groups": ["disaster_victim", "elderly_alone"],
            "relief_items": "food,bedding",
            "disaster_kind": "meteor",
        },
    )
    assert values["special_groups"] == ["disaster_victim", "elderly_alone"]
    assert values["relief_items"] == ["food", "bedding"]
    assert "disaster_kind" in errors and "meteor" in errors["disaster_kind"]


def test_unknown_attributes_and_missing_required_common_ones_are_errors() -> None:
    _, errors = validate_attributes(["other"], {"colour": "red"})
    assert set(errors) == {"colour", "district"}


def test_datetime_attributes_need_a_timezone() -> None:
    _, errors = validate_attributes(
        ["temp_assist_epidemic"], {"admitted_at": "2026-02-01T08:00:00"}, include_common=False
    )
    assert "admitted_at" in errors
    values, _ = validate_attributes(
        ["temp_assist_epidemic"], {"admitted_at": "2026-02-01T08:00:00+08:00"}, include_common=False
    )
    assert values["admitted_at"] == "2026-02-01T08:00:00+08:00"
