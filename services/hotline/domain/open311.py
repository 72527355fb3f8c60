"""Open311 GeoReport v2 representations of the catalogue and of cases (pure).

Field names follow the GeoReport v2 specification. Texts are Chinese first with English after " / ".
A public request view never carries the caller's name, phone, ID-card or street address; the
description is masked (common.logs.mask_text) and the address is the district and township only.
"""

from __future__ import annotations

from datetime import datetime

from common.logs import mask_text
from contracts.catalogue import ServiceAttribute, ServiceDefinition, service_catalogue
from contracts.codes import districts
from contracts.events.hotline import HelpRequested, Place
from services.hotline.domain.intake import CHONGQING_TZ
from services.hotline.domain.status import CaseStatus
from services.hotline.schemas import (
    Open311Attribute,
    Open311Error,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
    Open311Value,
)

PUBLIC_DESCRIPTION_LIMIT = 500


def bilingual(zh: str | None, en: str | None) -> str | None:
    if zh and en:
        return f"{zh} / {en}"
    return zh or en


def w3_time(at: datetime | None) -> str | None:
    """ISO 8601 with an explicit offset (the spec's w3 format), in Chongqing time, whole seconds."""
    return at.astimezone(CHONGQING_TZ).isoformat(timespec="seconds") if at else None


def service_entry(service: ServiceDefinition) -> Open311Service:
    """One element of GET services: every service has attributes (at least the common ones)."""
    return Open311Service(
        service_code=service.code,
        service_name=bilingual(service.name_zh, service.name_en),
        description=bilingual(service.description_zh, service.description_en),
        metadata=True,
        type="realtime",
        keywords=", ".join(service.keywords),
        group=service.group,
    )


def attribute_entry(attribute: ServiceAttribute) -> Open311Attribute:
    values = None
    if attribute.datatype in ("singlevaluelist", "multivaluelist"):
        values = [Open311Value(key=o.key, name=bilingual(o.name_zh, o.name_en)) for o in attribute.options()]
    return Open311Attribute(
        variable=attribute.variable,
        code=attribute.code,
        datatype=attribute.datatype,
        required=attribute.required,
        datatype_description=bilingual(attribute.datatype_description_zh, attribute.datatype_description_en),
        order=attribute.order,
        description=bilingual(attribute.description_zh, attribute.description_en),
        values=values,
    )


def service_definition(code: str) -> Open311ServiceDefinition:
    """GET services/{code}: the service's attributes in `order`."""
    return Open311ServiceDefinition(
        service_code=code, attributes=[attribute_entry(a) for a in service_catalogue().attributes_of(code)]
    )


def public_address(place: Place) -> str:
    district = districts().get(place.district)
    parts = [district.name_zh if district else place.district, place.township or ""]
    return "".join(p for p in parts if p)


def status_notes(status: CaseStatus) -> str:
    notes = [f"{status.label_zh} / {status.label_en}"]
    if status.merged_into:
        notes.append(f"已并入 {status.merged_into} / merged into {status.merged_into}")
    if status.history:
        last = status.history[-1]
        notes.append(f"{last.text_zh} / {last.text_en}")
    return "; ".join(dict.fromkeys(notes))


def request_entry(request: HelpRequested, status: CaseStatus) -> Open311Request:
    """One element of GET requests / GET requests/{id}, from the help request and its projected status."""
    code = request.needs[0]
    service = service_catalogue().by_code().get(code)
    return Open311Request(
        service_request_id=request.case_id,
        status=status.open311_status,
        status_notes=status_notes(status),
        service_name=bilingual(service.name_zh, service.name_en) if service else code,
        service_code=code,
        description=mask_text(request.description)[:PUBLIC_DESCRIPTION_LIMIT],
        agency_responsible=bilingual(status.agency.name_zh, status.agency.name_en) if status.agency else None,
        service_notice=None,
        requested_datetime=w3_time(status.received_at),
        updated_datetime=w3_time(status.updated_at),
        expected_datetime=w3_time(status.expected_at),
        address=public_address(request.place),
        address_id=None,
        zipcode=None,
        lat=None,
        long=None,
        media_url=None,
    )


def error_list(code: int, *descriptions: str) -> list[Open311Error]:
    """The GeoReport error body: a list of {code, description}."""
    return [Open311Error(code=code, description=d) for d in descriptions]
