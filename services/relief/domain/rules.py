"""The notice's temporary-assistance and dibao rules as pure functions of plain facts.

Each rule cites its POLICY.md provision and returns a `Proposal`: eligible or not, the amount (or its
cap), the schedule, the reasons in Chinese and English, and what the officer must still verify.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.relief.domain.facts import CaseFacts, Category
from services.relief.domain.money import yuan
from services.relief.domain.standards import Area, NoStandard, StandardsBook


class Schedule(StrEnum):
    MONTHLY = "monthly"  # paid every month until stopped (P5.2a)
    ONCE = "once"  # one payment (P5.2b, P5.2c)
    REVIEW = "review"  # no payment here: an application to review (P5.1)


class AmountKind(StrEnum):
    FIXED = "fixed"  # the rule sets the amount
    CAPPED = "capped"  # the officer sets it, at most the cap
    CASE_BY_CASE = "case_by_case"  # the officer sets it (一事一议); four eyes above a threshold
    NONE = "none"


@dataclass(frozen=True)
class Proposal:
    rule_id: str
    need: str
    provisions: tuple[str, ...]
    eligible: bool
    schedule: Schedule
    amount_kind: AmountKind
    payer_district: str
    amount: Decimal | None = None  # FIXED: the amount per period
    cap: Decimal | None = None  # CAPPED: the most the officer may set
    reasons: tuple[str, ...] = ()  # "中文 | English"
    to_verify: tuple[str, ...] = ()  # facts the officer must check before approving
    facts: dict[str, Any] = field(default_factory=dict)
    hukou_notice_district: str | None = None  # P5.2d: tell this district when paid
    sla_class: str | None = None
    review_steps: tuple[str, ...] = ()
    area: Area | None = None


# Groups named by P5.2a. "Children in difficulty" (困境儿童) are taken as orphans and de-facto
# unsupported children, the two groups the intake records.
P52A_HOUSEHOLD = {"dibao": Category.DIBAO, "tekun": Category.TEKUN, "low_income": Category.LOW_INCOME}
P52A_CHILD_GROUPS = {"orphan", "unsupported_child"}
P52A_MULTIPLIER = Decimal(2)
P52B_MULTIPLIER = Decimal(2)
P52B_MONTHS_WITHOUT_INCOME = 3
# P5.1: signs that the household's income fell because of the epidemic.
P51_EPIDEMIC_GROUPS = {"covid_hospitalised", "unemployed_uninsured", "stranded"}
P51_FAST_STEPS: tuple[str, ...] = ("application", "household_check", "approval")
P51_STANDARD_STEPS: tuple[str, ...] = ("application", "household_check", "public_appraisal", "approval")


def payer(facts: CaseFacts) -> tuple[str, str | None]:
    """P5.2d: the place where the emergency happened pays; the hukou district is told if it differs."""
    notice = facts.hukou_district if facts.hukou_district and facts.hukou_district != facts.place_district else None
    return facts.place_district, notice


def _area(facts: CaseFacts) -> tuple[Area, tuple[str, ...]]:
    if facts.registry is not None:
        return facts.registry.area, ()
    return Area.URBAN, ("城乡类别未知，暂按城市标准，请核实 | urban or rural unknown: urban standard assumed, verify",)


def _base(facts: CaseFacts, rule_id: str, need: str, provisions: tuple[str, ...]) -> dict[str, Any]:
    pay, notice = payer(facts)
    return {
        "rule_id": rule_id,
        "need": need,
        "provisions": provisions,
        "payer_district": pay,
        "hukou_notice_district": notice,
        "facts": facts.as_record(),
    }


def p52a_epidemic_patient(facts: CaseFacts, book: StandardsBook) -> Proposal:
    """P5.2a: a confirmed COVID-19 patient in dibao/tekun/low-income household or a child in difficulty
    gets 2 x the local dibao standard every month from confirmation until discharge."""
    base = _base(facts, "P5.2a", "temp_assist_epidemic", ("P5.2a", "P5.2d"))
    reasons: list[str] = []
    verify = ["新冠确诊及住院证明 | proof of COVID-19 diagnosis and hospitalisation"]
    declared = P52A_HOUSEHOLD.get(facts.household_status)
    child = facts.special_groups & P52A_CHILD_GROUPS
    in_registry = facts.registry_has(*P52A_HOUSEHOLD.values(), Category.ORPHAN, Category.UNSUPPORTED_CHILD)
    if in_registry:
        reasons.append("低收入人口数据库在册 | listed in the low-income population database")
    elif declared or child:
        reasons.append(
            f"来电申报身份：{declared or ', '.join(sorted(child))} | declared group: "
            f"{declared or ', '.join(sorted(child))}"
        )
        verify.append("数据库未匹配，核实困难身份 | not matched in the database: verify the group")
    elif facts.household_status == "unknown":
        verify.append("困难身份未知，须核实 | household group unknown: verify")
    else:
        return Proposal(
            **base,
            eligible=False,
            schedule=Schedule.MONTHLY,
            amount_kind=AmountKind.FIXED,
            reasons=(
                "非低保、特困、困境儿童或低收入家庭成员 | not dibao, tekun, a child in difficulty "
                "or a low-income family member",
            ),
        )
    area, area_note = _area(facts)
    verify.extend(area_note)
    standard = book.amount(facts.place_district, area, facts.reported_on)
    monthly = yuan(P52A_MULTIPLIER * standard)
    reasons.append(
        f"按当地{'城市' if area is Area.URBAN else '农村'}低保标准{standard}元的2倍按月发放，至出院止 | "
        f"2 x the local {area} dibao standard {standard} yuan, monthly until discharge"
    )
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.MONTHLY,
        amount_kind=AmountKind.FIXED,
        amount=monthly,
        reasons=tuple(reasons),
        to_verify=tuple(verify),
        area=area,
    )


def p52b_uninsured_unemployed(facts: CaseFacts, book: StandardsBook) -> Proposal:
    """P5.2b: uninsured unemployed, no income for 3 consecutive months, not in dibao, on application:
    one-time grant of at most 2 x the urban standard of the place of habitual residence."""
    base = _base(facts, "P5.2b", "temp_assist_unemployed", ("P5.2b", "P5.2d"))
    refusals: list[str] = []
    verify = ["本人申请及因疫情无法返岗情况 | the person's own application and the epidemic job loss"]
    months = facts.months_without_income
    if months is None:
        verify.append("无收入月数未记录，须核实 | months without income not recorded: verify")
    elif months < P52B_MONTHS_WITHOUT_INCOME:
        refusals.append(f"连续无收入{months}个月，不足3个月 | {months} months without income, fewer than 3")
    if facts.household_status == "dibao" or facts.registry_has(Category.DIBAO):
        refusals.append("已纳入低保 | already receives dibao")
    if facts.registry_has(Category.UNEMPLOYMENT_BENEFIT):
        refusals.append("已享受失业保险待遇 | covered by unemployment insurance")
    if "unemployed_uninsured" not in facts.special_groups:
        verify.append("未参加失业保险情况 | that the person is not covered by unemployment insurance")
    if refusals:
        return Proposal(
            **base, eligible=False, schedule=Schedule.ONCE, amount_kind=AmountKind.CAPPED, reasons=tuple(refusals)
        )
    # The place of habitual residence is taken to be where the hardship was reported (P5.2d).
    standard = book.amount(facts.place_district, Area.URBAN, facts.reported_on)
    cap = yuan(P52B_MULTIPLIER * standard)
    reasons = [
        f"一次性救助，不超过经常居住地城市低保标准{standard}元的2倍（{cap}元），由经办人员确定金额 | "
        f"one-time grant up to 2 x the urban dibao standard {standard} yuan ({cap} yuan); the officer sets it"
    ]
    if months is not None:
        reasons.insert(0, f"连续无收入{months}个月 | {months} consecutive months without income")
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.ONCE,
        amount_kind=AmountKind.CAPPED,
        cap=cap,
        reasons=tuple(reasons),
        to_verify=tuple(verify),
        area=Area.URBAN,
    )


def p52c_major_hardship(facts: CaseFacts, book: StandardsBook) -> Proposal:
    """P5.2c: major living difficulty, case by case (一事一议); the officer proposes the amount."""
    base = _base(facts, "P5.2c", "temp_assist_major", ("P5.2c", "P5.2d"))
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.ONCE,
        amount_kind=AmountKind.CASE_BY_CASE,
        reasons=("重大生活困难，一事一议确定救助金额 | major hardship: amount decided case by case",),
        to_verify=("困难情况及拟救助金额依据 | the hardship and the basis for the amount",),
    )


def p51_dibao_fast_track(facts: CaseFacts, book: StandardsBook) -> Proposal:
    """P5.1: dibao applications from people whose income fell in the epidemic are reviewed faster;
    uncontested ones skip public appraisal (decided when the officer approves)."""
    base = _base(facts, "P5.1", "dibao_application", ("P5.1", "P2.3"))
    signs = sorted(facts.special_groups & P51_EPIDEMIC_GROUPS)
    if facts.months_without_income:
        signs.append(f"months_without_income={facts.months_without_income}")
    already = facts.household_status == "dibao" or facts.registry_has(Category.DIBAO)
    if signs:
        reasons = [
            f"因疫情收入下降（{', '.join(signs)}），简化审核、快速办理；无争议的免于民主评议 | income fell in the "
            f"epidemic ({', '.join(signs)}): fast track; uncontested applications skip public appraisal"
        ]
        sla, steps = "dibao_fast_track", P51_FAST_STEPS
    else:
        reasons = ["常规低保审核 | standard dibao review"]
        sla, steps = "dibao_standard", P51_STANDARD_STEPS
    if already:
        reasons.append("已是低保对象：按收入下降调整补差金额 | already in dibao: adjust the top-up to the lower income")
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.REVIEW,
        amount_kind=AmountKind.NONE,
        reasons=tuple(reasons),
        sla_class=sla,
        review_steps=steps,
        to_verify=("家庭收入和财产 | household income and assets",),
    )


def p51_steps_followed(sla_class: str | None, contested: bool) -> tuple[str, ...]:
    """P5.1: a fast-tracked application skips public appraisal only when nobody contests it."""
    if sla_class == "dibao_fast_track" and not contested:
        return P51_FAST_STEPS
    return P51_STANDARD_STEPS


CaseRule = Callable[[CaseFacts, StandardsBook], Proposal]

# Need code (contracts/data/services.yaml) -> the rule that answers it.
CASE_RULES: dict[str, CaseRule] = {
    "temp_assist_epidemic": p52a_epidemic_patient,
    "temp_assist_unemployed": p52b_uninsured_unemployed,
    "temp_assist_major": p52c_major_hardship,
    "dibao_application": p51_dibao_fast_track,
}


def evaluate_case(facts: CaseFacts, book: StandardsBook) -> list[Proposal]:
    """Every proposal the case's needs call for (needs relief does not handle are ignored).

    Raises NoStandard when the paying district has no standard in force: a data gap, not a refusal.
    """
    return [CASE_RULES[need](facts, book) for need in dict.fromkeys(facts.needs) if need in CASE_RULES]


__all__ = ["CASE_RULES", "AmountKind", "NoStandard", "Proposal", "Schedule", "evaluate_case", "payer"]
