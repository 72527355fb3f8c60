"""The service catalogue: every need a help request can name (codes shared by all services).

Each service is typed like an Open311 GeoReport v2 service definition: its own attributes plus the
catalogue's common attributes (district, township, household status, special groups), each with a
datatype, whether it is required, and for list types the allowed values. `validate_attributes` checks a
submitted set of attribute values against the definitions and returns them typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from contracts.codes import districts

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
AttributeValue = str | float | list[str]
# Open311 has no length limit of its own; these keep a single attribute from swallowing a request.
MAX_STRING = 200
MAX_TEXT = 4000

_AWARE = TypeAdapter(AwareDatetime)


class AttributeOption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name_zh: str
    name_en: str


class ServiceAttribute(BaseModel):
    """One Open311 attribute: `code`, `datatype`, `required`, `order`, descriptions, list values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    datatype: Datatype
    required: bool = False
    variable: bool = True
    order: int = 0
    description_zh: str
    description_en: str
    datatype_description_zh: str | None = None
    datatype_description_en: str | None = None
    values_from: Literal["districts"] | None = None  # list values generated from shipped code tables
    values: tuple[AttributeOption, ...] = ()

    @model_validator(mode="after")
    def _lists_have_values(self) -> ServiceAttribute:
        is_list = self.datatype in ("singlevaluelist", "multivaluelist")
        if is_list and not (self.values or self.values_from):
            raise ValueError(f"attribute {self.code}: a list datatype needs values")
        if not is_list and (self.values or self.values_from):
            raise ValueError(f"attribute {self.code}: only list datatypes take values")
        return self

    def options(self) -> tuple[AttributeOption, ...]:
        if self.values_from == "districts":
            return tuple(
                AttributeOption(key=d.code, name_zh=d.name_zh, name_en=d.name_en) for d in districts().values()
            )
        return self.values

    def parse(self, raw: Any) -> AttributeValue:
        """The typed value of a submitted raw value, or ValueError("中文 | English")."""
        if self.datatype == "multivaluelist":
            items = raw if isinstance(raw, list | tuple) else [v for v in str(raw).split(",")]
            items = [str(v).strip() for v in items if str(v).strip()]
            allowed = {o.key for o in self.options()}
            if bad := [v for v in items if v not in allowed]:
                raise ValueError(f"不是可选值：{', '.join(bad)} | not an allowed value: {', '.join(bad)}")
            return list(dict.fromkeys(items))
        if isinstance(raw, list | tuple):
            if len(raw) != 1:
                raise ValueError("只能填一个值 | takes a single value")
            raw = raw[0]
        if self.datatype == "singlevaluelist":
            value = str(raw).strip()
            if value not in {o.key for o in self.options()}:
                raise ValueError(f"不是可选值：{value} | not an allowed value: {value}")
            return value
        if self.datatype == "number":
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise ValueError("应为数字 | must be a number") from None
            if number != number or number in (float("inf"), float("-inf")) or number < 0:
                raise ValueError("应为非负数字 | must be a non-negative number")
            return number
        if self.datatype == "datetime":
            try:
                moment: datetime = _AWARE.validate_python(raw)
            except ValidationError:
                raise ValueError(
                    "应为带时区的时间，如 2026-02-15T08:00:00+08:00 | must be an ISO 8601 time "
                    "with a timezone, e.g. 2026-02-15T08:00:00+08:00"
                ) from None
            return moment.isoformat()
        value = str(raw).strip()
        limit = MAX_TEXT if self.datatype == "text" else MAX_STRING
        if len(value) > limit:
            raise ValueError(f"内容过长（最多{limit}字） | too long (at most {limit} characters)")
        return value


class ServiceDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provisions: tuple[str, ...] = Field(min_length=1)
    group: str
    emergency: bool = False
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    keywords: tuple[str, ...] = ()
    attributes: tuple[ServiceAttribute, ...] = ()


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    common_attributes: tuple[ServiceAttribute, ...] = ()
    services: tuple[ServiceDefinition, ...]

    def by_code(self) -> dict[str, ServiceDefinition]:
        return {s.code: s for s in self.services}

    def attributes_of(self, code: str) -> tuple[ServiceAttribute, ...]:
        """A service's attributes, the common ones first, ordered by `order`."""
        service = self.by_code()[code]
        return tuple(sorted((*self.common_attributes, *service.attributes), key=lambda a: a.order))


@cache
def service_catalogue() -> Catalogue:
    """The catalogue shipped in `contracts/data/services.yaml`, validated."""
    text = resources.files("contracts.data").joinpath("services.yaml").read_text(encoding="utf-8")
    catalogue = Catalogue.model_validate(yaml.safe_load(text))
    codes = [s.code for s in catalogue.services]
    if len(codes) != len(set(codes)):
        raise ValueError("services.yaml: duplicate service codes")
    common = {a.code for a in catalogue.common_attributes}
    for service in catalogue.services:
        own = [a.code for a in service.attributes]
        if len(own) != len(set(own)) or common & set(own):
            raise ValueError(f"services.yaml: {service.code} repeats an attribute code")
    return catalogue


def service_codes() -> frozenset[str]:
    return frozenset(service_catalogue().by_code())


def validate_attributes(
    needs: Iterable[str], submitted: Mapping[str, Any], *, include_common: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, str]]:
    """Check submitted attribute values against the needs' definitions.

    Returns (typed values, errors by attribute code with "中文 | English" reasons). Unknown codes and
    missing required attributes are errors; attributes shared by several needs are checked once.
    """
    catalogue = service_catalogue()
    known: dict[str, ServiceAttribute] = {}
    for code in needs:
        for attribute in catalogue.attributes_of(code):
            if include_common or attribute not in catalogue.common_attributes:
                known.setdefault(attribute.code, attribute)
    values: dict[str, AttributeValue] = {}
    errors: dict[str, str] = {}
    for code, raw in submitted.items():
        definition = known.get(code)
        if definition is None:
            errors[code] = f"所选服务没有此属性：{code} | no such attribute for the chosen services: {code}"
            continue
        if raw is None or raw == "" or raw == []:
            continue
        try:
            values[code] = definition.parse(raw)
        except ValueError as exc:
            errors[code] = str(exc)
    for code, attribute in known.items():
        if attribute.required and code not in values and code not in errors:
            errors[code] = f"必填：{attribute.description_zh} | required: {attribute.description_en}"
    return values, errors


def _known_needs(value: tuple[str, ...]) -> tuple[str, ...]:
    codes = service_catalogue().by_code()
    unknown = [n for n in value if n not in codes]
    if unknown:
        raise ValueError(f"未知的服务代码 {unknown} | unknown catalogue needs {unknown}")
    return value


# Need codes a rule names (rule data): each a service of the catalogue.
NeedCodes = Annotated[tuple[str, ...], AfterValidator(_known_needs)]
