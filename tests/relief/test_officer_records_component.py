"""What an officer's page reads from an entitlement, with the real store and no broker: the case's
emergency flag from the hotline's triage and the router, the signers' display names beside their ids
(older records with ids only still read), and the same officer refused a second signature (P5.2c)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import Forbidden
from common.principal import Principal, Role
from services.relief.app import load_standards_book
from services.relief.service import Relief
from services.relief.store import ReliefStore
from tests.relief.conftest import case_id, help_requested, relief_settings
from tests.support.events import dispatched

pytestmark = pytest.mark.component

FIRE = "T-FIRE: description mentions 着火 (P2.2, P4.1)"
ZHANG = Principal(sub="relief", role=Role.RELIEF_OFFICER, district="500103", name="救助经办 张敏")
CHEN = Principal(sub="relief2", role=Role.RELIEF_OFFICER, district="500103", name="救助复核 陈静")


@pytest.fixture
async def relief(db, mongodb_url, db_name) -> Relief:
    store = ReliefStore(db)
    await store.ensure_indexes()
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    return Relief(store=store, book=load_standards_book(settings), four_eyes_above=Decimal("5000.00"))


async def open_case(relief: Relief, *, emergency_reasons: tuple[str, ...] = (), **dispatch: object) -> str:
    case = case_id()
    needs = ("temp_assist_major",)
    await relief.on_help_requested(
        help_requested(case, *needs, emergency=bool(emergency_reasons), emergency_reasons=emergency_reasons)
    )
    await relief.on_dispatched(dispatched(case, needs=needs, **dispatch))  # type: ignore[arg-type]
    return case


async def test_a_fire_case_is_an_emergency_with_the_triage_rule_that_said_so(relief):
    case = await open_case(relief, emergency_reasons=(FIRE,))
    grant = await relief.get(f"{case}:P5.2c", ZHANG)
    assert grant.emergency and grant.emergency_reasons == [FIRE]


async def test_a_case_the_router_dispatched_as_an_emergency_is_one_too(relief):
    case = await open_case(relief, sla_class="emergency")
    grant = await relief.get(f"{case}:P5.2c", ZHANG)
    assert grant.emergency and grant.emergency_reasons == []


async def test_an_ordinary_case_is_not_an_emergency(relief):
    case = await open_case(relief)
    assert not (await relief.get(f"{case}:P5.2c", ZHANG)).emergency


async def test_both_signatures_and_the_payment_record_the_officers_display_names(relief):
    case = await open_case(relief)
    eid = f"{case}:P5.2c"
    signed = await relief.approve(eid, ZHANG, Decimal("8000.00"), "火灾损失")
    assert signed.status == "pending_approval" and signed.signed_by == ["relief"]
    assert signed.signed_by_shown == ["救助经办 张敏（relief）"]

    with pytest.raises(Forbidden) as refused:  # the same officer twice: four eyes
        await relief.approve(eid, ZHANG, None, "")
    assert refused.value.code == "four_eyes" and "需另一名经办人复核" in refused.value.message_zh
    assert "second officer" in refused.value.message_en

    approved = await relief.approve(eid, CHEN, None, "复核同意")
    assert approved.status == "approved" and approved.signed_by == ["relief", "relief2"]
    assert approved.signed_by_shown == ["救助经办 张敏（relief）", "救助复核 陈静（relief2）"]
    assert [d.shown_as for d in approved.decisions] == [None, "救助经办 张敏（relief）", "救助复核 陈静（relief2）"]

    created, entry = await relief.pay(eid, CHEN, "once", "BANK-1")
    assert created and entry.recorded_by == "relief2" and entry.recorded_by_shown == "救助复核 陈静（relief2）"
    paid = await relief.get(eid, CHEN)
    assert paid.status == "paid" and paid.decisions[-1].shown_as == "救助复核 陈静（relief2）"


async def test_a_grant_signed_before_names_were_kept_shows_the_first_signer_by_id(relief, db):
    case = await open_case(relief)
    eid = f"{case}:P5.2c"
    await relief.approve(eid, ZHANG, Decimal("8000.00"), "")
    await db["entitlements"].update_one({"_id": eid}, {"$unset": {"signed_by_shown": ""}})  # an older record
    old = await relief.store.get_entitlement(eid)
    assert old is not None and old.signed_by == ["relief"] and old.signed_by_shown == []

    approved = await relief.approve(eid, CHEN, None, "")
    assert approved.signed_by_shown == ["relief", "救助复核 陈静（relief2）"]


async def test_a_token_without_a_name_records_the_account_id(relief):
    case = await open_case(relief)
    nameless = Principal(sub="officer-x", role=Role.RELIEF_OFFICER, district="500103")
    signed = await relief.approve(f"{case}:P5.2c", nameless, Decimal("100.00"), "")
    assert signed.status == "approved" and signed.signed_by_shown == ["officer-x"]
