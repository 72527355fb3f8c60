"""Life-safety triage (P2.2): emergency services, keywords and the operator's word mark a case emergency."""

import pytest

from services.hotline.domain import caller_keys, mask_name, mask_phone, normalise_address, triage, triage_rules

pytestmark = pytest.mark.unit


def test_p2_2_homeless_in_the_cold_is_an_emergency_by_catalogue() -> None:
    verdict = triage(["homeless_cold"], "", operator_says_emergency=False)
    assert verdict.emergency and verdict.rule_ids == ("T-CATALOGUE",)
    assert "P2.2" in verdict.reasons[0]


def test_p2_2_cold_and_hunger_keywords_make_any_call_an_emergency() -> None:
    verdict = triage(["dibao_application"], "家里断粮了，老人几天没吃东西", operator_says_emergency=False)
    assert verdict.emergency and verdict.rule_ids == ("T-HUNGER",)
    assert "断粮" in verdict.matched_keywords


def test_p2_2_keywords_suggest_the_right_emergency_number() -> None:
    assert triage(["other"], "邻居家着火了", False).suggested_transfer == "119"
    assert triage(["other"], "老人在家晕倒了", False).suggested_transfer == "120"
    assert triage(["other"], "他说不想活了", False).suggested_transfer == "110"


def test_operator_can_mark_an_emergency_the_rules_did_not_see() -> None:
    verdict = triage(["medical_aid"], "需要医疗救助", operator_says_emergency=True)
    assert verdict.emergency and verdict.rule_ids == ("T-OPERATOR",)


def test_an_ordinary_call_is_not_an_emergency() -> None:
    verdict = triage(["education_aid"], "孩子下学期学费有困难", operator_says_emergency=False)
    assert not verdict.emergency and verdict.reasons == ()


def test_triage_rules_cite_provisions() -> None:
    rules = triage_rules()
    assert all(r.provisions and r.keywords for r in rules.keyword_rules)


def test_repeat_caller_keys_are_keyed_hashes_of_normalised_values() -> None:
    a = caller_keys("pepper", phone="13812345678", id_card=None, district="500103", address="解放碑 步行街 8号")
    b = caller_keys("pepper", phone="13812345678", id_card=None, district="500103", address="解放碑步行街8号")
    assert a == b and set(a) == {"phone", "household"}
    assert "13812345678" not in "".join(a.values())
    assert caller_keys("other", phone="13812345678", id_card=None, district=None, address=None)["phone"] != a["phone"]


def test_same_address_in_another_district_is_another_household() -> None:
    a = caller_keys("p", phone=None, id_card=None, district="500103", address="人民路1号")
    b = caller_keys("p", phone=None, id_card=None, district="500105", address="人民路1号")
    assert a["household"] != b["household"]
    assert normalise_address("Ｒｍ ３０１，人民路") == "rm301人民路"


def test_names_are_masked_in_lists() -> None:
    assert mask_name("张三丰") == "张**" and mask_name("李") == "李*"


def test_phones_are_masked_for_reading_back() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("023-63891234") == "023-****1234"


def test_every_emergency_reason_is_explained_in_chinese_and_english() -> None:
    verdict = triage(["homeless_cold"], "老人在桥洞露宿", True)
    assert [r.rule_id for r in verdict.explained] == ["T-CATALOGUE", "T-COLD", "T-OPERATOR"]
    catalogue, cold, operator = verdict.explained
    assert "流浪" in catalogue.text_zh and "emergency service" in catalogue.text_en
    assert "露宿" in cold.text_zh and "cold" in cold.text_en
    assert "话务员" in operator.text_zh and "operator" in operator.text_en
    assert len(verdict.explained) == len(verdict.reasons)
