"""Relief's finished documents leave the working set (which FerretDB scans for every update and lookup) for
`cases_archive` / `entitlements_archive`, against the real store and Kafka: a paid grant and its case are
still found by id through the API, the desk and the P5.2d notices; what a grant's history refuses (a
second payment, a second proposal of the same case and rule, a cancellation after payment) is refused
the same after archiving; and a late dispatch of an archived case brings the case back and is applied
once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from common.kafka import event_headers
from common.principal import Principal, Role
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from services.relief.app import create_app
from tests.relief.conftest import (
    case_id,
    committed_past,
    grant_events,
    help_requested,
    id_card,
    relief_settings,
    token,
)
from tests.relief.test_payments_integration import UNEMPLOYED, open_case, return_csv, upload
from tests.support.events import dispatched
from tests.support.kafka import create_topics, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def archive_now(relief) -> tuple[int, int]:
    """What the archiver does once RELIEF_ARCHIVE_AFTER_S has passed (for everything, today's too): the
    entitlements and cases moved."""
    relief.cases.archive_after = relief.entitlements.archive_after = relief.store.archive_after = timedelta(0)
    return await relief.entitlements.archive_finished(), await relief.cases.archive_finished()


async def test_a_paid_grant_and_its_case_leave_the_working_set_and_are_still_found(relief_app, kafka_bootstrap):
    """P5.2c, P5.2d, P6.1: a paid grant (hukou elsewhere, so a P5.2d notice went out) is archived with its
    case; the API, the case's list and the hukou district's notices still find it, and it can still be
    acknowledged. A proposal and an approved-unpaid grant stay in the working set, in the worklist and the
    payment file."""
    await create_topics(kafka_bootstrap, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)
    app, client = relief_app
    relief, db = app.state.runtime.service, app.state.runtime.db
    a = token(app, "officer-a", name="经办 甲")
    home = token(app, "officer-h", district="500101")
    paid_case = await open_case(app, ("temp_assist_major",), name="赵六", card=id_card(21), hukou="500101")
    proposed_case = await open_case(app, ("temp_assist_unemployed",), card=id_card(22), **UNEMPLOYED)
    approved_case = await open_case(app, ("temp_assist_unemployed",), card=id_card(23), **UNEMPLOYED)
    paid, proposed, approved = f"{paid_case}:P5.2c", f"{proposed_case}:P5.2b", f"{approved_case}:P5.2b"
    r = await client.post(f"/api/v1/entitlements/{paid}/approve", json={"amount_yuan": "2000.00"}, headers=a)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/api/v1/entitlements/{paid}/payments", json={"period": "once", "payment_reference": "BANK-1"}, headers=a
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/entitlements/{approved}/approve", json={"amount_yuan": "1240.00"}, headers=a)
    assert r.status_code == 200, r.text

    moved = await archive_now(relief)
    # Only the paid grant is finished; every case is evaluated, so every case goes (its grants hold the rest).
    assert moved == (1, 3)
    assert await db["entitlements"].find_one({"_id": paid}) is None
    assert (await db["entitlements_archive"].find_one({"_id": paid}))["status"] == "paid"
    assert {d["_id"] for d in await db["entitlements"].find({}, {"_id": 1}).to_list(None)} == {proposed, approved}
    assert await db["cases"].find_one({"_id": paid_case}) is None
    assert await db["cases_archive"].find_one({"_id": paid_case}) is not None

    # Found by id (the API), by its case and among the district's paid grants.
    r = await client.get(f"/api/v1/entitlements/{paid}", headers=a)
    assert r.status_code == 200 and r.json()["status"] == "paid" and r.json()["paid_periods"] == ["once"]
    assert r.json()["decisions"][-1]["payment_reference"] == "BANK-1"
    listed = (await client.get(f"/api/v1/entitlements?case_id={paid_case}", headers=a)).json()
    assert [e["_id"] for e in listed] == [paid]
    assert paid in {e["_id"] for e in (await client.get("/api/v1/entitlements?status=paid", headers=a)).json()}
    case = await relief.store.get_case(paid_case)
    assert case is not None and case.dispatch is not None and case.evaluation is not None
    assert case.evaluation.rules == ["P5.2c"]

    # The worklists read the working set: the proposal to decide, the approved grant to pay.
    waiting = (await client.get("/api/v1/entitlements?status=proposed", headers=a)).json()
    assert [e["_id"] for e in waiting] == [proposed]
    pending = (await client.get("/api/v1/payments/pending", headers=a)).json()["rows"]
    assert [row["entitlement_id"] for row in pending] == [approved]

    # The hukou district still sees the notice of the archived grant and acknowledges it (read by id).
    [notice] = (await client.get("/api/v1/hukou-notices", headers=home)).json()
    assert notice["grant_id"] == paid and notice["amount"] == "2000.00" and notice["acknowledged"] is None
    r = await client.post(f"/api/v1/hukou-notices/{paid}/acknowledge", json={"note": "已知悉"}, headers=home)
    assert r.status_code == 201, r.text
    assert await db["entitlements"].find_one({"_id": paid}) is None  # reading it did not bring it back


async def test_a_list_of_grants_over_all_time_puts_an_archived_grant_among_the_newest(relief_app):
    """P5.2b: a grant refused by its rule is finished at once and archived while an older proposal is
    still worked on; a page of the district's grants, newest first, shows the archived one first even
    when the working set alone fills the page."""
    app, client = relief_app
    relief = app.state.runtime.service
    older = await open_case(app, ("temp_assist_unemployed",), card=id_card(51), **UNEMPLOYED)
    refused = await open_case(
        app, ("temp_assist_unemployed",), card=id_card(52), **(UNEMPLOYED | {"household_status": "dibao"})
    )
    assert (await relief.store.get_entitlement(f"{refused}:P5.2b")).status == "rejected"
    assert await archive_now(relief) == (1, 2)
    page = await relief.store.list_entitlements(district="500103", limit=1)
    assert [e.id for e in page] == [f"{refused}:P5.2b"]
    everything = await relief.store.list_entitlements(district="500103")
    assert [e.id for e in everything] == [f"{refused}:P5.2b", f"{older}:P5.2b"]


async def test_what_a_grants_history_refuses_is_refused_the_same_after_archiving(relief_app, kafka_bootstrap):
    """P6.1, P5.2b: a second payment of a paid grant (by the API or a bank return file), a second proposal
    of the same case and rule (the help request and dispatch replayed) and a cancellation after payment are
    refused before the grant and its case are archived, and refused the same after: one ledger entry, one
    entitlement, one grant.paid."""
    await create_topics(kafka_bootstrap, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)
    app, client = relief_app
    relief, db = app.state.runtime.service, app.state.runtime.db
    a = token(app, "officer-a")
    case = case_id()
    grant = f"{case}:P5.2b"
    request = help_requested(case, "temp_assist_unemployed", id_card=id_card(31), **UNEMPLOYED)
    dispatch = dispatched(case, needs=("temp_assist_unemployed",))
    await relief.on_help_requested(request)
    await relief.on_dispatched(dispatch)
    assert (
        await client.post(f"/api/v1/entitlements/{grant}/approve", json={"amount_yuan": "1240.00"}, headers=a)
    ).status_code == 200
    first = await client.post(
        f"/api/v1/entitlements/{grant}/payments", json={"period": "once", "payment_reference": "BANK-1"}, headers=a
    )
    assert first.status_code == 201, first.text
    bank = return_csv((grant, "1240.00", "paid", "TX-9", "2021-03-21"))

    async def refused_again() -> None:
        again = await client.post(
            f"/api/v1/entitlements/{grant}/payments", json={"period": "once", "payment_reference": "BANK-2"}, headers=a
        )
        assert again.status_code == 200  # answered with the entry recorded first (201), not a second one
        assert again.json()["entry"]["payment_reference"] == "BANK-1"
        report = (await upload(client, a, bank)).json()
        assert [line["outcome"] for line in report["lines"]] == ["already_paid"] and report["changed"] == 0
        cancel = await client.post(f"/api/v1/entitlements/{grant}/cancel", json={"reason": "重复"}, headers=a)
        assert cancel.status_code == 409
        approve = await client.post(f"/api/v1/entitlements/{grant}/approve", json={}, headers=a)
        assert approve.status_code == 409
        await relief.on_help_requested(request)  # redelivered, as after a consumer restart
        await relief.on_dispatched(dispatch)
        assert await db["ledger"].count_documents({"case_id": case}) == 1
        both = [await db[c].count_documents({"case_id": case}) for c in ("entitlements", "entitlements_archive")]
        assert sum(both) == 1
        assert (await client.get(f"/api/v1/entitlements/{grant}", headers=a)).json()["payments"] == 1

    await refused_again()
    assert await archive_now(relief) == (1, 1)
    assert await db["entitlements_archive"].find_one({"_id": grant}) is not None
    await refused_again()
    # Nothing was changed, so nothing came back into the working set.
    assert await db["entitlements"].count_documents({"case_id": case}) == 0
    assert await db["cases"].count_documents({"_id": case}) == 0
    events = await grant_events(kafka_bootstrap, case, 3)
    assert [e["type"] for e in events] == ["grant.proposed", "grant.approved", "grant.paid"]


async def test_a_late_dispatch_of_an_archived_case_brings_it_back_and_is_applied_once(
    kafka_bootstrap, mongodb_url, db_name, db
):
    """P5.2b, P5.2c: a case whose grant was paid and archived is dispatched again with one more need (a
    re-dispatch), the record delivered twice through the real consumer: the case comes back from the
    archive into the working set in one write, the new need is proposed once, and the paid grant stays
    archived, neither proposed nor changed again."""
    ns = f"{unique_name('relief-archive')}."
    await create_topics(
        kafka_bootstrap,
        *(ns + t for t in (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)),
    )
    settings = relief_settings(kafka_bootstrap, mongodb_url, db_name, topic_namespace=ns)
    app = create_app(settings)
    case = case_id()
    paid, major = f"{case}:P5.2b", f"{case}:P5.2c"
    officer = Principal(sub="officer-a", role=Role.RELIEF_OFFICER, district="500103", name="经办 甲")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def send(*events) -> dict[TopicPartition, int]:
        last: dict[TopicPartition, int] = {}
        for event in events:
            meta = await producer.send_and_wait(
                ns + event.TOPIC,
                event.model_dump_json().encode(),
                key=event.key,
                headers=[(k, v.encode()) for k, v in event_headers(event).items()],
            )
            last[TopicPartition(meta.topic, meta.partition)] = meta.offset
        return last

    async def consumed(last: dict[TopicPartition, int]) -> None:
        for tp, offset in last.items():
            await eventually(
                partial(committed_past, kafka_bootstrap, settings.consumer_group, tp.topic, tp.partition, offset),
                timeout=90,
                what=f"relief to consume and commit {tp}",
            )

    try:
        async with app.router.lifespan_context(app):
            relief = app.state.runtime.service
            await consumed(
                await send(
                    help_requested(case, "temp_assist_unemployed", id_card=id_card(41), **UNEMPLOYED),
                    dispatched(case, needs=("temp_assist_unemployed",)),
                )
            )
            assert (await relief.store.get_entitlement(paid)).status == "proposed"
            await relief.approve(paid, officer, Decimal("1240.00"), "核实无误")  # the cap: 2 x 620
            created, _ = await relief.pay(paid, officer, "once", "BANK-1")
            assert created and (await relief.store.get_entitlement(paid)).status == "paid"
            assert await archive_now(relief) == (1, 1)
            archived = await db["cases_archive"].find_one({"_id": case})
            assert archived is not None and await db["cases"].find_one({"_id": case}) is None

            # Re-dispatched with one more need, the record delivered twice.
            late = dispatched(case, needs=("temp_assist_unemployed", "temp_assist_major"), hop=2)
            await consumed(await send(late, late))

            back = await db["cases"].find_one({"_id": case})
            assert back is not None, "the late dispatch did not bring the case back into the working set"
            assert await db["cases_archive"].find_one({"_id": case}) is None  # not in both
            assert back["version"] == archived["version"] + 1  # one write for two deliveries
            assert back["dispatch"]["needs"] == ["temp_assist_unemployed", "temp_assist_major"]
            assert back["help"]["id_card_hash"] == archived["help"]["id_card_hash"]  # the rest came back whole
            assert sorted(back["evaluation"]["rules"]) == ["P5.2b", "P5.2c"]
            proposal = await db["entitlements"].find_one({"_id": major})
            assert proposal is not None and proposal["status"] == "proposed"
            # The paid grant is left where it was, as it was: not proposed again, not brought back.
            assert await db["entitlements"].find_one({"_id": paid}) is None
            kept = await db["entitlements_archive"].find_one({"_id": paid})
            assert kept is not None and kept["status"] == "paid" and kept["payments"] == 1
            assert await db["entitlements"].count_documents({"case_id": case}) == 1  # the new proposal
            assert await db["entitlements_archive"].count_documents({"case_id": case}) == 1  # the paid grant
            assert await db["ledger"].count_documents({"case_id": case}) == 1

            events = await grant_events(kafka_bootstrap, case, 4, topic=ns + GRANT_EVENTS_TOPIC)
            assert sorted((e["type"], e["rule_id"]) for e in events) == [
                ("grant.approved", "P5.2b"),
                ("grant.paid", "P5.2b"),
                ("grant.proposed", "P5.2b"),
                ("grant.proposed", "P5.2c"),
            ]
    finally:
        await producer.stop()
