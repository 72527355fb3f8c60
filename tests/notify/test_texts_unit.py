"""Caller texts (P6.2): which texts each event calls for, what they say, consent, and the provider's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.events.router import CaseClosed
from services.notify.clockwork import Clockwork, NotifyCase
from services.notify.domain import case as case_rules
from services.notify.domain import texts
from services.notify.domain.policy import load_policy
from services.notify.outbox import Outbox
from services.notify.settings import Settings
from services.notify.sms import endpoint_of, is_transient
from services.notify.store import NotifyStore
from tests.support.events import dispatched, new_case_id, resolved

pytestmark = pytest.mark.unit
POLICY = load_policy("")
TZ = POLICY.tz


class NoDatabase:
    """Collections by name only: folding events does no I/O."""

    def __getitem__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, database=self)


def clockwork() -> Clockwork:
    store = NotifyStore(NoDatabase())  # type: ignore[arg-type]
    return Clockwork(store, POLICY, Outbox(store, Settings()))


def fold_all(events: list[Any]) -> tuple[NotifyCase | None, list[dict[str, Any]]]:
    """Fold events one at a time, as batches of one would; every text effect queued along the way."""
    work, case, queued = clockwork(), None, []
    now = datetime.now(UTC)
    for event in events:
        step = (str(event.event_id), lambda state, e=event: case_rules.apply(state, e, POLICY))
        new = work.fold(event.case_id, [step], now)(case)
        if new is not None:
            queued += [e for e in new.outbox if e["op"] == "text"]
            case = new.model_copy(update={"outbox": []})  # the effects ran after the write
    return case, queued


def test_a_dispatch_and_a_resolution_call_for_exactly_two_texts_even_when_delivered_twice() -> None:
    cid, at = new_case_id(), datetime.now(UTC)
    first = dispatched(cid, at=at)
    done = resolved(cid, at=at + timedelta(hours=1))
    _, queued = fold_all([first, first, dispatched(cid, at=at), done, done])  # redelivered, republished
    assert [q["kind"] for q in queued] == ["caller_dispatched", "caller_resolved"]
    assert [q["key"] for q in queued] == [f"{cid}|caller_dispatched", f"{cid}|caller_resolved|1"]
    assert [q["event_id"] for q in queued] == [str(first.event_id), str(done.event_id)]  # which event asked


def test_closing_a_case_texts_nothing_more() -> None:
    cid, at = new_case_id(), datetime.now(UTC)
    _, queued = fold_all([dispatched(cid, at=at), CaseClosed(case_id=cid, actor="co-1", reason="duplicate")])
    assert [q["kind"] for q in queued] == ["caller_dispatched"]


def test_the_dispatch_text_names_the_case_and_the_lead_department_with_its_district() -> None:
    cid, at = new_case_id(), datetime.now(UTC)
    _, queued = fold_all([dispatched(cid, at=at, department="civil_affairs", district="500103")])
    note = texts.Notification(**{k: v for k, v in queued[0].items() if k != "op"})
    assert note.recipient == "caller" and note.text_zh.startswith("【社会救助热线】")
    assert cid in note.text_zh and "渝中区民政" in note.text_zh
    assert note.params["case_id"] == cid and note.params["handler"] == "渝中区民政"
    assert note.params["due"]  # the resolution deadline of the citizen clock
    assert cid in note.text_en and "Yuzhong" in note.text_en


def test_the_resolution_text_quotes_the_outcome_cut_to_what_a_template_value_holds() -> None:
    long = "已为您办理临时救助，发放救助金1400元，并已转介社区持续跟进帮扶，如有需要可再次联系我们。" * 2
    note = texts.caller_resolved("k", "CQ-20260215-000001", outcome=long)
    assert "办理结果：已为您办理临时救助" in note.text_zh
    assert len(note.params["outcome"]) == texts.PARAM_MAX_CHARS and note.params["outcome"].endswith("…")
    assert all(len(v) <= texts.PARAM_MAX_CHARS for v in note.params.values())
    short = texts.caller_resolved("k", "CQ-20260215-000001", outcome="已救助")
    assert short.params["outcome"] == "已救助" and "已救助" in short.text_en


def test_only_a_caller_who_consented_may_be_texted() -> None:
    assert texts.consent_refusal(True) is None
    assert texts.consent_refusal(False) == texts.SKIPPED_NO_CONSENT == "no consent"
    assert texts.consent_refusal(None) == "no consent"  # unknown consent is no consent (P6.2)


def test_a_phone_in_a_providers_message_is_masked() -> None:
    assert texts.masked("13912345678") == "139******78"
    assert texts.without_phone("bad number 13912345678", "13912345678") == "bad number 139******78"
    assert texts.without_phone("no phone here", None) == "no phone here"


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", True),
        ("isv.DAY_LIMIT_CONTROL", True),
        ("isp.SYSTEM_ERROR", True),
        ("Throttling.User", True),
        ("isv.MOBILE_NUMBER_ILLEGAL", False),
        ("isv.SMS_TEMPLATE_ILLEGAL", False),
        ("isv.SMS_SIGNATURE_ILLEGAL", False),
        ("SignatureDoesNotMatch", False),
    ],
)
def test_which_aliyun_errors_are_retried_later(code: str, transient: bool) -> None:
    assert is_transient(code) is transient


def test_the_aliyun_endpoint_may_name_its_scheme() -> None:
    assert endpoint_of("dysmsapi.aliyuncs.com") == ("dysmsapi.aliyuncs.com", "https")
    assert endpoint_of("http://127.0.0.1:9000/") == ("127.0.0.1:9000", "http")


def test_the_aliyun_provider_refuses_to_start_without_credentials_sign_name_and_templates() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(sms_provider="aliyun", aliyun_sms_access_key_id="ak")
    message = str(refused.value)
    for name in ("ACCESS_KEY_SECRET", "SIGN_NAME", "TEMPLATE_DISPATCHED", "TEMPLATE_RESOLVED"):
        assert f"NOTIFY_ALIYUN_SMS_{name}" in message
    assert Settings().sms_provider == "webhook"  # development default, as before
