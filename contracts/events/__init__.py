"""Every event schema, with its topic beside it. Import topics from here; never retype them."""

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.codes import departments

from .base import BUSINESS_TZ, CASE_ID_PATTERN, Event, case_number_day, utcnow
from .care import CARE_EVENTS_TOPIC, care_event
from .hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, HelpRequested, hotline_case_event
from .notify import SLA_EVENTS_TOPIC, sla_event
from .relief import GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC, HukouDistrictNotified, grant_event
from .router import (
    CASE_LIFECYCLE_TOPIC,
    DEPARTMENT_QUEUE_PREFIX,
    case_lifecycle_event,
    department_queue_message,
    department_queue_topic,
)

# What each topic carries: one model, or a union discriminated by `type`.
TOPIC_EVENTS: dict[str, TypeAdapter[Any]] = {
    HELP_REQUESTED_TOPIC: TypeAdapter(HelpRequested),
    CASE_EVENTS_TOPIC: hotline_case_event,
    CASE_LIFECYCLE_TOPIC: case_lifecycle_event,
    GRANT_EVENTS_TOPIC: grant_event,
    HUKOU_NOTICE_TOPIC: TypeAdapter(HukouDistrictNotified),
    SLA_EVENTS_TOPIC: sla_event,
    CARE_EVENTS_TOPIC: care_event,
}


def topic_events(topic: str) -> TypeAdapter[Any]:
    """The schema of a topic's records (by its contract name; a department's queue by its prefix)."""
    if topic.startswith(DEPARTMENT_QUEUE_PREFIX):
        return department_queue_message
    return TOPIC_EVENTS[topic]


class UnknownEventType(ValueError):
    """A record whose `type` this version of the contracts does not know on its topic. It is dead-lettered
    like a bad record, not passed by: after an upgrade that knows the type, replaying the dead letters
    (`python -m common.deadletters replay`) applies what would otherwise have been lost."""

    def __init__(self, topic: str, event_type: object) -> None:
        super().__init__(f"unknown event type {event_type!r} on {topic}")
        self.topic, self.event_type = topic, event_type


# What a record that is not an event this consumer can apply raises from `read_event`: dead-letter it.
BAD_RECORD = (ValidationError, UnknownEventType)


def _type_of(value: bytes | None) -> object:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def read_event(topic: str, value: bytes | None) -> Event:
    """The one way a consumer reads a record: the contract event it carries, typed by its `type`. Raises
    `UnknownEventType` for a type this version does not know, and `ValidationError` for a record that is
    not a valid event of the topic (not JSON, no `type`, a field wrong): both are in `BAD_RECORD`."""
    try:
        event: Event = topic_events(topic).validate_json(value or b"")
    except ValidationError as exc:
        errors = exc.errors()
        # A union topic names an unknown tag; a one-type topic finds its `type` literal not matching.
        if any(
            e["type"] == "union_tag_invalid" or (e["type"] == "literal_error" and e["loc"] == ("type",)) for e in errors
        ):
            raise UnknownEventType(topic, _type_of(value)) from None
        raise
    return event


def all_event_classes() -> list[type[Event]]:
    """Every concrete event class (those with a `type` literal), in definition order."""
    found: list[type[Event]] = []

    def walk(cls: type[Event]) -> None:
        for sub in cls.__subclasses__():
            if "type" in sub.model_fields and not sub.__name__.startswith("_"):
                found.append(sub)
            walk(sub)

    walk(Event)
    return found


def all_topics() -> list[str]:
    """Every topic the system uses, including each department's queue (each has a `.dlq` twin)."""
    fixed = [
        HELP_REQUESTED_TOPIC,
        CASE_EVENTS_TOPIC,
        CASE_LIFECYCLE_TOPIC,
        GRANT_EVENTS_TOPIC,
        HUKOU_NOTICE_TOPIC,
        SLA_EVENTS_TOPIC,
        CARE_EVENTS_TOPIC,
    ]
    return fixed + [department_queue_topic(code) for code in departments()]


def dlq_topic(topic: str) -> str:
    """Where a topic's records that cannot be handled go, with the error."""
    return f"{topic}.dlq"


__all__ = [
    "BUSINESS_TZ",
    "CARE_EVENTS_TOPIC",
    "CASE_EVENTS_TOPIC",
    "CASE_ID_PATTERN",
    "CASE_LIFECYCLE_TOPIC",
    "GRANT_EVENTS_TOPIC",
    "HELP_REQUESTED_TOPIC",
    "HUKOU_NOTICE_TOPIC",
    "SLA_EVENTS_TOPIC",
    "Event",
    "TOPIC_EVENTS",
    "all_event_classes",
    "all_topics",
    "case_number_day",
    "department_queue_topic",
    "dlq_topic",
    "read_event",
    "topic_events",
    "utcnow",
]
