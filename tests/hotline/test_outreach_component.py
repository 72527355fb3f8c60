"""The hotline files proposed outreach as proactive cases (P2.3 未诉先办), through its normal intake: a
case number, the outbox, `origin: proactive`; the same proposal twice is one case."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contracts.events.care import CARE_EVENTS_TOPIC, OutreachProposed, VisitMissed
from contracts.events.hotline import Place
from services.hotline import handlers

pytestmark = pytest.mark.component


def record(event, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        topic=CARE_EVENTS_TOPIC,
        partition=0,
        offset=offset,
        key=event.key,
        headers=[],
        value=event.model_dump_json().encode(),
    )


async def test_p2_3_a_proposal_becomes_one_proactive_case_however_often_it_comes(harness) -> None:
    proposal = OutreachProposed(
        case_id="D-P2.3-DROPPED-FROM-DIBAO|R9|2021-03-20",
        proposal_id="D-P2.3-DROPPED-FROM-DIBAO|R9|2021-03-20",
        rule_id="D-P2.3-DROPPED-FROM-DIBAO",
        provisions=("P2.3", "P2.1"),
        household="R9",
        name="刘六",
        place=Place(district="500103"),
        needs=("other",),
        household_status="low_income",
        description="【主动发现】退出低保",
    )
    missed = VisitMissed(
        case_id="R-R9", entry_id="R-R9", district="500103", worker="w", groups=("disabled",),
        due_on="2021-03-19", rule_id="V-P2.2-DISABLED",
    )  # fmt: skip
    rejected = await handlers.file_outreach(harness.hotline, [record(proposal), record(missed, 1)], CARE_EVENTS_TOPIC)
    assert rejected == []
    rejected = await handlers.file_outreach(harness.hotline, [record(proposal, 2)], CARE_EVENTS_TOPIC)  # again
    assert rejected == []
    docs = await harness.db["intakes"].find({"event.outreach.proposal_id": proposal.proposal_id}).to_list(None)
    assert len(docs) == 1
    event = docs[0]["event"]
    assert event["origin"] == "proactive" and event["channel"] == "outreach" and event["operator_id"] == "outreach"
    assert event["needs"] == ["other"] and event["outreach"]["rule_id"] == "D-P2.3-DROPPED-FROM-DIBAO"
    # A repeat sends the call again (at least once; one event id, which consumers take once).
    sent = [b for b in harness.published if b.get("case_id") == event["case_id"]]
    assert {(b["type"], b["event_id"]) for b in sent} == {("hotline.help_requested", event["event_id"])}


async def test_p2_3_a_record_that_is_not_a_care_event_is_dead_lettered(harness) -> None:
    bad = SimpleNamespace(topic=CARE_EVENTS_TOPIC, partition=0, offset=0, key=b"x", headers=[], value=b"not json")
    [(returned, error)] = await handlers.file_outreach(harness.hotline, [bad], CARE_EVENTS_TOPIC)
    assert returned is bad and error
