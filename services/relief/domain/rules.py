"""The notice's temporary-assistance and dibao rules as pure functions of plain facts.

Each rule cites its POLICY.md provision and returns a `Proposal`: eligible or not, the amount (or its
cap), the schedule, the reasons in Chinese and English, and what the officer must still verify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from contracts.codes import is_district
from services.relief.domain.facts import CaseFacts, Category
from services.relief.domain.money import yuan
from services.relief.domain.parameters import NoParameters, RuleParameters, RulesBook, packaged_rules
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
class Check:
    """An intake answer the rule needed and did not get: the officer verifies it before deciding, so nothing
    is paid or refused on a guess (P6.3)."""

    field: str  # the intake answer's attribute code (contracts/data/services.yaml)
    reason_zh: str
    reason_en: str

    @property
    def text(self) -> str:
        return f"{self.reason_zh} | {self.reason_en}"

    def as_record(self) -> dict[str, str]:
        return {"field": self.field, "reason_zh": self.reason_zh, "reason_en": self.reason_en}


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
    checks: tuple[Check, ...] = ()  # answers missing at intake: the officer verifies them (also in `to_verify`)
    parameters: str | None = None  # the parameter set the rule used, `id@vN` (P6.3)
    four_eyes_above: Decimal | None = None  # P5.2c: above this amount a second officer approves
    payer_basis: str = "place_of_hardship"  # or "habitual_residence" (P5.2b)


def payer(facts: CaseFacts, pays: str | None = None) -> tuple[str, str | None]:
    """P5.2d: the place where the emergency happened pays, unless a rule names another district (`pays`:
    P5.2b's place of habitual residence); the hukou district is told if it differs from the payer."""
    district = pays or facts.place_district
    notice = facts.hukou_district if facts.hukou_district and facts.hukou_district != district else None
    return district, notice


def _area(facts: CaseFacts) -> tuple[Area, tuple[str, ...]]:
    if facts.registry is not None:
        return facts.registry.area, ()
    return Area.URBAN, ("城乡类别未知，暂按城市标准，请核实 | urban or rural unknown: urban standard assumed, verify",)


def _base(
    facts: CaseFacts,
    rule_id: str,
    need: str,
    provisions: tuple[str, ...],
    params: RuleParameters,
    *,
    pays: str | None = None,
) -> dict[str, Any]:
    pay, notice = payer(facts, pays)
    return {
        "rule_id": rule_id,
        "need": need,
        "provisions": provisions,
        "payer_district": pay,
        "hukou_notice_district": notice,
        "facts": facts.as_record() | {"parameters": params.cite},
        "parameters": params.cite,
    }


def _with_checks(verify: list[str], checks: list[Check]) -> tuple[str, ...]:
    return tuple([*verify, *(c.text for c in checks)])


def p52a_epidemic_patient(facts: CaseFacts, book: StandardsBook, rules: RulesBook) -> Proposal:
    """P5.2a: a confirmed COVID-19 patient in dibao/tekun/low-income household or a child in difficulty
    gets 2 x the local dibao standard every month from confirmation until discharge."""
    params = rules.in_force(facts.reported_on)
    p = params.p52a
    base = _base(facts, "P5.2a", "temp_assist_epidemic", ("P5.2a", "P5.2d"), params)
    reasons: list[str] = []
    verify = ["新冠确诊及住院证明 | proof of COVID-19 diagnosis and hospitalisation"]
    households = {str(c): c for c in p.household_categories}
    declared = households.get(facts.household_status)
    child = facts.special_groups & {str(g) for g in p.child_groups}
    # The registry keeps children in difficulty under the same codes as the intake's special groups.
    child_categories = [Category(str(g)) for g in p.child_groups if str(g) in set(Category)]
    in_registry = facts.registry_has(*p.household_categories, *child_categories)
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
    monthly = yuan(p.multiplier * standard)
    reasons.append(
        f"按当地{'城市' if area is Area.URBAN else '农村'}低保标准{standard}元的{p.multiplier}倍按月发放，至出院止 | "
        f"{p.multiplier} x the local {area} dibao standard {standard} yuan, monthly until discharge"
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


def p52b_uninsured_unemployed(facts: CaseFacts, book: StandardsBook, rules: RulesBook) -> Proposal:
    """P5.2b: uninsured unemployed who cannot return to work because of the epidemic, no income for 3
    consecutive months, not in dibao, on application: a one-time grant of at most 2 x the urban standard,
    paid by the place of habitual residence (the place of hardship acts when it is not known, P5.2d)."""
    params = rules.in_force(facts.reported_on)
    p = params.p52b
    answered = facts.answer("habitual_residence_district")
    residence = answered if answered and is_district(answered) else None
    base = _base(facts, "P5.2b", "temp_assist_unemployed", ("P5.2b", "P5.2d"), params, pays=residence)
    refusals: list[str] = []
    reasons: list[str] = []
    checks: list[Check] = []
    verify = ["本人申请 | the person's own application"]
    insured = facts.answer("unemployment_insured")
    if insured == "yes":
        refusals.append(
            "已参加失业保险，不属于未参保失业人员 | covered by unemployment insurance: "
            "not an uninsured unemployed person"
        )
    elif Category.UNEMPLOYMENT_BENEFIT in p.excluded_categories and facts.registry_has(Category.UNEMPLOYMENT_BENEFIT):
        refusals.append("已享受失业保险待遇 | covered by unemployment insurance")
    elif insured == "no":
        reasons.append("本人称未参加失业保险 | says they are not covered by unemployment insurance")
    else:
        checks.append(
            Check(
                "unemployment_insured",
                "来电未回答是否参加失业保险，须核实未参保",
                "the caller was not asked about unemployment insurance: verify that the person is uninsured",
            )
        )
    cannot_return = facts.answer("cannot_return_due_to_epidemic")
    if cannot_return == "no":
        refusals.append("能够返岗，不属于因疫情无法返岗 | can return to work: not kept from it by the epidemic")
    elif cannot_return == "yes":
        reasons.append("因疫情无法返岗 | cannot return to work because of the epidemic")
    else:
        checks.append(
            Check(
                "cannot_return_due_to_epidemic",
                "来电未回答是否因疫情无法返岗，须核实",
                "the caller was not asked whether the epidemic keeps them from returning to work: verify",
            )
        )
    months = facts.months_without_income
    least = p.months_without_income
    if months is None:
        checks.append(
            Check("months_without_income", "无收入月数未记录，须核实", "months without income not recorded: verify")
        )
    elif months < least:
        refusals.append(f"连续无收入{months}个月，不足{least}个月 | {months} months without income, fewer than {least}")
    else:
        reasons.insert(0, f"连续无收入{months}个月 | {months} consecutive months without income")
    for category in p.excluded_categories:
        if category is Category.DIBAO and (facts.household_status == "dibao" or facts.registry_has(category)):
            refusals.append("已纳入低保 | already receives dibao")
        elif category is not Category.UNEMPLOYMENT_BENEFIT and facts.registry_has(category):  # that one: above
            refusals.append(f"已在册（{category}），不属于本项救助对象 | registered as {category}: not covered")
    if refusals:
        return Proposal(
            **base,
            eligible=False,
            schedule=Schedule.ONCE,
            amount_kind=AmountKind.CAPPED,
            reasons=tuple(refusals),
            checks=tuple(checks),
        )
    payer_district = base["payer_district"]
    if residence:
        reasons.append(f"由经常居住地（{residence}）发放 | paid by the district of habitual residence ({residence})")
    else:
        checks.append(
            Check(
                "habitual_residence_district",
                "经常居住地未记录：由困难发生地先行救助（P5.2d），须核实经常居住地",
                "habitual residence not recorded: the place of hardship acts (P5.2d); verify the residence",
            )
        )
    area = Area(p.standard_area)
    standard = book.amount(payer_district, area, facts.reported_on)
    cap = yuan(p.multiplier * standard)
    area_zh = "城市" if area is Area.URBAN else "农村"
    reasons.append(
        f"一次性救助，不超过经常居住地{area_zh}低保标准{standard}元的{p.multiplier}倍（{cap}元），由经办人员确定金额 | "
        f"one-time grant up to {p.multiplier} x the {area} dibao standard {standard} yuan ({cap} yuan); "
        "the officer sets it"
    )
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.ONCE,
        amount_kind=AmountKind.CAPPED,
        cap=cap,
        reasons=tuple(reasons),
        to_verify=_with_checks(verify, checks),
        area=area,
        checks=tuple(checks),
        payer_basis="habitual_residence" if residence else "place_of_hardship",
    )


def p52c_major_hardship(facts: CaseFacts, book: StandardsBook, rules: RulesBook) -> Proposal:
    """P5.2c: major living difficulty, case by case (一事一议); the officer proposes the amount, and one above
    the threshold of the parameters in force needs a second officer."""
    params = rules.in_force(facts.reported_on)
    base = _base(facts, "P5.2c", "temp_assist_major", ("P5.2c", "P5.2d"), params)
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.ONCE,
        amount_kind=AmountKind.CASE_BY_CASE,
        reasons=("重大生活困难，一事一议确定救助金额 | major hardship: amount decided case by case",),
        to_verify=("困难情况及拟救助金额依据 | the hardship and the basis for the amount",),
        four_eyes_above=params.p52c.four_eyes_above_yuan,
    )


def p51_dibao_fast_track(facts: CaseFacts, book: StandardsBook, rules: RulesBook) -> Proposal:
    """P5.1: a household whose income fell because of the epidemic (the intake's answer) gets the simplified,
    faster review, without public appraisal when its application is undisputed (decided at approval); a
    household already on dibao whose income fell has its top-up raised. Not asked: the standard review, and
    the officer verifies the answer."""
    params = rules.in_force(facts.reported_on)
    p = params.p51
    base = _base(facts, "P5.1", "dibao_application", ("P5.1", "P2.3"), params)
    fell = facts.answer("income_fell_due_to_epidemic")
    already = facts.household_status == "dibao" or facts.registry_has(Category.DIBAO)
    checks: list[Check] = []
    verify = ["家庭收入和财产 | household income and assets"]
    if fell == "yes" and already:
        reasons = [
            "已是低保对象，因疫情收入下降：按下降后的收入提高补差金额 | already on dibao and income fell in the "
            "epidemic: raise the top-up to the lower income"
        ]
        sla, steps = "dibao_topup", p.topup_steps
    elif fell == "yes":
        reasons = [
            "因疫情收入下降：简化审核、快速办理；无争议的免于民主评议 | income fell because of the epidemic: "
            "simplified, faster review; an undisputed application skips the public appraisal"
        ]
        sla, steps = "dibao_fast_track", p.fast_steps
    else:
        reasons = ["常规低保审核（含民主评议） | standard dibao review (with public appraisal)"]
        sla, steps = "dibao_standard", p.standard_steps
        if fell is None:
            hints = sorted(facts.special_groups & {str(g) for g in p.epidemic_hints})
            if facts.months_without_income:
                hints.append(f"months_without_income={facts.months_without_income}")
            hint_zh = f"（来电有疫情影响迹象：{', '.join(hints)}）" if hints else ""
            hint_en = f" (the call shows signs of it: {', '.join(hints)})" if hints else ""
            checks.append(
                Check(
                    "income_fell_due_to_epidemic",
                    f"来电未回答是否因疫情收入下降{hint_zh}：暂按常规审核，核实后可转快速通道",
                    f"the caller was not asked whether income fell because of the epidemic{hint_en}: standard "
                    "review until verified",
                )
            )
        if already:
            reasons.append("已是低保对象 | already on dibao")
    return Proposal(
        **base,
        eligible=True,
        schedule=Schedule.REVIEW,
        amount_kind=AmountKind.NONE,
        reasons=tuple(reasons),
        sla_class=sla,
        review_steps=tuple(steps),
        to_verify=_with_checks(verify, checks),
        checks=tuple(checks),
    )


def p51_steps_followed(sla_class: str | None, contested: bool, steps: Sequence[str]) -> tuple[str, ...]:
    """P5.1: a fast-tracked application skips public appraisal only when nobody contests it; a contested one
    is appraised before its approval."""
    if sla_class == "dibao_fast_track" and contested and "public_appraisal" not in steps:
        return (*steps[:-1], "public_appraisal", *steps[-1:])
    return tuple(steps)


CaseRule = Callable[[CaseFacts, StandardsBook, RulesBook], Proposal]

# Need code (contracts/data/services.yaml) -> the rule that answers it.
CASE_RULES: dict[str, CaseRule] = {
    "temp_assist_epidemic": p52a_epidemic_patient,
    "temp_assist_unemployed": p52b_uninsured_unemployed,
    "temp_assist_major": p52c_major_hardship,
    "dibao_application": p51_dibao_fast_track,
}


def evaluate_case(facts: CaseFacts, book: StandardsBook, rules: RulesBook | None = None) -> list[Proposal]:
    """Every proposal the case's needs call for (needs relief does not handle are ignored), by the parameters
    in force on the day reported (the shipped set when no book is given).

    Raises NoStandard (or NoParameters) when the paying district has no standard (or no parameter set) in
    force: a data gap, not a refusal.
    """
    book_of_rules = rules if rules is not None else packaged_rules()
    return [CASE_RULES[need](facts, book, book_of_rules) for need in dict.fromkeys(facts.needs) if need in CASE_RULES]


__all__ = [
    "CASE_RULES",
    "AmountKind",
    "Check",
    "NoParameters",
    "NoStandard",
    "Proposal",
    "Schedule",
    "evaluate_case",
    "payer",
]
