"""P2.2: a tekun person who cannot look after themselves and wishes it gets institutional care. The
service is in the catalogue, the router sends it to civil affairs of the place with its own class, and
notify holds that class's deadline (from the policy version that introduced it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.catalogue import service_catalogue
from services.notify.domain.policy import load_policy
from services.router.domain.catalogue import load_catalogue
from services.router.domain.routing import RoutingFacts, decide

pytestmark = pytest.mark.unit


def test_p2_2_institutional_care_is_a_catalogue_service_with_the_person_s_wish_required():
    service = service_catalogue().by_code()["tekun_institutional_care"]
    assert service.provisions == ("P2.2",) and not service.emergency
    required = {a.code for a in service.attributes if a.required}
    assert required == {"self_care_ability", "wishes_institutional_care"}


def test_p2_2_tekun_institutional_care_goes_to_civil_affairs_with_its_own_deadline():
    catalogue = load_catalogue()
    routing = decide(
        catalogue,
        RoutingFacts(
            district="500106",
            needs=("tekun_institutional_care",),
            household_status="tekun",
            received_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        ),
    )
    assert routing.lead is not None and routing.lead.department == "civil_affairs"
    assert routing.lead.district == "500106"  # the place of hardship acts
    assert routing.sla_class == "institutional_care"
    assert routing.decision.rule_ids[0] == "R-P2.2-TEKUN-INSTITUTIONAL-CARE" and "P2.2" in routing.decision.provisions
    assert catalogue.sla("institutional_care").task_due == timedelta(days=10)


def test_p2_2_notify_holds_the_institutional_care_deadline_from_its_policy_version():
    policy = load_policy()
    now = datetime(2026, 12, 2, tzinfo=UTC)
    chosen = policy.choose("institutional_care", now)
    assert not chosen.fell_back and chosen.policy_version == "2026.12-sla3"
    resolution = chosen.sla_class.targets["resolution"]
    assert resolution.rule_id == "SLA-INSTITUTIONAL-RESOLVE" and resolution.provisions == ("P2.2",)
    assert resolution.within == timedelta(days=10) and resolution.working_days
    assert chosen.sla_class.targets["sign_for"].within == timedelta(hours=8)
    # The classes of the version before stay as they were.
    assert policy.class_named("standard", now) == policy.class_named("standard", now - timedelta(days=60))
