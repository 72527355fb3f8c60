"""The SLA policy file: every target cites provisions, classes the router emits exist, bad files refuse."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from services.notify.domain.policy import PolicyError, load_policy, parse_policy
from tests.notify.conftest import DEFAULT_POLICY

pytestmark = pytest.mark.unit
RAW = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
NOW = datetime(2026, 2, 15, tzinfo=UTC)


def test_the_router_classes_exist_and_every_target_cites_a_provision() -> None:
    policy = load_policy()
    classes = policy.version_at(NOW).classes
    assert {"emergency", "same_day", "fast_track", "standard", "payment"} <= set(classes)
    for sla_class in classes.values():
        assert sla_class.provisions
        for target in sla_class.targets.values():
            assert target.rule_id.startswith("SLA-") and target.provisions


def test_emergency_targets_are_those_of_the_notice_P2_2() -> None:
    emergency = load_policy().class_named("emergency", NOW)
    assert emergency.targets["sign_for"].within == timedelta(minutes=30)
    assert emergency.targets["resolution"].within == timedelta(hours=2)
    assert not emergency.pause.allowed


def test_warning_share_defaults_to_75_percent_and_can_be_overridden() -> None:
    assert load_policy().warning_share(NOW) == 0.75
    assert load_policy(warning_share=0.5).warning_share(NOW) == 0.5
    with pytest.raises(PolicyError):
        load_policy(warning_share=1.5)


def test_a_later_version_applies_from_its_effective_date() -> None:
    data = copy.deepcopy(RAW)
    newer = copy.deepcopy(data["versions"][0])
    newer["version"] = "2027-sla2"
    newer["effective_from"] = "2027-01-01T00:00:00+08:00"
    newer["classes"]["emergency"]["targets"]["sign_for"]["within"] = "PT20M"
    data["versions"].append(newer)
    policy = parse_policy(data)
    assert policy.class_named("emergency", NOW).targets["sign_for"].within == timedelta(minutes=30)
    later = datetime(2027, 3, 1, tzinfo=UTC)
    assert policy.class_named("emergency", later).targets["sign_for"].within == timedelta(minutes=20)
    assert policy.choose("emergency", later).policy_version == "2027-sla2"


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["versions"][0]["classes"]["standard"]["targets"]["resolution"].update(provisions=[]),
        lambda d: d["versions"][0]["classes"]["standard"]["targets"]["resolution"].update(provisions=["X9"]),
        lambda d: d["versions"][0]["classes"]["standard"]["targets"]["resolution"].update(by="end_of_day"),
        lambda d: d["versions"][0]["classes"]["standard"]["targets"].pop("sign_for"),
        lambda d: d["versions"][0].update(fallback_class="nonexistent"),
        lambda d: d["versions"][0].update(warning_share=1.2),
        lambda d: d["versions"][0]["classes"]["emergency"]["escalation"].reverse(),
        lambda d: d.update(timezone="Asia/Shanghai"),
    ],
)
def test_an_invalid_policy_file_is_refused_at_start_up(breakage) -> None:
    data = copy.deepcopy(RAW)
    breakage(data)
    with pytest.raises(PolicyError):
        parse_policy(data)
