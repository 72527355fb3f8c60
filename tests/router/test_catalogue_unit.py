"""The dispatch catalogue: validated data, every rule exercised, every core/route provision covered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from contracts.catalogue import service_codes
from services.router.domain.catalogue import CatalogueError, Rule, load_catalogue, parse_catalogue
from services.router.domain.routing import RoutingFacts, decide

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
# Provisions marked `core` or `route` in POLICY.md (P5.2 is split into its four sub-provisions).
CORE_AND_ROUTE = [
    "P1.1",
    "P1.2",
    "P1.3",
    "P2.1",
    "P2.2",
    "P2.3",
    "P3.1",
    "P3.2",
    "P4.1",
    "P5.1",
    "P5.2a",
    "P5.2b",
    "P5.2c",
    "P5.2d",
    "P5.3",
    "P6.1",
    "P6.2",
]
RECEIVED = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)


def facts_for(rule: Rule, **extra: object) -> RoutingFacts:
    """Facts that satisfy exactly what `rule` asks for."""
    when = rule.when
    fields: dict = {
        "district": "500103",
        "needs": (rule.service,) if rule.service else (rule.services[0] if rule.services else "other",),
        "received_at": RECEIVED,
        "emergency": bool(when.emergency),
    }
    if when.household_status_in:
        fields["household_status"] = when.household_status_in[0]
    if when.special_groups_any:
        fields["special_groups"] = (when.special_groups_any[0],)
    if when.min_months_without_income is not None:
        fields["months_without_income"] = when.min_months_without_income
    if when.answers:
        fields["answers"] = {code: values[0] for code, values in when.answers.items()}
    fields.update(extra)
    return RoutingFacts(**fields)


def raw() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("services.router.data").joinpath("dispatch_catalogue.yaml").read_text())


@pytest.mark.parametrize("provision", CORE_AND_ROUTE)
def test_every_core_and_route_provision_has_a_rule(provision: str) -> None:
    assert provision in {p for r in CATALOGUE.rules for p in r.provisions}, provision


def test_every_service_code_has_a_dispatch_rule() -> None:
    """P2.3 one door: every need the hotline can record is routed by a rule, not only by the fallback."""
    routed = {r.service for r in CATALOGUE.rules if r.kind == "dispatch"}
    assert service_codes() <= routed


@pytest.mark.parametrize("rule", [r for r in CATALOGUE.rules if r.kind == "dispatch"], ids=lambda r: r.id)
def test_each_dispatch_rule_decides_when_its_conditions_hold(rule: Rule) -> None:
    routing = decide(CATALOGUE, facts_for(rule))
    assert routing.decision.rule_ids[0] == rule.id
    assert routing.lead is not None and routing.lead.department == rule.lead
    assert routing.lead.district == "500103"  # P5.2d: the place of hardship acts
    for dept in rule.co_handlers:
        assert dept in {a.department for a in routing.co_handlers}
    assert set(rule.provisions) <= set(routing.decision.provisions)
    assert rule.sla_class is not None  # every dispatch rule names its class (validated)
    assert CATALOGUE.sla_rank[routing.sla_class] <= CATALOGUE.sla_rank[rule.sla_class]


@pytest.mark.parametrize("rule", [r for r in CATALOGUE.rules if r.kind == "modifier"], ids=lambda r: r.id)
def test_each_modifier_applies_when_its_conditions_hold(rule: Rule) -> None:
    routing = decide(CATALOGUE, facts_for(rule))
    assert rule.id in routing.decision.rule_ids
    departments = {a.department for a in routing.co_handlers} | {routing.lead.department if routing.lead else ""}
    assert set(rule.co_handlers) <= departments
    if rule.sla_class:
        assert routing.sla_class == rule.sla_class


@pytest.mark.parametrize("rule", [r for r in CATALOGUE.rules if r.when.size()], ids=lambda r: r.id)
def test_conditional_rules_do_not_apply_when_their_conditions_fail(rule: Rule) -> None:
    facts = RoutingFacts(
        district="500103",
        needs=(rule.service or (rule.services or ("other",))[0],),
        received_at=RECEIVED,
        emergency=not rule.when.emergency if rule.when.emergency is not None else False,
    )
    assert rule.id not in decide(CATALOGUE, facts).decision.rule_ids


def test_rules_not_yet_in_effect_do_not_decide() -> None:
    data = raw()
    data["rules"][0]["effective_from"] = "2030-01-01"
    catalogue = parse_catalogue(data)
    rule = catalogue.rules[0]
    routing = decide(catalogue, facts_for(rule))
    assert rule.id not in routing.decision.rule_ids
    assert routing.decision.rule_ids[0] == "R-FALLBACK"


def test_a_closed_rule_gives_way_to_its_successor() -> None:
    data = raw()
    old = dict(data["rules"][0], effective_to="2026-01-01")
    new = dict(data["rules"][0], id="R-P1.1-SUPPLY-2026", effective_from="2026-01-01", lead="market_regulation")
    data["rules"][0] = old
    data["rules"].append(new)
    catalogue = parse_catalogue(data)
    before = decide(catalogue, facts_for(catalogue.rules[0], received_at=datetime(2025, 12, 1, tzinfo=UTC)))
    after = decide(catalogue, facts_for(catalogue.rules[0]))
    assert before.lead is not None and after.lead is not None
    assert before.decision.rule_ids[0] == "R-P1.1-SUPPLY" and before.lead.department == "commerce"
    assert after.decision.rule_ids[0] == "R-P1.1-SUPPLY-2026" and after.lead.department == "market_regulation"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"service": "no_such_service"}, "rule R-P1.1-SUPPLY: unknown service code 'no_such_service'"),
        ({"lead": "ministry_of_magic"}, "rule R-P1.1-SUPPLY: unknown department 'ministry_of_magic'"),
        ({"sla_class": "yesterday"}, "rule R-P1.1-SUPPLY: unknown sla_class 'yesterday'"),
        ({"provisions": ["5.2"]}, "rule R-P1.1-SUPPLY: provisions"),
        ({"provisions": []}, "rule R-P1.1-SUPPLY: provisions"),
        ({"when": {"household_status_in": ["rich"]}}, "rule R-P1.1-SUPPLY: when.household_status_in"),
        ({"co_handlers": ["commerce"]}, "rule R-P1.1-SUPPLY: the lead 'commerce' cannot also be a co-handler"),
        ({"effective_to": "2020-01-01"}, "rule R-P1.1-SUPPLY: effective_to must be after effective_from"),
    ],
)
def test_a_bad_rule_is_refused_at_start_up_naming_the_rule(patch: dict, message: str) -> None:
    data = raw()
    data["rules"][0].update(patch)
    with pytest.raises(CatalogueError) as err:
        parse_catalogue(data)
    assert message in str(err.value)


def test_duplicate_rule_ids_are_refused() -> None:
    data = raw()
    data["rules"].append(dict(data["rules"][0]))
    with pytest.raises(CatalogueError, match="R-P1.1-SUPPLY: duplicate rule id"):
        parse_catalogue(data)


def test_catalogue_file_that_is_not_yaml_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("answers", "named"),
    [
        ({"subsidy_recipient_kind": ["pensioner"]}, "takes some of"),
        ({"period": ["2026-01"]}, "is not a single-value answer"),
        ({"no_such_answer": ["yes"]}, "is not a single-value answer"),
    ],
)
def test_p1_3_an_answer_condition_must_name_a_coded_answer_of_the_service(answers, named) -> None:
    """P1.3: a rule reading an intake answer names one of the service's single-value answers and its values."""
    data = raw()
    rule = next(r for r in data["rules"] if r["id"] == "R-P1.3-PRICE-SUBSIDY-YOUFU")
    rule["when"] = {"answers": answers}
    with pytest.raises(CatalogueError, match=f"R-P1.3-PRICE-SUBSIDY-YOUFU: .*{named}"):
        parse_catalogue(data)
