"""Contracts: every event is frozen, identified, timed and versioned; codes come from the data."""

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts.catalogue import service_catalogue
from contracts.codes import departments, districts
from contracts.events import all_event_classes, all_topics
from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.router import case_lifecycle_event

pytestmark = pytest.mark.unit


def test_every_event_has_identity_time_case_and_version() -> None:
    classes = all_event_classes()
    assert len(classes) >= 20
    for cls in classes:
        fields = cls.model_fields
        for name in ("event_id", "occurred_at", "case_id", "schema_version", "type"):
            assert name in fields, f"{cls.__name__} lacks {name}"
        assert cls.model_config.get("frozen") is True, cls.__name__
        assert isinstance(cls.TOPIC, str) and cls.TOPIC.endswith(".v1"), cls.__name__


def test_topics_are_versioned_and_unique() -> None:
    topics = all_topics()
    assert len(topics) == len(set(topics))
    assert all(t.endswith(".v1") for t in topics)


def test_districts_are_the_38_districts_and_counties_plus_three_zones() -> None:
    kinds = [d.kind for d in districts().values()]
    assert len(kinds) == 41
    assert sum(k != "zone" for k in kinds) == 38
    assert districts()["LJXQ"].name_zh == "两江新区"
    assert districts()["500103"].name_zh == "渝中区"


def test_every_department_named_in_the_policy_has_a_code() -> None:
    names = {d.name_zh for d in departments().values()}
    for zh in (
        "民政",
        "教育",
        "人力资源社会保障",
        "住房城乡建设",
        "医疗保障",
        "应急管理",
        "卫生健康",
        "残联",
        "商务",
        "市场监管",
        "退役军人事务",
        "财政",
    ):
        assert zh in names


def test_catalogue_cites_provisions_and_is_bilingual() -> None:
    for service in service_catalogue().services:
        assert service.provisions and all(p.startswith("P") for p in service.provisions)
        assert service.name_zh and service.name_en
    assert service_catalogue().by_code()["homeless_cold"].emergency is True


def _request(**overrides: object) -> HelpRequested:
    fields: dict = dict(
        case_id="CQ-20260215-000123",
        received_at=datetime(2026, 2, 15, 8, 0, tzinfo=UTC),
        operator_id="op-1",
        caller=Caller(name="张三", phone="13812345678"),
        place=Place(district="500103"),
        needs=("other",),
    )
    fields.update(overrides)
    return HelpRequested(**fields)


def test_events_are_frozen_and_reject_unknown_fields() -> None:
    event = _request()
    with pytest.raises(ValidationError):
        event.case_id = "CQ-20260215-000124"  # type: ignore[misc]  # assigning to a frozen event is the point
    with pytest.raises(ValidationError):
        _request(unexpected="x")


def test_occurred_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError):
        _request(occurred_at=datetime(2026, 2, 15, 8, 0))


def test_events_round_trip_through_json() -> None:
    event = _request()
    assert HelpRequested.model_validate_json(event.model_dump_json()) == event


def test_lifecycle_union_picks_the_type_by_discriminator() -> None:
    parsed = case_lifecycle_event.validate_python(
        {"type": "case.signed_for", "case_id": "CQ-20260215-000123", "task_id": "t", "actor": "u1"}
    )
    assert type(parsed).__name__ == "CaseSignedFor"


def test_read_event_types_a_record_by_its_topic_and_type():
    from contracts.events import CASE_LIFECYCLE_TOPIC, read_event
    from contracts.events.router import CaseSignedFor

    body = {
        "type": "case.signed_for",
        "case_id": "CQ-20260215-000123",
        "occurred_at": "2026-02-15T08:00:00+08:00",
        "actor": "w1",
        "department": "civil_affairs",
        "task_id": "t1",
    }
    event = read_event(CASE_LIFECYCLE_TOPIC, json.dumps(body).encode())
    assert isinstance(event, CaseSignedFor)
    assert event.case_id == "CQ-20260215-000123"


def test_read_event_refuses_unknown_types_and_bad_records_alike():
    """An unknown type is dead-lettered like a bad record (replayable once an upgrade knows it), on a
    topic of many types and on a topic of one."""
    from pydantic import ValidationError

    from contracts.events import BAD_RECORD, CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC, UnknownEventType, read_event

    later = {"type": "case.added_in_a_later_version", "case_id": "CQ-20260215-000123"}
    for topic in (CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC):
        with pytest.raises(UnknownEventType) as unknown:
            read_event(topic, json.dumps(later).encode())
        assert unknown.value.event_type == "case.added_in_a_later_version" and unknown.value.topic == topic
    for bad in (b"not json", b"{}", json.dumps({"type": "case.signed_for"}).encode()):
        with pytest.raises(ValidationError):
            read_event(CASE_LIFECYCLE_TOPIC, bad)
    assert issubclass(UnknownEventType, BAD_RECORD[1]) and ValidationError in BAD_RECORD
