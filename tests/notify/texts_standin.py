"""A local stand-in for Alibaba Cloud SMS (`dysmsapi` 2017-05-25) on 127.0.0.1, for the texts' tests.

It speaks `SendSms` as the official SDK calls it (RPC style, parameters in the query, the action and version
in `x-acs-action`/`x-acs-version`, signed with ACS3-HMAC-SHA256) and checks what the real service checks
first: the action, the signature with the configured key, the sign name, a known template and its values
(JSON), a mainland mobile number. It answers `{"Code": "OK", "BizId": …}`, or for a scripted message (any
whose `OutId` or phone contains a scripted text) the next scripted code, such as
`isv.BUSINESS_LIMIT_CONTROL` or `isv.MOBILE_NUMBER_ILLEGAL` (HTTP 200 with the code, as the service does).
Malformed or unsigned requests get HTTP 400 with the service's error code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

ACCESS_KEY_ID = "LTAI-test-key"
ACCESS_KEY_SECRET = "test-secret"
SIGN_NAME = "社会救助热线"
TEMPLATES = {"SMS_900001": ("case_id", "handler", "due"), "SMS_900002": ("case_id", "outcome")}
MOBILE = re.compile(r"^1[3-9]\d{9}$")


def aliyun_env(url: str) -> dict[str, str]:
    """Notify's settings for sending through this stand-in with the real SDK (over http)."""
    return {
        "NOTIFY_SMS_PROVIDER": "aliyun",
        "NOTIFY_ALIYUN_SMS_ENDPOINT": url,
        "NOTIFY_ALIYUN_SMS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "NOTIFY_ALIYUN_SMS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
        "NOTIFY_ALIYUN_SMS_SIGN_NAME": SIGN_NAME,
        "NOTIFY_ALIYUN_SMS_TEMPLATE_DISPATCHED": "SMS_900001",
        "NOTIFY_ALIYUN_SMS_TEMPLATE_RESOLVED": "SMS_900002",
    }


def _signature(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], signed: list[str]) -> str:
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    payload = headers.get("x-acs-content-sha256", "")
    canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed), payload])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(ACCESS_KEY_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class SendSmsStandIn:
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted messages
    refused: list[dict[str, Any]] = field(default_factory=list)  # answered with an error code
    script: dict[str, list[str]] = field(default_factory=dict)  # text in OutId/phone -> codes to answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server names its handlers so
                self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                status, body = outer.answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, target: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        query = parse_qsl(url.query, keep_blank_values=True)
        params = dict(query)
        request_id = hashlib.sha256(target.encode()).hexdigest()[:32]

        def error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
            return status, {"Code": code, "Message": message, "RequestId": request_id}

        if headers.get("x-acs-action") != "SendSms" or headers.get("x-acs-version") != "2017-05-25":
            return error(400, "InvalidAction.NotFound", "Specified api is not found")
        auth = headers.get("authorization", "")
        try:
            algorithm, rest = auth.split(" ", 1)
            parts = dict(p.split("=", 1) for p in rest.split(","))
            signed = parts["SignedHeaders"].split(";")
        except (ValueError, KeyError):
            return error(400, "MissingAuthorization", "the request is not signed")
        if algorithm != "ACS3-HMAC-SHA256" or parts.get("Credential") != ACCESS_KEY_ID:
            return error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found")
        if parts.get("Signature") != _signature("POST", url.path, query, headers, signed):
            return error(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation")
        for name in ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"):
            if not params.get(name):
                return error(400, f"Missing{name}", f"{name} is mandatory for this action")
        message = {
            "phone": params["PhoneNumbers"],
            "sign_name": params["SignName"],
            "template": params["TemplateCode"],
            "out_id": params.get("OutId", ""),
        }
        with self.lock:
            scripted = next(
                (k for k, codes in self.script.items() if codes and (k in message["out_id"] or k in message["phone"])),
                None,
            )
            code = self.script[scripted].pop(0) if scripted else "OK"
        try:
            message["params"] = json.loads(params["TemplateParam"])
        except ValueError:
            code = "isv.INVALID_JSON_PARAM"
        if code == "OK" and message["sign_name"] != SIGN_NAME:
            code = "isv.SMS_SIGNATURE_ILLEGAL"
        if code == "OK" and message["template"] not in TEMPLATES:
            code = "isv.SMS_TEMPLATE_ILLEGAL"
        if code == "OK" and set(TEMPLATES[message["template"]]) - set(message["params"]):
            code = "isv.TEMPLATE_MISSING_PARAMETERS"
        if code == "OK" and not MOBILE.match(message["phone"]):
            code = "isv.MOBILE_NUMBER_ILLEGAL"
        with self.lock:
            if code != "OK":
                self.refused.append({**message, "code": code})
                return 200, {"Code": code, "Message": f"refused: {code}", "RequestId": request_id}
            self.sent.append({**message, "received_at": time.monotonic()})
            biz_id = f"{len(self.sent):06d}^0"
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}

    def of(self, case_id: str) -> list[dict[str, Any]]:
        """Accepted messages about a case (their OutId is the notification key, which names the case)."""
        with self.lock:
            return [m for m in self.sent if case_id in m["out_id"]]

    def __enter__(self) -> SendSmsStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
