"""Open311 GeoReport v2 under /open311/v2/: services, service definitions, requests (GET and POST).

JSON and XML, chosen by the resource's extension as the specification says. Errors are a list of
`{code, description}` (`<errors><error>` in XML) with the matching HTTP status. Reads are public; POST
needs an `api_key` (settings; `dev-open311-key` in development only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from xml.sax.saxutils import escape

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from common.errors import DomainError, Unavailable
from contracts.catalogue import service_catalogue, validate_attributes
from contracts.events.hotline import Caller, HelpRequested, HouseholdStatus, Place, SpecialGroup
from contracts.validation import normalise_phone
from services.hotline.domain import open311 as spec
from services.hotline.domain.status import CaseStatus
from services.hotline.intake import HotlineDep, take_help_request
from services.hotline.schemas import (
    Open311Created,
    Open311Error,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
)

log = structlog.get_logger("hotline.open311")

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
Format = Literal["json", "xml"]
MAX_RESULTS = 1000
DEFAULT_WINDOW = timedelta(days=90)
_PLURAL = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
}


class Open311Failure(Exception):
    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__(descriptions)
        self.status = status
        self.descriptions = descriptions


# ------------------------------------------------------------------------------------ rendering


def _xml(tag: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_xml(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml(_PLURAL.get(tag, "item"), v) for v in value)
    elif value is None:
        return f"<{tag}/>"
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{tag}>{inner}</{tag}>"


def render(fmt: str, root: str, body: BaseModel | Sequence[BaseModel], status: int = 200) -> Response:
    """The response models as the format asks: JSON, or XML under `root` with the spec's element names."""
    plain = body.model_dump(mode="json") if isinstance(body, BaseModel) else [m.model_dump(mode="json") for m in body]
    if fmt == "xml":
        text = '<?xml version="1.0" encoding="UTF-8"?>' + _xml(root, plain)
        return Response(text, status_code=status, media_type="text/xml; charset=utf-8")
    return Response(
        json.dumps(plain, ensure_ascii=False), status_code=status, media_type="application/json; charset=utf-8"
    )


def _format(fmt: str) -> Format:
    if fmt not in ("json", "xml"):
        raise Open311Failure(404, f"不支持的格式：{fmt}（可用 json、xml） / unsupported format: {fmt} (json or xml)")
    return cast(Format, fmt)


def _errors(exc: Open311Failure, fmt: str) -> Response:
    return render(
        fmt if fmt in ("json", "xml") else "json", "errors", spec.error_list(exc.status, *exc.descriptions), exc.status
    )


def _zh_en(reason: str) -> str:
    """Validators write "中文 | English"; Open311 descriptions use " / " like the rest of this API."""
    return " / ".join(part.strip() for part in reason.split("|", 1))


# ------------------------------------------------------------------------------------ services


# What a failed request gets back (OpenAPI): the spec's error list, with the same HTTP status.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": list[Open311Error], "description": "bad or missing fields, each named"},
    403: {"model": list[Open311Error], "description": "api_key missing or invalid"},
    404: {"model": list[Open311Error], "description": "unknown service, request or format"},
}
CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": list[Open311Error], "description": "a request with this Idempotency-Key is still being taken"},
    503: {"model": list[Open311Error], "description": "busy now: nothing stored, see Retry-After"},
}


@router.get("/services.{fmt}", summary="GET Service List", response_model=list[Open311Service], responses=ERRORS)
async def services(fmt: str) -> Response:
    try:
        fmt = _format(fmt)
    except Open311Failure as exc:
        return _errors(exc, fmt)
    return render(fmt, "services", [spec.service_entry(s) for s in service_catalogue().services])


@router.get(
    "/services/{code}.{fmt}",
    summary="GET Service Definition",
    response_model=Open311ServiceDefinition,
    responses=ERRORS,
)
async def service_definition(code: str, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        if code not in service_catalogue().by_code():
            raise Open311Failure(404, f"服务代码不存在：{code} / service_code not found: {code}")
    except Open311Failure as exc:
        return _errors(exc, fmt)
    return render(fmt, "service_definition", spec.service_definition(code))


# ------------------------------------------------------------------------------------ requests


def _w3(name: str, raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Failure(
            400,
            f"{name} 应为 w3 时间格式，如 2026-02-15T08:00:00Z / {name} must be a w3 datetime, "
            "e.g. 2026-02-15T08:00:00Z",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _csv(raw: str | None) -> list[str]:
    return [v.strip() for v in (raw or "").split(",") if v.strip()]


def _request_entries(docs: list[dict[str, Any]]) -> list[Open311Request]:
    return [
        spec.request_entry(HelpRequested.model_validate(d["event"]), CaseStatus.model_validate(d["status"]))
        for d in docs
    ]


@router.get("/requests.{fmt}", summary="GET Service Requests", response_model=list[Open311Request], responses=ERRORS)
async def list_requests(fmt: str, request: Request, hotline: HotlineDep) -> Response:
    params = request.query_params
    try:
        fmt = _format(fmt)
        if ids := _csv(params.get("service_request_id")):  # overrides every other parameter
            docs = await hotline.store.recent(case_ids=ids, limit=MAX_RESULTS)
            return render(fmt, "service_requests", _request_entries(docs))
        start, end = _w3("start_date", params.get("start_date")), _w3("end_date", params.get("end_date"))
        end = end or (start + DEFAULT_WINDOW if start else datetime.now(UTC))
        start = start or end - DEFAULT_WINDOW
        if end - start > DEFAULT_WINDOW or end < start:
            raise Open311Failure(
                400, "start_date 与 end_date 之间不得超过90天 / start_date to end_date may not span more than 90 days"
            )
        statuses = set(_csv(params.get("status")))
        if statuses - {"open", "closed"}:
            raise Open311Failure(400, "status 只能是 open 或 closed / status must be open or closed")
        codes = _csv(params.get("service_code"))
        docs = await hotline.store.recent(since=start, until=end, needs=codes or None, limit=MAX_RESULTS)
    except Open311Failure as exc:
        return _errors(exc, fmt)
    entries = _request_entries(docs)
    if statuses:
        entries = [e for e in entries if e.status in statuses]
    return render(fmt, "service_requests", entries)


@router.get(
    "/requests/{request_id}.{fmt}", summary="GET Service Request", response_model=list[Open311Request], responses=ERRORS
)
async def get_request(request_id: str, fmt: str, hotline: HotlineDep) -> Response:
    try:
        fmt = _format(fmt)
        doc = await hotline.store.get_intake(request_id)
        if doc is None:
            raise Open311Failure(404, f"请求不存在：{request_id} / service_request_id not found: {request_id}")
    except Open311Failure as exc:
        return _errors(exc, fmt)
    return render(fmt, "service_requests", _request_entries([doc]))


async def _submitted(request: Request) -> tuple[dict[str, str], dict[str, Any]]:
    """Plain fields and `attribute[code]` / `attribute[code][]` values of a form-encoded (or JSON) POST."""
    fields: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        if not isinstance(body, dict):
            raise Open311Failure(400, "请求体应为对象 / the body must be an object")
        attributes = dict(body.pop("attribute", None) or {})
        return {k: str(v) for k, v in body.items() if v is not None}, attributes
    form = await request.form()
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if key.startswith("attribute[") and "]" in key:
            code = key[len("attribute[") : key.index("]")]
            if key.endswith("[]"):
                attributes.setdefault(code, []).append(value)
            else:
                attributes[code] = value
        else:
            fields[key] = value
    return fields, attributes


def _call_from(fields: dict[str, str], attributes: dict[str, Any]) -> dict[str, Any]:
    """The help request an Open311 POST describes, or Open311Failure(400) naming every bad field."""
    errors: list[str] = []
    code = fields.get("service_code", "")
    if not code:
        raise Open311Failure(400, "service_code 必填 / service_code is required")
    if code not in service_catalogue().by_code():
        raise Open311Failure(400, f"service_code 不存在：{code} / service_code not found: {code}")
    values, bad = validate_attributes([code], attributes)
    errors += [f"attribute[{c}]: {_zh_en(r)}" for c, r in bad.items()]
    phone = None
    try:
        phone = normalise_phone(fields.get("phone", ""))
    except ValueError as exc:
        errors.append(f"phone: {_zh_en(str(exc))}")
    lat, lon = fields.get("lat"), fields.get("long")
    coords: dict[str, float] = {}
    try:
        if lat or lon:
            coords = {"latitude": float(lat or ""), "longitude": float(lon or "")}
            if not (-90 <= coords["latitude"] <= 90 and -180 <= coords["longitude"] <= 180):
                raise ValueError
    except ValueError:
        errors.append("lat/long: 经纬度无效 / lat and long must be valid coordinates, given together")
    description = fields.get("description", "")
    if len(description) > 4000:
        errors.append("description: 内容过长（最多4000字） / too long (at most 4000 characters)")
    if errors:
        raise Open311Failure(400, *errors)
    name = (fields.get("last_name", "") + fields.get("first_name", "")).strip() or "匿名"
    return {
        "code": code,
        "caller": Caller(name=name[:50], phone=phone or ""),
        "place": Place(
            district=str(values.pop("district")),
            township=str(township) if (township := values.pop("township", None)) is not None else None,
            address=(fields.get("address_string") or None),
            **coords,
        ),
        "household_status": HouseholdStatus(str(values.pop("household_status", "unknown"))),
        "special_groups": [SpecialGroup(g) for g in _listed(values.pop("special_groups", []))],
        "description": description,
        "attributes": values,
    }


def _listed(value: str | float | list[str]) -> list[str]:
    """A multivaluelist attribute's values (validate_attributes gives a list for those)."""
    return value if isinstance(value, list) else [str(value)]


IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,200}")


@router.post(
    "/requests.{fmt}",
    summary="POST Service Request",
    status_code=201,
    response_model=list[Open311Created],
    responses=CREATE_ERRORS,
)
async def create_request(fmt: str, request: Request, hotline: HotlineDep) -> Response:
    try:
        fmt = _format(fmt)
        fields, attributes = await _submitted(request)
        client = hotline.settings.open311_client(fields.get("api_key"))
        if client is None:
            raise Open311Failure(403, "api_key 缺失或无效 / api_key missing or invalid")
        call = _call_from(fields, attributes)
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise Open311Failure(
                400,
                "Idempotency-Key 须为 1–200 个可打印 ASCII 字符 / Idempotency-Key must be 1-200 "
                "printable ASCII characters",
            )
    except Open311Failure as exc:
        return _errors(exc, fmt)
    try:
        taken = await take_help_request(
            hotline,
            operator_id=f"open311:{client}",
            channel="open311",
            caller=call["caller"],
            place=call["place"],
            needs=[call["code"]],
            household_status=call["household_status"],
            special_groups=call["special_groups"],
            description=call["description"],
            attributes=call["attributes"],
            idempotency_key=idempotency_key,
        )
    except DomainError as exc:  # busy (503, nothing stored) or the same key still in progress (409)
        reply = _errors(Open311Failure(exc.status, f"{exc.message_zh} / {exc.message_en}"), fmt)
        if isinstance(exc, Unavailable):
            reply.headers["Retry-After"] = str(exc.retry_after_s)
        return reply
    log.info("open311 request accepted", case_id=taken.event.case_id, client=client, published=taken.published)
    notice = "已受理，请记住受理编号 / received; keep the request id"
    if taken.verdict.emergency:
        notice = (
            "紧急求助已优先处理；如有生命危险请拨打110/119/120 / treated as an emergency; if a life is in "
            "danger call 110/119/120"
        )
    return render(
        fmt,
        "service_requests",
        [
            Open311Created(
                service_request_id=taken.event.case_id, service_notice=notice, account_id=fields.get("account_id")
            )
        ],
        201,
    )
