"""Open311 GeoReport v2 through the real app and store (form-encoded POST, error format, filters)."""

from __future__ import annotations

from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

from contracts.events.router import Assignment, CaseDispatched, CaseResolved, Decision
from services.hotline.settings import DEV_OPEN311_KEY
from tests.hotline.conftest import TEST_API_KEY, Harness

pytestmark = pytest.mark.component


def form(service_code: str = "temp_assist_unemployed", **overrides: str) -> dict[str, str]:
    data = {
        "api_key": TEST_API_KEY,
        "service_code": service_code,
        "first_name": "五",
        "last_name": "王",
        "phone": "13812345678",
        "description": "失业三个多月没有收入",
        "attribute[district]": "500106",
        "attribute[special_groups][]": "unemployed_uninsured",
    }
    if service_code == "temp_assist_unemployed":
        data["attribute[months_without_income]"] = "4"
    data.update(overrides)
    return data


async def test_form_encoded_post_creates_a_request_with_typed_attributes(harness: Harness) -> None:
    response = await harness.client.post("/open311/v2/requests.json", data=form())
    assert response.status_code == 201, response.text
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    [event] = [b for b in harness.published if b["case_id"] == created["service_request_id"]]
    assert event["channel"] == "open311" and event["operator_id"] == "open311:tester"
    assert event["caller"] == {
        "name": "王五",
        "phone": "13812345678",
        "id_card": None,
        "hukou_district": None,
        "consents_to_texts": False,
    }
    assert event["place"]["district"] == "500106" and event["special_groups"] == ["unemployed_uninsured"]
    assert event["months_without_income"] == 4 and event["attributes"] == {"months_without_income": 4.0}


async def test_multivaluelist_attributes_repeat_the_key(harness: Harness) -> None:
    pairs = list(form(service_code="disaster_relief").items()) + [
        ("attribute[relief_items][]", "food"),
        ("attribute[relief_items][]", "bedding"),
    ]
    response = await harness.client.post(
        "/open311/v2/requests.json",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    event = harness.published[-1]
    assert event["attributes"]["relief_items"] == ["food", "bedding"]


async def test_missing_or_invalid_api_key_is_403_in_the_spec_error_format(harness: Harness) -> None:
    for key in ("", "wrong", DEV_OPEN311_KEY):  # the dev key is refused outside development
        response = await harness.client.post("/open311/v2/requests.json", data=form(api_key=key))
        assert response.status_code == 403
        [error] = response.json()
        assert error["code"] == 403 and "api_key" in error["description"]
    assert harness.published == []


async def test_bad_fields_are_400_naming_each_one(harness: Harness) -> None:
    response = await harness.client.post(
        "/open311/v2/requests.json",
        data=form(
            **{"phone": "12", "attribute[district]": "999999", "attribute[months_without_income]": "many", "lat": "95"}
        ),
    )
    assert response.status_code == 400
    descriptions = [e["description"] for e in response.json()]
    assert all(e["code"] == 400 for e in response.json())
    for name in ("attribute[district]", "attribute[months_without_income]", "phone", "lat/long"):
        assert any(d.startswith(name) for d in descriptions), (name, descriptions)
    assert harness.published == []


async def test_errors_in_xml_are_errors_error_elements(harness: Harness) -> None:
    response = await harness.client.post("/open311/v2/requests.xml", data=form(service_code="nope"))
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.text)
    assert root.tag == "errors" and root.findtext("error/code") == "400"


async def test_unknown_service_definition_is_404(harness: Harness) -> None:
    response = await harness.client.get("/open311/v2/services/nope.json")
    assert response.status_code == 404 and response.json()[0]["code"] == 404


async def test_get_requests_shows_agency_and_status_from_downstream_events(harness: Harness) -> None:
    created = (await harness.client.post("/open311/v2/requests.json", data=form())).json()[0]
    other = (
        await harness.client.post(
            "/open311/v2/requests.json", data=form(service_code="price_gouging", **{"attribute[outlet_name]": "某超市"})
        )
    ).json()[0]
    request_id = created["service_request_id"]
    await harness.deliver(
        CaseDispatched(
            case_id=request_id,
            district="500106",
            needs=("temp_assist_unemployed",),
            lead=Assignment(department="hrss", district="500106", role="lead"),
            sla_class="standard",
            decision=Decision(rule_ids=("R-TEST",)),
        )
    )
    [one] = (await harness.client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert one["status"] == "open" and one["agency_responsible"].startswith("沙坪坝区人力资源社会保障部门")
    await harness.deliver(CaseResolved(case_id=request_id, actor="w1", outcome="done"))
    closed = (await harness.client.get("/open311/v2/requests.json", params={"status": "closed"})).json()
    assert [r["service_request_id"] for r in closed] == [request_id]
    by_code = (await harness.client.get("/open311/v2/requests.json", params={"service_code": "price_gouging"})).json()
    assert [r["service_request_id"] for r in by_code] == [other["service_request_id"]]
    both = await harness.client.get(
        "/open311/v2/requests.json", params={"service_request_id": f"{request_id},{other['service_request_id']}"}
    )
    assert len(both.json()) == 2
    assert (await harness.client.get("/open311/v2/requests/CQ-20200101-000001.json")).status_code == 404


async def test_date_range_is_checked(harness: Harness) -> None:
    bad = await harness.client.get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert bad.status_code == 400 and bad.json()[0]["description"].startswith("start_date")
    wide = await harness.client.get(
        "/open311/v2/requests.json", params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}
    )
    assert wide.status_code == 400


async def test_a_json_post_with_an_attribute_object_is_accepted_too(harness: Harness) -> None:
    body: dict[str, object] = {k: v for k, v in form().items() if not k.startswith("attribute")}
    body["attribute"] = {"district": "500106", "months_without_income": 5, "special_groups": ["stranded"]}
    response = await harness.client.post("/open311/v2/requests.json", json=body)
    assert response.status_code == 201, response.text
    event = harness.published[-1]
    assert event["months_without_income"] == 5 and event["special_groups"] == ["stranded"]
