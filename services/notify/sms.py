"""Caller texts through Alibaba Cloud SMS (阿里云短信服务), with its official SDK (`alibabacloud_dysmsapi20170525`).

`SendSms` takes the phone (`PhoneNumbers`), the approved sign name (`SignName`, shown as 【…】 before the
text), an approved template (`TemplateCode`, one per text kind) and the template's values
(`TemplateParam`, JSON); it answers `{"Code": "OK", "BizId": …}` or an error code. Business errors come
back with HTTP 200 and a code other than OK; authentication and malformed requests as 4xx; provider faults
as 5xx. What is worth retrying later is rule data below (`is_transient`); the outbox retries with backoff.

The SDK's blocking client runs in a worker thread (`asyncio.to_thread`), so a slow provider never stalls
the event loop (its async variant loads the CA bundle synchronously on each call and sleeps synchronously
between its own retries; the SDK's own retries are off: the outbox's durable attempts retry). Its
connect and read timeouts are kept below `delivery_timeout_s`, so a call gives up before the outbox stops
waiting for it.

The phone goes to the provider and nowhere else: error texts are masked before they are recorded or logged.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models  # type: ignore[import-untyped]
from alibabacloud_dysmsapi20170525.client import Client  # type: ignore[import-untyped]
from alibabacloud_tea_openapi import models as open_api_models  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ServerException, ThrottlingException  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]
from Tea.exceptions import TeaException  # type: ignore[import-untyped]

from services.notify.documents import NotificationRecord
from services.notify.domain.texts import without_phone
from services.notify.outbox import DeliveryError
from services.notify.settings import Settings

# Error codes of SendSms worth retrying later (P6.2: the caller's text should still arrive). Flow control
# per number (1 a minute, 5 an hour, 10 a day by default), a daily quota, arrears or a provider fault pass;
# everything else (an illegal number, a template or sign name not approved, bad parameters, access denied)
# would fail again the same way, so it is not retried.
TRANSIENT_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.OUT_OF_SERVICE",
        "isv.AMOUNT_NOT_ENOUGH",
        "isp.SYSTEM_ERROR",
        "SYSTEM_ERROR",
        "ServiceUnavailable",
        "InternalError",
    }
)
TRANSIENT_PREFIXES = ("isp.", "Throttling")
# The earliest a retry can succeed, where the provider's rule says (seconds): the per-minute flow control.
RETRY_AFTER_S = {"isv.BUSINESS_LIMIT_CONTROL": 60.0}


def is_transient(code: str) -> bool:
    return code in TRANSIENT_CODES or code.startswith(TRANSIENT_PREFIXES)


def endpoint_of(url: str) -> tuple[str, str]:
    """(endpoint, protocol) of `NOTIFY_ALIYUN_SMS_ENDPOINT`: a bare host is https, a URL keeps its scheme."""
    for scheme in ("http", "https"):
        if url.startswith(f"{scheme}://"):
            return url[len(scheme) + 3 :].rstrip("/"), scheme
    return url.rstrip("/"), "https"


class AliyunSmsChannel:
    """Sends a caller text as `SendSms` with the template of its kind; returns the provider's `BizId`."""

    name = "aliyun_sms"

    def __init__(self, settings: Settings) -> None:
        endpoint, protocol = endpoint_of(settings.aliyun_sms_endpoint)
        timeout_ms = int(settings.delivery_timeout_s * 1000)
        self.client = Client(
            open_api_models.Config(
                access_key_id=settings.aliyun_sms_access_key_id,
                access_key_secret=settings.aliyun_sms_access_key_secret.get_secret_value(),
                endpoint=endpoint,
                protocol=protocol,
                region_id=settings.aliyun_sms_region,
                connect_timeout=max(1, timeout_ms * 2 // 5),
                read_timeout=max(1, timeout_ms * 4 // 5),
            )
        )
        self.sign_name = settings.aliyun_sms_sign_name
        self.templates = {
            "caller_dispatched": settings.aliyun_sms_template_dispatched,
            "caller_resolved": settings.aliyun_sms_template_resolved,
        }

    def request(self, notification: NotificationRecord, phone: str) -> sms_models.SendSmsRequest:
        template = self.templates.get(notification.kind)
        if not template:
            raise DeliveryError(f"no SMS template for the kind {notification.kind}", transient=False)
        return sms_models.SendSmsRequest(
            phone_numbers=phone,
            sign_name=self.sign_name,
            template_code=template,
            template_param=json.dumps(notification.params, ensure_ascii=False),
            out_id=notification.key,  # comes back in the delivery receipts
        )

    async def send(self, notification: NotificationRecord, address: str | None) -> str | None:
        if not address:
            raise DeliveryError("no phone number known for this case yet", transient=True)
        request = self.request(notification, address)
        try:
            response = await asyncio.to_thread(self.client.send_sms_with_options, request, RuntimeOptions())
        except AlibabaCloudException as exc:
            raise _refused(exc, address) from None
        except (TeaException, OSError) as exc:  # unreachable, timed out, a broken answer: try again later
            raise DeliveryError(f"aliyun SMS unreachable: {type(exc).__name__}", transient=True) from None
        body: Any = response.body
        code = str(getattr(body, "code", "") or "")
        if code == "OK":
            return str(getattr(body, "biz_id", "") or "") or None
        message = without_phone(str(getattr(body, "message", "") or ""), address)
        raise DeliveryError(
            f"aliyun SMS {code or 'no code'}: {message}",
            transient=is_transient(code),
            retry_after_s=RETRY_AFTER_S.get(code),
        )


def _refused(exc: AlibabaCloudException, phone: str) -> DeliveryError:
    code = str(exc.code or "")
    transient = isinstance(exc, ServerException | ThrottlingException) or is_transient(code)
    retry_after = getattr(exc, "retry_after", None)
    message = without_phone(str(exc.message or ""), phone)
    return DeliveryError(
        f"aliyun SMS HTTP {exc.status_code} {code}: {message}",
        transient=transient,
        retry_after_s=float(retry_after) / 1000 if retry_after else RETRY_AFTER_S.get(code),
    )
