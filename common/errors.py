"""One base class for domain errors, and field errors an operator can read (zh first, en too).

Pure: the domain raises these; `common.http_errors` turns them into HTTP replies.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. `status` is the HTTP status the API answers with."""

    status = 409
    code = "domain_error"

    def __init__(
        self,
        message_zh: str,
        message_en: str,
        *,
        field: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en
        self.field = field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unavailable(DomainError):
    """Not done now, and nothing of it kept: the client may try again after `retry_after_s` (503)."""

    status = 503
    code = "unavailable"

    def __init__(self, message_zh: str, message_en: str, *, retry_after_s: int = 1, code: str | None = None) -> None:
        super().__init__(message_zh, message_en, code=code)
        self.retry_after_s = retry_after_s


# Chinese reasons for pydantic's error types; anything else falls back to a generic message.
_ZH_REASONS = {
    "missing": "必填项缺失",
    "string_too_long": "内容过长",
    "string_too_short": "内容过短",
    "string_pattern_mismatch": "格式不正确",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "int_parsing": "应为整数",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为金额数字",
    "decimal_max_places": "最多两位小数",
    "decimal_max_digits": "数字位数过多",
    "finite_number": "应为有限的数字",
    "bool_parsing": "应为是或否",
    "datetime_parsing": "日期时间格式不正确",
    "datetime_from_date_parsing": "日期时间格式不正确",
    "timezone_aware": "时间须带时区",
    "date_parsing": "日期格式不正确",
    "too_short": "至少需要一项",
    "too_long": "项数过多",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "greater_than": "数值过小",
    "less_than": "数值过大",
    "extra_forbidden": "不允许的字段",
    "json_invalid": "请求不是有效的 JSON",
    "model_attributes_type": "应为对象",
    "list_type": "应为列表",
    "string_type": "应为文本",
    "uuid_parsing": "编号格式不正确",
}


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turn pydantic errors into `{field, reason_zh, reason_en}`; a `value_error` carries its own zh text."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        message = str(err.get("msg", ""))
        reason_en = message.removeprefix("Value error, ")
        reason_zh = _ZH_REASONS.get(err.get("type", ""), "取值无效")
        if "|" in reason_en:  # "中文原因 | English reason" from our own validators
            reason_zh, reason_en = (part.strip() for part in reason_en.split("|", 1))
        out.append(
            {"field": ".".join(loc) or "body", "reason_zh": reason_zh, "reason_en": reason_en, "type": err.get("type")}
        )
    return out
