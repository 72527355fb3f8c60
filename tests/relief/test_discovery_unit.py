"""Proactive discovery rules (P2.3 主动发现, 未诉先办): each shipped rule finds what it names, once per
natural proposal id, and proposes a case the hotline can file; the rules file is validated at start-up."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pytest
from pydantic import ValidationError

from contracts.events.hotline import HouseholdStatus, Place
from services.relief.domain.discovery import (
    Household,
    Trigger,
    household_status,
    load_discovery_rules,
    needs_found,
    overdue_checks,
    overdue_findings,
    proposal,
    registry_findings,
)

pytestmark = pytest.mark.unit

TEXT = resources.files("services.relief.data").joinpath("discovery_rules.yaml").read_text(encoding="utf-8")
RULES = load_discovery_rules(TEXT)
ON = date(2021, 3, 20)


def household(*categories: str, approved_on: date = date(2020, 5, 1), **kw: object) -> Household:
    return Household("R1", "张三", "500103", frozenset(categories), approved_on, **kw)  # type: ignore[arg-type]


def ids(findings: list) -> list[str]:
    return [f.rule.id for f in findings]


def test_p2_3_every_shipped_rule_cites_p2_3_and_names_catalogue_needs():
    assert {r.trigger for r in RULES.rules} == set(Trigger)
    for rule in RULES.rules:
        assert "P2.3" in rule.provisions and rule.id.startswith("D-P")


def test_p2_3_dropped_from_dibao_proposes_an_outreach_case():
    """D-P2.3-DROPPED-FROM-DIBAO: a household that was dibao and is no longer, after an import."""
    found = registry_findings(household("dibao"), household("low_income"), RULES, ON)
    assert ids(found) == ["D-P2.3-DROPPED-FROM-DIBAO"]
    assert found[0].proposal_id == "D-P2.3-DROPPED-FROM-DIBAO|R1|2021-03-20"


def test_p2_3_a_dibao_record_that_ended_counts_as_dropped():
    ended = household("dibao", ended_on=date(2021, 3, 1))
    assert ids(registry_findings(household("dibao"), ended, RULES, ON)) == ["D-P2.3-DROPPED-FROM-DIBAO"]


def test_p2_3_an_unchanged_record_finds_nothing():
    assert registry_findings(household("dibao"), household("dibao"), RULES, ON) == []


def test_p2_3_newly_low_income_is_found_only_when_approved_recently():
    """D-P2.3-NEWLY-LOW-INCOME: new in the category within 31 days; a first import of old records is quiet."""
    fresh = household("low_income", approved_on=date(2021, 3, 10))
    assert ids(registry_findings(None, fresh, RULES, ON)) == ["D-P2.3-NEWLY-LOW-INCOME"]
    assert registry_findings(None, household("low_income"), RULES, ON) == []
    assert registry_findings(household("low_income"), fresh, RULES, ON) == []  # was low-income already


def test_p2_3_a_member_hospitalised_proposes_medical_aid():
    """D-P2.3-MEMBER-HOSPITALISED: more members in hospital than the last import said."""
    found = registry_findings(household("dibao"), household("dibao", hospitalised=1), RULES, ON)
    assert ids(found) == ["D-P2.3-MEMBER-HOSPITALISED"] and found[0].rule.needs == ("medical_aid",)
    assert registry_findings(household("dibao", hospitalised=1), household("dibao", hospitalised=1), RULES, ON) == []


def test_p2_2_p2_3_a_visit_still_not_made_after_its_delay_is_found_once_per_due_visit():
    """D-P2.2-VISIT-OVERDUE: due 10 March, 2 days' grace: looked at on the 13th, found then, not before."""
    assert overdue_checks(date(2021, 3, 10), RULES, ON) == [("D-P2.2-VISIT-OVERDUE", date(2021, 3, 13))]
    assert overdue_findings("R-R1", date(2021, 3, 10), RULES, date(2021, 3, 12)) == []
    [finding] = overdue_findings("R-R1", date(2021, 3, 10), RULES, date(2021, 3, 13))
    assert finding.proposal_id == "D-P2.2-VISIT-OVERDUE|R-R1|2021-03-10"
    assert finding.rule.needs == ("special_group_visit",)


def test_p2_2_p2_3_needs_found_on_a_visit_become_the_case_needs():
    """D-P2.2-VISIT-NEEDS-FOUND: the case carries what the visit found."""
    [finding] = needs_found("R-R1", "R-R1|2021-03-20|w|in_person", RULES, ON)
    event = proposal(finding, name="张三", place=Place(district="500103"), needs=["medical_aid", "housing_aid"])
    assert event.needs == ("medical_aid", "housing_aid") and event.rule_id == "D-P2.2-VISIT-NEEDS-FOUND"
    assert event.proposal_id == event.case_id == "D-P2.2-VISIT-NEEDS-FOUND|R-R1|2021-03-20|w|in_person"
    assert event.provisions == ("P2.3", "P2.2") and "主动发现" in event.description


def test_p2_3_household_status_is_the_strongest_registry_category():
    assert household_status({"low_income", "dibao"}) is HouseholdStatus.DIBAO
    assert household_status({"tekun", "dibao"}) is HouseholdStatus.TEKUN
    assert household_status(set()) is HouseholdStatus.NONE


def test_p2_3_rules_with_unknown_needs_or_no_provision_do_not_load():
    bad_need = TEXT.replace("needs: [medical_aid]", "needs: [teleportation]")
    with pytest.raises(ValidationError, match="unknown catalogue needs"):
        load_discovery_rules(bad_need)
    no_cite = TEXT.replace(
        "provisions: [P2.3]\n    trigger: member_hospitalised", "provisions: [x]\n    trigger: member_hospitalised"
    )
    with pytest.raises(ValidationError, match="provision ids look like"):
        load_discovery_rules(no_cite)


def test_p2_3_a_closed_rule_finds_nothing_after_its_end():
    closed = load_discovery_rules(
        TEXT.replace(
            "    trigger: member_hospitalised\n", "    trigger: member_hospitalised\n    effective_to: 2021-03-01\n"
        )
    )
    assert registry_findings(household("dibao"), household("dibao", hospitalised=2), closed, ON) == []


def test_p2_3_the_registry_file_may_say_how_many_members_are_in_hospital():
    """P2.3: the optional `hospitalised` column feeds D-P2.3-MEMBER-HOSPITALISED; a bad value names the field."""
    from services.relief.domain.registry import id_card_check_char, parse_registry_csv

    first17 = "50010319800101001"
    card = first17 + id_card_check_char(first17)
    header = "recipient_id,name,id_card,district,area,categories,approved_on,hospitalised\n"
    report = parse_registry_csv(
        header + f"R1,张三,{card},500103,urban,dibao,2020-05-01,1\nR2,李四,{card},500103,urban,dibao,2020-05-01,x\n",
        "salt",
    )
    assert [r.hospitalised for r in report.accepted] == [1]
    assert report.rejected[0]["errors"][0]["field"] == "hospitalised"
