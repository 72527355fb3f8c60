"""Open311 GeoReport v2 representations: field names, w3 times, no personal data in public views."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest

from contracts.catalogue import service_catalogue
from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.notify import SlaWarningRaised
from contracts.events.router import Assignment, CaseDispatched, Decision
from services.hotline.domain import open311 as spec
from services.hotline.domain import project_status
from services.hotline.open311 import render
from services.hotline.settings import DEV_OPEN311_KEY, Settings
from tests.support.events import help_requested

pytestmark = pytest.mark.unit

T0 = datetime(2026, 2, 15, 0, 30, tzinfo=UTC)
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}


def help_request() -> HelpRequested:
    return help_requested(
        "CQ-20260215-000001",
        "homeless_cold",
        at=T0,
        caller=Caller(name="李四", phone="13912345678", id_card="11010519491231002X"),
        place=Place(district="500103", township="解放碑街道", address="民族路 8 号"),
        description="老人露宿，联系电话13912345678",
    )


def test_service_list_entries_have_exactly_the_spec_fields() -> None:
    entry = spec.service_entry(service_catalogue().by_code()["homeless_cold"]).model_dump(mode="json")
    assert set(entry) == SERVICE_FIELDS
    assert entry["type"] == "realtime" and entry["metadata"] is True
    assert entry["service_name"].startswith("流浪乞讨人员") and "Homeless" in entry["service_name"]


def test_service_definition_attributes_follow_the_spec() -> None:
    definition = spec.service_definition("temp_assist_unemployed").model_dump(mode="json")
    codes = [a["code"] for a in definition["attributes"]]
    assert codes[:4] == ["district", "township", "household_status", "special_groups"]
    months = next(a for a in definition["attributes"] if a["code"] == "months_without_income")
    assert (months["datatype"], months["required"], months["variable"]) == ("number", True, True)
    district = definition["attributes"][0]
    assert (
        district["datatype"] == "singlevaluelist"
        and {"key": "500103", "name": "渝中区 / Yuzhong District"} in district["values"]
    )


def test_request_view_is_public_safe_and_uses_w3_times_in_chongqing_time() -> None:
    due = T0 + timedelta(days=2)
    status = project_status(
        "CQ-20260215-000001",
        received_at=T0,
        emergency=True,
        events=[
            CaseDispatched(
                case_id="CQ-20260215-000001",
                occurred_at=T0,
                district="500103",
                lead=Assignment(department="civil_affairs", district="500103", role="lead"),
                needs=("homeless_cold",),
                sla_class="emergency",
                decision=Decision(rule_ids=("R-TEST",)),
            ),
            SlaWarningRaised(
                case_id="CQ-20260215-000001",
                occurred_at=T0,
                clock="citizen",
                target="resolution",
                district="500103",
                due_at=due,
                sla_class="emergency",
                share_elapsed=0.5,
            ),
        ],
    )
    entry = spec.request_entry(help_request(), status).model_dump(mode="json")
    assert set(entry) == REQUEST_FIELDS
    assert entry["status"] == "open" and entry["agency_responsible"].startswith("渝中区民政部门")
    assert entry["requested_datetime"] == "2026-02-15T08:30:00+08:00"
    assert entry["expected_datetime"] == "2026-02-17T08:30:00+08:00"
    text = str(entry)
    assert "13912345678" not in text and "李四" not in text and "民族路" not in text
    assert entry["address"] == "渝中区解放碑街道"


def test_errors_are_a_list_of_code_and_description() -> None:
    assert [e.model_dump() for e in spec.error_list(403, "bad key")] == [{"code": 403, "description": "bad key"}]


def test_xml_rendering_nests_plural_elements_and_declares_utf8() -> None:
    response = render("xml", "service_definition", spec.service_definition("child_allowance"))
    body = bytes(response.body).decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(body)
    first = root.find("attributes/attribute")
    assert first is not None and first.findtext("code") == "district" and first.findtext("required") == "true"
    assert len(first.findall("values/value")) == 41


def test_dev_api_key_only_in_development_and_real_keys_from_settings() -> None:
    assert Settings(environment="development").open311_client(DEV_OPEN311_KEY) == "dev"
    assert Settings(environment="test").open311_client(DEV_OPEN311_KEY) is None
    real = Settings(
        environment="production", jwt_secret="s" * 40, lookup_pepper="p" * 20, open311_api_keys={"k-123": "city-app"}
    )
    assert real.open311_client("k-123") == "city-app" and real.open311_client(DEV_OPEN311_KEY) is None
    assert real.open311_client(None) is None


def test_production_refuses_the_development_lookup_pepper() -> None:
    with pytest.raises(ValueError, match="lookup_pepper"):
        Settings(environment="production", jwt_secret="s" * 40)
