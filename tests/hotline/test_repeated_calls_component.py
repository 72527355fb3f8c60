"""Repeated calls from one household (P2.3 主动发现, 未诉先办, rule D-P2.3-REPEATED-CALLS): the third case
of a household within 30 days proposes one outreach case, from what the intake reads anyway; the
hotline's own outreach consumer then files it as a proactive case, once per household and window."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from types import SimpleNamespace

import pytest

from contracts.events.hotline import HELP_REQUESTED_TOPIC
from services.hotline import handlers
from services.hotline.domain.repeats import load_repeat_rules, repeat_rules, repeated_calls

TEXT = resources.files("services.hotline.data").joinpath("discovery.yaml").read_text(encoding="utf-8")


@pytest.mark.unit
def test_p2_3_repeated_calls_the_third_case_of_a_household_in_30_days_is_a_finding() -> None:
    rules = repeat_rules()
    on = date(2026, 3, 20)
    assert repeated_calls("hh", ["CQ-20260301-000001"], "CQ-20260320-000009", rules, on) == []
    [found] = repeated_calls("hh", ["CQ-20260301-000001", "CQ-20260310-000002"], "CQ-20260320-000009", rules, on)
    assert found.rule.id == "D-P2.3-REPEATED-CALLS" and found.calls == 3 and found.rule.provisions[0] == "P2.3"
    assert found.proposal_id.startswith("D-P2.3-REPEATED-CALLS|hh|")
    # a case numbered after this call does not count for it (the index may be read after later calls)
    later = ["CQ-20260301-000001", "CQ-20260320-000010"]
    assert repeated_calls("hh", later, "CQ-20260310-000002", rules, date(2026, 3, 10)) == []
    # a case older than the window does not count
    assert repeated_calls("hh", ["CQ-20260218-000001", "CQ-20260310-000002"], "CQ-20260320-000009", rules, on) == []


@pytest.mark.unit
def test_p2_3_repeated_calls_rule_with_an_unknown_need_does_not_load() -> None:
    with pytest.raises(ValueError, match="unknown catalogue needs"):
        load_repeat_rules(TEXT.replace("needs: [other]", "needs: [nothing]"))


def records_of(bodies: list[dict]) -> list[SimpleNamespace]:
    """Help requests as the repeats consumer receives them from Kafka."""
    return [
        SimpleNamespace(
            topic=HELP_REQUESTED_TOPIC, partition=0, offset=n, key=b"", headers=[], value=json.dumps(body).encode()
        )
        for n, body in enumerate(bodies)
    ]


def proactive(harness) -> list[dict]:
    """The proactive calls published, once per event id (a repeated proposal sends its call again)."""
    return list({b["event_id"]: b for b in harness.published if b.get("origin") == "proactive"}.values())


@pytest.mark.component
async def test_p2_3_a_household_calling_a_third_time_gets_one_proactive_case(harness) -> None:
    """P2.3: three calls from one household (different phones, one address) within 30 days: the third
    files one proactive case; the same calls read again (a redelivery, another process) file nothing more."""
    address = {"district": "500103", "township": "解放碑街道", "address": "民族路 99 号 3 单元"}
    await harness.take(place=address, caller={"name": "王五", "phone": "13812340001"})
    await harness.take(place=address, caller={"name": "王五", "phone": "13812340002"})
    calls = [b for b in harness.published if b["type"] == "hotline.help_requested"]
    assert await handlers.file_repeats(harness.hotline, records_of(calls), HELP_REQUESTED_TOPIC) == []
    assert proactive(harness) == []
    third = await harness.take(place=address, caller={"name": "王小五", "phone": "13812340003"})
    calls = [b for b in harness.published if b["type"] == "hotline.help_requested"]
    assert await handlers.file_repeats(harness.hotline, records_of(calls), HELP_REQUESTED_TOPIC) == []
    [case] = proactive(harness)
    assert case["outreach"]["rule_id"] == "D-P2.3-REPEATED-CALLS" and case["outreach"]["provisions"] == ["P2.3", "P6.2"]
    assert case["needs"] == ["other"] and case["channel"] == "outreach" and case["caller"]["phone"] == ""
    assert case["place"]["address"] == "民族路 99 号 3 单元" and third["case_id"] in case["description"]
    everything = [b for b in harness.published if b["type"] == "hotline.help_requested"]
    assert await handlers.file_repeats(harness.hotline, records_of(everything), HELP_REQUESTED_TOPIC) == []
    assert len(proactive(harness)) == 1
    other = {"district": "500103", "township": "解放碑街道", "address": "民族路 100 号"}
    await harness.take(place=other)
    calls = [b for b in harness.published if b["type"] == "hotline.help_requested"]
    assert await handlers.file_repeats(harness.hotline, records_of(calls[-1:]), HELP_REQUESTED_TOPIC) == []
    assert len(proactive(harness)) == 1  # another household's first call finds nothing
