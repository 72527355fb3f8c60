"""The printable acceptance slip (受理单) of a case: one self-contained HTML page, Chinese first with English.

The caller appears masked (name and phone); no ID-card. Everything shown comes from the help request as
taken and the caller-facing status (the lead department once dispatched).
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from contracts.catalogue import ServiceAttribute, service_catalogue
from contracts.codes import districts
from contracts.events.base import BUSINESS_TZ
from contracts.events.hotline import HelpRequested
from services.hotline.domain import mask_name, mask_phone, triage, triage_rules
from services.hotline.domain.status import CaseStatus

CHANNELS = {
    "phone": ("电话", "phone"),
    "open311": ("网上（Open311）", "online (Open311)"),
    "outreach": ("主动发现", "proactive outreach"),
}
URGENCY = {"normal": ("一般", "normal"), "urgent": ("较急", "urgent"), "emergency": ("紧急", "emergency")}


def local_time(at: datetime) -> str:
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")


def _attributes() -> dict[str, ServiceAttribute]:
    catalogue = service_catalogue()
    known = {a.code: a for a in catalogue.common_attributes}
    for service in catalogue.services:
        for attribute in service.attributes:
            known.setdefault(attribute.code, attribute)
    return known


def _value(attribute: ServiceAttribute | None, value: object) -> str:
    if isinstance(value, list):
        return "、".join(_value(attribute, v) for v in value)
    if attribute is not None:
        if attribute.values_from == "districts" and (d := districts().get(str(value))):
            return f"{d.name_zh} {d.name_en}"
        for option in attribute.values:
            if option.key == value:
                return f"{option.name_zh} {option.name_en}"
    return str(value)


def _row(zh: str, en: str, value_html: str) -> str:
    return f'<tr><th>{escape(zh)}<span class="en">{escape(en)}</span></th><td>{value_html}</td></tr>'


def _emergency_reasons(event: HelpRequested) -> list[str]:
    """Why the call is an emergency, in Chinese and English (the triage of what was recorded)."""
    operator_rule = triage_rules().operator_rule
    operator_said = any(r.startswith(f"{operator_rule}:") for r in event.emergency_reasons)
    verdict = triage(list(event.needs), event.description, operator_said)
    return [f"{r.text_zh} / {r.text_en}" for r in verdict.explained] or list(event.emergency_reasons)


def render_slip(event: HelpRequested, status: CaseStatus, *, printed_by: str, printed_at: datetime) -> str:
    """The slip as a printable page with a print button (hidden on paper)."""
    services = service_catalogue().by_code()
    attributes = _attributes()
    district = districts().get(event.place.district)
    place = " · ".join(
        escape(p)
        for p in (
            f"{district.name_zh}（{district.name_en}）" if district else event.place.district,
            event.place.township or "",
            event.place.address or "",
        )
        if p
    )
    needs = "".join(
        f"<li><b>{escape(services[n].name_zh if n in services else n)}</b> "
        f'<span class="en">{escape(services[n].name_en if n in services else "")}</span></li>'
        for n in event.needs
    )
    answers = "".join(
        f"<li>{escape(attributes[code].description_zh if code in attributes else code)}"
        f'<span class="en">{escape(attributes[code].description_en if code in attributes else "")}</span>：'
        f"{escape(_value(attributes.get(code), value))}</li>"
        for code, value in event.attributes.items()
    )
    if event.months_without_income is not None and "months_without_income" not in event.attributes:
        months = event.months_without_income
        answers += f"<li>连续无收入月数<span class='en'>Months without income</span>：{months}</li>"
    common = {a.code: a for a in service_catalogue().common_attributes}
    household = _value(common.get("household_status"), str(event.household_status.value))
    groups = _value(common.get("special_groups"), [str(g.value) for g in event.special_groups])
    urgency_zh, urgency_en = URGENCY.get(str(event.urgency.value), (str(event.urgency.value), ""))
    emergency = ""
    if event.emergency:
        reasons = "".join(f"<li>{escape(r)}</li>" for r in _emergency_reasons(event))
        emergency = _row("紧急原因", "Why it is an emergency", f'<b class="em">紧急 EMERGENCY</b><ul>{reasons}</ul>')
    lead = (
        f"{escape(status.agency.name_zh)} <span class='en'>{escape(status.agency.name_en)}</span>"
        if status.agency
        else "尚未派单 <span class='en'>not dispatched yet</span>"
    )
    channel_zh, channel_en = CHANNELS.get(event.channel, (event.channel, ""))
    transfer = (
        _row("转接", "Warm transfer", escape(f"{event.warm_transfer.to} · {local_time(event.warm_transfer.at)}"))
        if event.warm_transfer
        else ""
    )
    rows = "".join(
        (
            _row("案件编号", "Case number", f'<b class="case">{escape(event.case_id)}</b>'),
            _row("受理时间", "Received", escape(local_time(event.received_at))),
            _row("受理渠道", "Channel", f"{escape(channel_zh)} <span class='en'>{escape(channel_en)}</span>"),
            _row("受理人", "Operator", escape(event.operator_id)),
            _row(
                "来电人",
                "Caller",
                f"{escape(mask_name(event.caller.name))} · {escape(mask_phone(event.caller.phone))}",
            ),
            _row(
                "短信通知",
                "Texts",
                "同意 <span class='en'>agreed</span>"
                if event.caller.consents_to_texts
                else "未同意 <span class='en'>not agreed</span>",
            ),
            _row("困难发生地", "Place", place),
            _row("求助事项", "Needs", f"<ul>{needs}</ul>"),
            _row("事项信息", "Answers", f"<ul>{answers}</ul>") if answers else "",
            _row("家庭状况", "Household", escape(household)),
            _row("特殊群体", "Special groups", escape(groups)) if event.special_groups else "",
            _row("情况描述", "Description", escape(event.description) or "（无）<span class='en'>(none)</span>"),
            _row("紧急程度", "Urgency", f"{escape(urgency_zh)} <span class='en'>{escape(urgency_en)}</span>"),
            emergency,
            transfer,
            _row("承办单位", "Lead department", lead),
        )
    )
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>受理单 {escape(event.case_id)} · Acceptance slip</title>
<link rel="icon" href="data:,">
<style>
  body {{ font-family: "Noto Serif CJK SC", "Songti SC", serif; margin: 24px auto; max-width: 760px; }}
  h1 {{ text-align: center; font-size: 22px; margin: 0 0 4px; letter-spacing: 4px; }}
  .sub {{ text-align: center; color: #444; margin-bottom: 16px; }}
  table {{ width: 100%; border-collapse: collapse; font-size: 14px; }}
  th, td {{ border: 1px solid #000; padding: 6px 8px; text-align: left; vertical-align: top; }}
  th {{ width: 150px; background: #f2f2f2; font-weight: 600; }}
  .en {{ display: block; font-weight: normal; font-size: 11px; color: #555; }}
  td .en {{ display: inline; }}
  ul {{ margin: 0; padding-left: 18px; }}
  .case {{ font-size: 16px; }}
  .em {{ color: #b71c1c; }}
  .foot {{ margin-top: 14px; font-size: 12px; color: #333; display: flex; justify-content: space-between; }}
  .tools {{ text-align: right; margin-bottom: 10px; }}
  button {{ font: inherit; padding: 6px 14px; cursor: pointer; }}
  @media print {{ .tools {{ display: none; }} body {{ margin: 0; }} }}
</style>
</head>
<body>
<div class="tools"><button type="button" id="print" onclick="window.print()">打印 Print</button></div>
<h1>社会救助热线受理单</h1>
<div class="sub">Social-assistance hotline · acceptance slip</div>
<table>{rows}</table>
<div class="foot"><span>打印人 Printed by：{escape(printed_by)}</span>
<span>打印时间 Printed：{escape(local_time(printed_at))}</span></div>
</body>
</html>
"""
