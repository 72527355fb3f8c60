"""Evaluated cases and finished grants leave relief's working set (which FerretDB scans for every update)
for the archive: still read by id and listed, never in the officers' worklists, and a replayed request
for an archived case proposes nothing a second time (P5.2a, P5.2b: one evaluation per case)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.principal import Principal, Role
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from services.relief.domain.registry import hash_id_card
from tests.relief.conftest import case_id, help_requested, id_card
from tests.relief.test_handlers_component import wired  # noqa: F401 - the fixture
from tests.support.events import dispatched

pytestmark = pytest.mark.component

OFFICER = Principal(sub="relief", role=Role.RELIEF_OFFICER, district="500103", name="救助经办 张敏")


def age_passed(relief) -> None:
    """As if RELIEF_ARCHIVE_AFTER_S had passed for every document."""
    relief.cases.archive_after = relief.entitlements.archive_after = relief.store.archive_after = timedelta(0)


async def test_finished_grants_and_evaluated_cases_are_archived_and_still_found(wired) -> None:  # noqa: F811
    broker, db, published = wired
    relief, store = broker.relief, broker.relief.store
    await db["registry"].insert_one(
        {
            "_id": "R-43",
            "id_card_hash": hash_id_card(id_card(43), "salt"),
            "district": "500103",
            "area": "rural",
            "categories": ["dibao"],
            "approved_on": "2020-01-01",
            "ended_on": None,
        }
    )
    case = case_id()
    needs = ("temp_assist_unemployed", "temp_assist_epidemic")
    await broker.deliver(
        (CASE_LIFECYCLE_TOPIC, dispatched(case, needs=needs)),
        (HELP_REQUESTED_TOPIC, help_requested(case, *needs, id_card=id_card(43), months_without_income=4)),
    )
    rejected, proposed = f"{case}:P5.2b", f"{case}:P5.2a"
    assert (await store.get_entitlement(rejected)).status == "rejected"
    events_before = len([e for e in published["grants"] if e["case_id"] == case])

    relief.entitlements.archive_after = timedelta(days=7)  # the default RELIEF_ARCHIVE_AFTER_S
    assert await relief.entitlements.archive_finished() == 0  # changed just now: younger than that
    age_passed(relief)
    assert await relief.entitlements.archive_finished() == 1  # the refusal; the proposal waits for an officer
    assert await relief.cases.archive_finished() == 1  # evaluated
    assert await db["entitlements"].find_one({"_id": rejected}) is None
    assert await db["entitlements_archive"].find_one({"_id": rejected}) is not None
    assert await db["cases"].find_one({"_id": case}) is None

    assert (await store.get_entitlement(rejected)).status == "rejected"
    assert (await store.get_case(case)) is not None
    listed = await store.list_entitlements(district="500103", case_id=case)
    assert {e.id for e in listed} == {rejected, proposed}
    assert [e.id for e in await store.list_entitlements(district="500103", status="rejected", case_id=case)] == [
        rejected
    ]
    assert [e.id for e in await store.open_entitlements_of_case(case)] == [proposed]
    assert set(await store.entitlements_by_ids([rejected, proposed])) == {rejected, proposed}

    # The help request replayed (a redelivery after the archiving): nothing is proposed or refused again.
    await broker.deliver((HELP_REQUESTED_TOPIC, help_requested(case, *needs, id_card=id_card(43))))
    total = await db["entitlements"].count_documents({"case_id": case}) + await db[
        "entitlements_archive"
    ].count_documents({"case_id": case})
    assert total == 2
    assert len([e for e in published["grants"] if e["case_id"] == case]) == events_before

    # The officer refuses the proposal: finished, archived in turn, and the case's grants all still listed.
    await relief.reject(proposed, OFFICER, "经核查不符合条件")
    assert await relief.entitlements.archive_finished() == 1
    assert await db["entitlements"].count_documents({"case_id": case}) == 0
    listed = await store.list_entitlements(district="500103", case_id=case)
    assert {e.id: str(e.status) for e in listed} == {rejected: "rejected", proposed: "rejected"}
