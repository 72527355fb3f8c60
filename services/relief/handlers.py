"""Kafka subscribers of relief."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from common.app import Runtime


def build_subscribers(runtime: Runtime) -> KafkaRouter | None:
    return None
