"""`make contracts` writes a JSON Schema per event and one AsyncAPI document covering every topic."""

import json

import pytest

from contracts.events import all_event_classes, all_topics
from contracts.export import main

pytestmark = pytest.mark.unit


def test_export_writes_schemas_and_asyncapi(tmp_path) -> None:
    main(str(tmp_path))
    schemas = list((tmp_path / "schemas").glob("*.json"))
    assert len(schemas) == len(all_event_classes())
    doc = json.loads((tmp_path / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in doc["channels"].values()}
    for topic in all_topics():
        assert topic in addresses and f"{topic}.dlq" in addresses
