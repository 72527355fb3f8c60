"""Settings of the router service (environment variables prefixed `ROUTER_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from contracts.events import CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC, SLA_EVENTS_TOPIC, department_queue_topic

# The key of the callers' lookup hashes on a developer's machine; a deployment sets its own.
DEV_LOOKUP_PEPPER = "dev-only-lookup-pepper-change-me-in-production"


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="ROUTER_")

    service_name: str = "router"
    http_port: int = 8002
    # A different catalogue file (YAML); empty: the one shipped in services/router/data/.
    catalogue_path: str = ""
    # Returns before the district coordinator arbitrates; 0: the catalogue's `max_returns`.
    max_returns: int = Field(default=0, ge=0)
    # Help requests are consumed in batches (one store write and one round of acks per batch).
    intake_batch_size: int = Field(default=1000, ge=1, le=5000)
    intake_batch_timeout_ms: int = Field(default=50, ge=1)
    # A batch is worked as a pipeline of chunks of this many cases: one is stored while the next is routed
    # and the previous one published.
    intake_chunk_size: int = Field(default=250, ge=1, le=5000)
    # Where a new consumer group starts on the help-request topic ("latest": ignore history, e.g. a test
    # that shares the broker's real topics).
    intake_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Batch consumers in this process (each takes whole partitions; one stores while another publishes).
    # More than one was faster in the benchmark but twice stalled under load (see README): default 1.
    intake_consumers: int = Field(default=1, ge=1, le=16)
    # Longest wait for one batch's store write or its publish acknowledgements before it is retried.
    batch_timeout_s: float = Field(default=30.0, gt=0)
    # The router's own desk reads department queues (off: a deployment where departments' systems do).
    desk_enabled: bool = True
    # Department queues the router's own desk reads (empty: every department).
    desk_departments: tuple[str, ...] = ()
    # The key of the keyed hashes (HMAC-SHA256) of callers' phone and ID-card numbers that earlier cases are
    # found by. Changing it loses the link to the cases recorded before.
    lookup_pepper: SecretStr = SecretStr(DEV_LOOKUP_PEPPER)
    # Read notify's escalations (督办) of the cases the router holds, for departments to answer.
    escalations_enabled: bool = True

    @property
    def lookup_pepper_bytes(self) -> bytes:
        return self.lookup_pepper.get_secret_value().encode()

    @property
    def sla_events_topic(self) -> str:
        return self.topic(SLA_EVENTS_TOPIC)

    @property
    def help_requested_topic(self) -> str:
        return self.topic(HELP_REQUESTED_TOPIC)

    @property
    def lifecycle_topic(self) -> str:
        return self.topic(CASE_LIFECYCLE_TOPIC)

    def department_topic(self, department: str) -> str:
        return self.topic(department_queue_topic(department))
