"""Callback (回访) and follow-up rules."""

import pytest

from common.errors import DomainError
from services.hotline.domain.callback import decide_callback, follow_up_target

pytestmark = pytest.mark.unit


def test_p6_2_dissatisfied_caller_reopens_the_case_citing_the_rule() -> None:
    outcome = decide_callback("resolved", "dissatisfied")
    assert outcome.reopen and "H-CALLBACK-REOPEN" in outcome.reason and "P6.2" in outcome.reason


@pytest.mark.parametrize("satisfaction", ["satisfied", "basically_satisfied"])
def test_satisfied_callbacks_do_not_reopen(satisfaction: str) -> None:
    assert not decide_callback("closed", satisfaction).reopen  # type: ignore[arg-type]  # parametrised as plain text


def test_no_callback_before_resolution() -> None:
    with pytest.raises(DomainError) as err:
        decide_callback("in_progress", "satisfied")
    assert err.value.code == "not_resolved" and "办结" in err.value.message_zh


def test_follow_up_of_a_merged_case_goes_to_the_case_it_was_merged_into() -> None:
    assert follow_up_target("CQ-20260215-000001", "merged", "CQ-20260215-000009") == "CQ-20260215-000009"
    assert follow_up_target("CQ-20260215-000001", "in_progress", None) == "CQ-20260215-000001"
    with pytest.raises(DomainError):
        follow_up_target("CQ-20260215-000001", "closed", None)


def test_a_second_callback_for_the_same_resolution_is_refused_saying_why() -> None:
    with pytest.raises(DomainError) as err:
        decide_callback("resolved", "satisfied", called_back=True)
    assert err.value.code == "already_called_back"
    assert "已回访" in err.value.message_zh and "重启" in err.value.message_zh
    assert "already" in err.value.message_en and "reopened and resolved again" in err.value.message_en
