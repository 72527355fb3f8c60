"""Proactive cases counted apart (P2.3 未诉先办): the rates and the reports of notify take an `origin`
filter, so coordinators see calls and proactive cases separately, through the one report mechanism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events.hotline import HELP_REQUESTED_TOPIC, Outreach
from services.notify.domain.summary import REPORT_TZ
from tests.notify.test_api_component import auth, publish
from tests.support.events import dispatched, help_requested, new_case_id

pytestmark = pytest.mark.component


async def test_p2_3_rates_and_reports_count_proactive_cases_apart_from_calls(runtime, client) -> None:
    """P2.3: one call and two proactive cases in 500104: origin=proactive counts two, origin=call one."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    call, found, found_too = new_case_id(), new_case_id(), new_case_id()
    outreach = Outreach(proposal_id="D-P2.3-X|R1|2026-12-01", rule_id="D-P2.3-X", household="R1")
    await publish(
        runtime,
        help_requested(call, district="500104", at=now),
        help_requested(found, district="500104", at=now, channel="outreach", origin="proactive", outreach=outreach),
        help_requested(found_too, district="500104", at=now, channel="outreach", origin="proactive", outreach=outreach),
        topic=HELP_REQUESTED_TOPIC,
    )
    await publish(runtime, *(dispatched(c, at=now, district="500104") for c in (call, found, found_too)))
    headers = auth(runtime)

    async def backlog(**params: str) -> int:
        rows = (await client.get("/api/v1/rates", params={"by": "district", **params}, headers=headers)).json()
        return next(r["backlog"] for r in rows if r["district"] == "500104")

    assert await backlog() == 3
    assert await backlog(origin="proactive") == 2
    assert await backlog(origin="call") == 1

    first = now.astimezone(REPORT_TZ).date().isoformat()
    report = await client.get(
        "/api/v1/reports", params={"from": first, "to": first, "origin": "proactive"}, headers=headers
    )
    assert report.status_code == 200, report.text
    assert report.json()["origin"] == "proactive"
    [row] = [r for r in report.json()["rows"] if r["group"] == "500104"]
    assert row["received"] == 2 and row["dispatched"] == 2
    bad = await client.get("/api/v1/rates", params={"origin": "walk-in"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "origin"
