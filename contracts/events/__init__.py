"""Every event schema, with its topic beside it. Import topics from here; never retype them."""

from contracts.codes import departments

from .base import BUSINESS_TZ, CASE_ID_PATTERN, Event, utcnow
from .hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC
from .notify import SLA_EVENTS_TOPIC
from .relief import GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC
from .router import CASE_LIFECYCLE_TOPIC, department_queue_topic


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
    ]
    return fixed + [department_queue_topic(code) for code in departments()]


def dlq_topic(topic: str) -> str:
    """Where a topic's records that cannot be handled go, with the error."""
    return f"{topic}.dlq"


__all__ = [
    "BUSINESS_TZ",
    "CASE_EVENTS_TOPIC",
    "CASE_ID_PATTERN",
    "CASE_LIFECYCLE_TOPIC",
    "GRANT_EVENTS_TOPIC",
    "HELP_REQUESTED_TOPIC",
    "HUKOU_NOTICE_TOPIC",
    "SLA_EVENTS_TOPIC",
    "Event",
    "all_event_classes",
    "all_topics",
    "department_queue_topic",
    "dlq_topic",
    "utcnow",
]
