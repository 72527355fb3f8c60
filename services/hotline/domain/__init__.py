"""Pure hotline rules: case numbers, triage, repeat-caller keys, caller-facing status, callbacks, Open311."""

from services.hotline.domain.intake import (
    CHONGQING_TZ,
    Triage,
    TriageReason,
    caller_keys,
    case_day,
    format_case_number,
    lookup_key,
    mask_name,
    mask_phone,
    normalise_address,
    triage,
    triage_rules,
)
from services.hotline.domain.status import CaseStatus, OtherUpdate, StatusEvent, project_status

__all__ = [
    "CHONGQING_TZ",
    "CaseStatus",
    "OtherUpdate",
    "StatusEvent",
    "Triage",
    "TriageReason",
    "caller_keys",
    "case_day",
    "format_case_number",
    "lookup_key",
    "mask_name",
    "mask_phone",
    "normalise_address",
    "project_status",
    "triage",
    "triage_rules",
]
