"""Pure intake rules: case numbers, life-safety triage, and the keys that find repeat callers."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import service_catalogue
from contracts.events.base import BUSINESS_TZ

CHONGQING_TZ = BUSINESS_TZ
TransferTarget = Literal["110", "119", "120"]


def case_day(at: datetime) -> str:
    """The local (Chongqing) calendar day a case number is counted in, as YYYYMMDD."""
    return at.astimezone(CHONGQING_TZ).strftime("%Y%m%d")


def format_case_number(day: str, seq: int) -> str:
    """Human-readable, unique, date-sortable: `CQ-20260215-000123`."""
    if not 0 < seq <= 999_999:
        raise ValueError(f"daily case sequence out of range: {seq}")
    return f"CQ-{day}-{seq:06d}"


# ------------------------------------------------------------------------------------ triage


class KeywordRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    provisions: tuple[str, ...] = Field(min_length=1)
    label_zh: str
    label_en: str
    keywords: tuple[str, ...] = Field(min_length=1)
    suggest_transfer: TransferTarget | None = None


class TriageRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    catalogue_rule: str
    catalogue_provisions: tuple[str, ...]
    operator_rule: str
    operator_provisions: tuple[str, ...]
    keyword_rules: tuple[KeywordRule, ...]


@cache
def triage_rules() -> TriageRules:
    """The triage rules shipped in `services/hotline/data/triage.yaml`, validated at start-up."""
    text = resources.files("services.hotline.data").joinpath("triage.yaml").read_text(encoding="utf-8")
    rules = TriageRules.model_validate(yaml.safe_load(text))
    ids = [r.id for r in rules.keyword_rules] + [rules.catalogue_rule, rules.operator_rule]
    if len(ids) != len(set(ids)):
        raise ValueError("triage.yaml: duplicate rule ids")
    return rules


@dataclass(frozen=True)
class TriageReason:
    """One reason a call is an emergency, in words for the operator in either language."""

    rule_id: str
    text_zh: str
    text_en: str


@dataclass(frozen=True)
class Triage:
    """The life-safety verdict and the rules and facts behind it (P2.2, P6.3). `reasons` are what the help
    request records (`rule-id: fact (provisions)`); `explained` says the same to the operator."""

    emergency: bool
    reasons: tuple[str, ...] = ()
    explained: tuple[TriageReason, ...] = ()
    rule_ids: tuple[str, ...] = ()
    suggested_transfer: TransferTarget | None = None
    matched_keywords: tuple[str, ...] = field(default=())


def triage(
    needs: tuple[str, ...] | list[str],
    description: str,
    operator_says_emergency: bool,
    rules: TriageRules | None = None,
) -> Triage:
    """Emergency when a need is an emergency service, the description names a life-safety danger, or
    the operator says so. Each reason reads `rule-id: fact (provisions)`."""
    rules = rules or triage_rules()
    catalogue = service_catalogue().by_code()
    reasons: list[str] = []
    explained: list[TriageReason] = []
    rule_ids: list[str] = []
    for code in needs:
        if code in catalogue and catalogue[code].emergency:
            service, provisions = catalogue[code], ", ".join(rules.catalogue_provisions)
            reasons.append(f"{rules.catalogue_rule}: emergency service {code} ({provisions})")
            explained.append(
                TriageReason(
                    rules.catalogue_rule,
                    f"求助事项“{service.name_zh}”属紧急服务（{provisions}）",
                    f"{service.name_en} is an emergency service ({provisions})",
                )
            )
            rule_ids.append(rules.catalogue_rule)
    text = unicodedata.normalize("NFKC", description or "").lower()
    suggested: TransferTarget | None = None
    matched: list[str] = []
    for rule in rules.keyword_rules:
        hits = [k for k in rule.keywords if k.lower() in text]
        if hits:
            matched.extend(hits)
            provisions = ", ".join(rule.provisions)
            reasons.append(f"{rule.id}: description mentions {', '.join(hits)} ({provisions})")
            explained.append(
                TriageReason(
                    rule.id,
                    f"{rule.label_zh}：描述中提到“{'、'.join(hits)}”（{provisions}）",
                    f"{rule.label_en}: the description mentions “{', '.join(hits)}” ({provisions})",
                )
            )
            rule_ids.append(rule.id)
            suggested = suggested or rule.suggest_transfer
    if operator_says_emergency:
        provisions = ", ".join(rules.operator_provisions)
        reasons.append(f"{rules.operator_rule}: operator marked the call an emergency ({provisions})")
        explained.append(
            TriageReason(
                rules.operator_rule,
                f"话务员标记为紧急（{provisions}）",
                f"The operator marked the call an emergency ({provisions})",
            )
        )
        rule_ids.append(rules.operator_rule)
    return Triage(
        emergency=bool(reasons),
        reasons=tuple(reasons),
        explained=tuple(explained),
        rule_ids=tuple(dict.fromkeys(rule_ids)),
        suggested_transfer=suggested,
        matched_keywords=tuple(matched),
    )


# ------------------------------------------------------------------------------------ lookup keys

_ADDRESS_NOISE = re.compile(r"[\s,，。.、;；:：\-—_()（）#＃]+")


def normalise_address(address: str | None) -> str:
    """An address reduced to what identifies a home: full-width folded, spaces and punctuation dropped."""
    return _ADDRESS_NOISE.sub("", unicodedata.normalize("NFKC", address or "")).lower()


def lookup_key(pepper: str, kind: str, normalised: str) -> str:
    """A keyed hash of a normalised phone / ID-card / household, so the store holds no clear lookup key."""
    return hmac.new(pepper.encode(), f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def caller_keys(
    pepper: str, *, phone: str | None, id_card: str | None, district: str | None, address: str | None
) -> dict[str, str]:
    """The repeat-caller keys of a call: same phone, same ID-card, or same household (district + address).

    `phone` and `id_card` must already be normalised (contracts.validation)."""
    keys: dict[str, str] = {}
    if phone:
        keys["phone"] = lookup_key(pepper, "phone", phone)
    if id_card:
        keys["id_card"] = lookup_key(pepper, "id_card", id_card)
    if district and (home := normalise_address(address)):
        keys["household"] = lookup_key(pepper, "household", f"{district}|{home}")
    return keys


def mask_name(name: str) -> str:
    """张三丰 -> 张**: enough for an operator to recognise a caller, not to identify them in a list."""
    name = (name or "").strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678, 023-63891234 -> 023-****1234: enough to read back to the caller."""
    area, _, local = phone.rpartition("-")
    if area:
        return f"{area}-{'*' * max(0, len(local) - 4)}{local[-4:]}"
    return phone[:3] + "*" * max(0, len(phone) - 7) + phone[-4:] if len(phone) > 7 else "*" * len(phone)
