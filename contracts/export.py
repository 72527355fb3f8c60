"""`make contracts`: JSON Schema for every event and an AsyncAPI document for every topic.

python -m contracts.export docs/contracts
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from contracts.codes import departments
from contracts.events import all_event_classes, department_queue_topic, dlq_topic
from contracts.events.router import DepartmentTask


def topic_schemas() -> dict[str, list[type[BaseModel]]]:
    """Each topic with the event classes that travel on it."""
    by_topic: dict[str, list[type[BaseModel]]] = defaultdict(list)
    for cls in all_event_classes():
        if cls.TOPIC == DepartmentTask.TOPIC:  # every department queue carries its task messages
            for code in departments():
                by_topic[department_queue_topic(code)].append(cls)
        else:
            by_topic[cls.TOPIC].append(cls)
    return dict(by_topic)


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker("kafka:9092", description="Relief hotline event topics; each has a `.dlq` twin.")
    for topic, classes in sorted(topic_schemas().items()):
        for cls in classes:
            broker.publisher(
                topic,
                title=f"{topic}:{cls.__name__}",
                schema=cls,
                description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None,
            )
        broker.publisher(
            dlq_topic(topic),
            title=f"{dlq_topic(topic)}:DeadLetter",
            description="Records that failed handling, unchanged, with x-dlq-* error headers.",
        )
    spec = AsyncAPI(broker, title="Relief hotline events", version="1", schema_version="3.0.0")
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document


def main(out: str = "docs/contracts") -> None:
    out_dir = Path(out)
    (out_dir / "schemas").mkdir(parents=True, exist_ok=True)
    classes = all_event_classes()
    for cls in classes:
        schema = cls.model_json_schema()
        schema["x-topic"] = cls.TOPIC
        (out_dir / "schemas" / f"{cls.__name__}.json").write_text(json.dumps(schema, ensure_ascii=False, indent=2))
    (out_dir / "asyncapi.json").write_text(json.dumps(asyncapi_document(), ensure_ascii=False, indent=2))
    print(f"wrote {len(classes)} event schemas and asyncapi.json to {out_dir}/")


if __name__ == "__main__":
    main(*sys.argv[1:])
