"""What notify tells people: caller texts (Chinese first) and alerts to departments and coordinators.

Callers get exactly two texts about a case in the normal path, and only if they agreed on the call
(P6.2): after dispatch (case number, who handles it) and at resolution (the outcome); a reopened case's
next resolution round is texted again.

Recipients are codes, never phone numbers: `caller` (the phone is looked up only when sending),
`department:<dept>:<district>`, `department_head:<dept>:<district>`, `coordinator:<district>`,
`coordinator:city`, and `worker:<account>` (a care register's responsible worker, P5.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from contracts.codes import departments, districts

TARGET_ZH = {"sign_for": "签收", "first_contact": "首次联系", "resolution": "办结", "payment": "资金发放"}
TARGET_EN = {"sign_for": "sign-for", "first_contact": "first contact", "resolution": "resolution", "payment": "payment"}
TIER_ZH = {
    "department_head": "部门负责人",
    "district_coordinator": "区县统筹协调人",
    "city_coordinator": "市级统筹协调人（督办）",
}


@dataclass(frozen=True)
class Notification:
    key: str  # natural key: the same notification is never created twice
    case_id: str
    kind: str
    recipient: str
    text_zh: str
    text_en: str
    # The values of the provider's template (Alibaba Cloud SMS fills an approved template with them).
    params: dict[str, str] = field(default_factory=dict)
    event_id: str | None = None  # the event that called for it (for the record; the key dedupes)


# Caller texts (P6.2 "受助及时": the caller learns who handles the case and its outcome), only with the
# caller's consent given on the call (`Caller.consents_to_texts`). Rule data:
CALLER_KINDS = ("caller_dispatched", "caller_resolved")  # exactly these two in the normal path (P6.2)
# A text waits while the caller's earlier text is still on its way: the outcome never before the case number.
WAITS_FOR = {"caller_resolved": "caller_dispatched"}
SKIPPED_NO_CONSENT = "no consent"  # why a caller text was not sent (P6.2: texts only with consent)
# A template variable of Alibaba Cloud SMS holds at most 35 characters; longer values are cut with "…".
PARAM_MAX_CHARS = 35
OUTCOME_TEXT_CHARS = 60  # the outcome as the text quotes it


def consent_refusal(consents: bool | None) -> str | None:
    """Why a text may not go to this caller (None: it may). Unknown consent is no consent (P6.2)."""
    return None if consents else SKIPPED_NO_CONSENT


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def masked(phone: str) -> str:
    """A phone as logs and records may show it: the first three and last two digits."""
    return phone[:3] + "*" * max(len(phone) - 5, 0) + phone[-2:] if len(phone) > 5 else "*" * len(phone)


def without_phone(message: str, phone: str | None) -> str:
    """A provider's message with the phone masked wherever it appears (never stored or logged in clear)."""
    return message.replace(phone, masked(phone)) if phone else message


def _dept(code: str | None) -> tuple[str, str]:
    dept = departments().get(code or "")
    return (dept.name_zh, dept.name_en) if dept else (code or "相关部门", code or "the department")


def _district(code: str | None) -> tuple[str, str]:
    district = districts().get(code or "")
    return (district.name_zh, district.name_en) if district else (code or "", code or "")


def local(at: datetime, tz: timezone) -> str:
    return at.astimezone(tz).strftime("%m月%d日%H:%M")


def caller_dispatched(
    key: str, case_id: str, *, district: str | None, department: str | None, due_at: datetime | None, tz: timezone
) -> Notification:
    """After dispatch: the case number and who handles it (the lead department and its district)."""
    dept_zh, dept_en = _dept(department)
    dist_zh, dist_en = _district(district)
    when_zh = f"，将于{local(due_at, tz)}前办结" if due_at else ""
    when_en = f", due by {due_at.astimezone(tz):%Y-%m-%d %H:%M}" if due_at else ""
    handler_en = f"{dept_en}, {dist_en}" if dist_en else dept_en
    return Notification(
        key,
        case_id,
        "caller_dispatched",
        "caller",
        f"【社会救助热线】您的求助已受理（编号{case_id}），已转{dist_zh}{dept_zh}部门办理{when_zh}。",
        f"Your request {case_id} has been passed to {handler_en}{when_en}.",
        params={
            "case_id": case_id,
            "handler": _cut(f"{dist_zh}{dept_zh}", PARAM_MAX_CHARS),
            "due": local(due_at, tz) if due_at else "",
        },
    )


def caller_resolved(key: str, case_id: str, *, outcome: str | None) -> Notification:
    """At resolution: the outcome, as the handling department recorded it."""
    said = _cut(outcome or "", OUTCOME_TEXT_CHARS)
    result_zh = f"，办理结果：{said}" if said else ""
    result_en = f": {said}" if said else ""
    return Notification(
        key,
        case_id,
        "caller_resolved",
        "caller",
        f"【社会救助热线】您的求助（编号{case_id}）已办结{result_zh}。如仍有困难，请再次致电救助热线。",
        f"Your request {case_id} has been resolved{result_en}. If you still need help, call the hotline again.",
        params={"case_id": case_id, "outcome": _cut(outcome or "已办结", PARAM_MAX_CHARS)},
    )


def sla_alerts(timer_id: str, payload: dict[str, Any], tz: timezone) -> list[Notification]:
    """Department alerts on a department clock's warning or breach, and one alert per escalation tier."""
    case_id, stage, target = payload["case_id"], payload["stage"], payload["target"]
    department, district = payload.get("department"), payload["district"]
    due = payload["due_at"]
    dept_zh, dept_en = _dept(department)
    dist_zh, _ = _district(district)
    t_zh, t_en = TARGET_ZH.get(target, target), TARGET_EN.get(target, target)
    when = local(due, tz)
    if stage == "escalation":
        tier = payload["tier"]
        recipient = {
            "department_head": f"department_head:{department}:{district}",
            "district_coordinator": f"coordinator:{district}",
            "city_coordinator": "coordinator:city",
        }[tier]
        return [
            Notification(
                f"{timer_id}|{recipient}",
                case_id,
                f"escalation_{tier}",
                recipient,
                f"【督办】案件{case_id}（{dist_zh}{dept_zh}）{t_zh}已超时（时限{when}），现提交{TIER_ZH[tier]}督办。",
                f"[Escalation] Case {case_id} ({dept_en}) missed its {t_en} deadline; escalated to the {tier}.",
            )
        ]
    if payload["clock"] == "department" or payload["clock_key"].startswith("payment:"):
        recipient = f"department:{department}:{district}"
        if stage == "warning":
            zh = f"【时限预警】案件{case_id}的{t_zh}时限将于{when}到期，请抓紧办理。"
            en = f"[Warning] Case {case_id}: the {t_en} deadline is {due:%Y-%m-%d %H:%M} UTC."
        else:
            zh = f"【超时】案件{case_id}的{t_zh}已超过时限（{when}），请立即办理。"
            en = f"[Breach] Case {case_id} missed its {t_en} deadline ({due:%Y-%m-%d %H:%M} UTC)."
        return [Notification(f"{timer_id}|{recipient}", case_id, f"department_{stage}", recipient, zh, en)]
    return []


# Missed care visits (P2.2, P5.3): the responsible worker named on the register, and their department in
# the district, are each alerted once per missed visit (the key names the entry and the due day).
VISIT_MISSED_KIND = "care_visit_missed"


def visit_missed(
    *,
    entry_id: str,
    district: str,
    department: str,
    worker: str,
    due_on: str,
    rule_id: str,
    provisions: tuple[str, ...],
) -> list[Notification]:
    """The alerts of one missed visit: to the responsible worker and to their department in the district."""
    dist_zh, dist_en = _district(district)
    dept_zh, _ = _dept(department)
    cited = "、".join(provisions)
    zh = f"【探访逾期】关爱对象{entry_id}（{dist_zh}）应于{due_on}探访，尚无探访记录，请尽快上门或电话探访（{cited}）。"
    en = f"[Visit overdue] Register entry {entry_id} ({dist_en}) was due a visit on {due_on}; none is recorded."
    params = {"entry_id": entry_id, "due_on": due_on, "rule_id": rule_id}
    return [
        Notification(
            f"care|{entry_id}|{due_on}|visit_missed|{recipient}",
            entry_id,
            VISIT_MISSED_KIND,
            recipient,
            zh if recipient.startswith("worker:") else f"【{dist_zh}{dept_zh}】{zh}",
            en,
            params=params,
        )
        for recipient in (f"worker:{worker}", f"department:{department}:{district}")
    ]
