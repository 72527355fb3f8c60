"""The settings base every service's `Settings` derives from (one env prefix per service)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.principal import Role

DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123456789"
# Settings a production deployment must set itself (the defaults only suit a developer's machine).
PRODUCTION_REQUIRED = ("kafka_bootstrap_servers", "mongodb_url", "jwt_secret")
# Public-key algorithms an identity provider's tokens may use (never HS*: its keys are public).
OIDC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})


class ServiceSettings(BaseSettings):
    """Common settings. A subclass sets `env_prefix`, e.g. `HOTLINE_` gives `HOTLINE_KAFKA_BOOTSTRAP_SERVERS`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str
    environment: Literal["development", "test", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    # The largest request body a service reads (413 beyond it, before it is read whole): CSV imports fit.
    http_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    mongodb_database: str = ""
    mongodb_timeout_ms: int = Field(default=5000, ge=100)
    # Connections to the store per process. FerretDB on PostgreSQL holds a pooled PostgreSQL connection
    # for an update's read while it waits for another for its write: with more operations in flight than
    # half its pool, it waits for ever (seen under load). A bounded pool per service keeps the services'
    # operations together well under that; MongoDB does not need it but loses nothing by it.
    mongodb_max_pool_size: int = Field(default=20, ge=1, le=500)
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "relief-hotline"
    # Who issues the tokens the service accepts (`common.auth`): `shared_secret` (the default) verifies
    # HS256 tokens signed with `jwt_secret` (the front door's); `oidc` verifies the city's identity
    # provider's RS256/ES256 tokens against its published keys (JWKS) instead; `oidc_and_shared_secret`
    # accepts both (the front door's browser sessions and the provider's API clients side by side).
    auth_mode: Literal["shared_secret", "oidc", "oidc_and_shared_secret"] = "shared_secret"
    auth_oidc_issuer: str = ""  # the provider's issuer URL, exactly as its tokens' `iss` says
    auth_oidc_audience: str = ""  # what the tokens' `aud` must contain (the client id registered for us)
    # The key set's URL; empty: discovered from `<issuer>/.well-known/openid-configuration` (`jwks_uri`).
    auth_oidc_jwks_url: str = ""
    auth_oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    # The key set is fetched again after this long; a token naming a key (`kid`) not in it fetches it
    # at once, at most once per `auth_oidc_refetch_min_s` (so made-up key ids cannot flood the provider).
    auth_oidc_jwks_cache_s: float = Field(default=600.0, ge=0)
    auth_oidc_refetch_min_s: float = Field(default=30.0, ge=0)
    auth_oidc_timeout_s: float = Field(default=5.0, gt=0)
    auth_oidc_leeway_s: float = Field(default=30.0, ge=0)  # clock skew allowed on `exp`, `nbf`, `iat`
    # Which claims of the provider's tokens carry who the person is. A dotted name reads a nested claim
    # (`realm_access.roles`); a role claim may hold one value or a list.
    auth_subject_claim: str = "sub"
    auth_role_claim: str = "role"
    auth_department_claim: str = "department"
    auth_district_claim: str = "district"
    auth_name_claim: str = "name"
    # The provider's role values -> ours (JSON in the environment, e.g. `{"hotline-operator": "operator"}`).
    # Empty: the values must be our role names. Given: only the values it names count.
    auth_role_map: dict[str, Role] = Field(default_factory=dict)
    kafka_group_id: str = ""  # consumer group; defaults to the service name
    # Prefix for every topic the service reads and writes: empty in production; tests and benchmarks
    # use a unique one to stay isolated on a shared broker. DLQ twins follow (`<prefix><topic>.dlq`).
    topic_namespace: str = ""
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal
    # Consumer policy (ARCHITECTURE.md "Delivery rules"): retries with backoff, then `<topic>.dlq`.
    consumer_max_attempts: int = Field(default=4, ge=1)
    consumer_backoff_initial_s: float = Field(default=0.2, ge=0)
    consumer_backoff_max_s: float = Field(default=5.0, ge=0)
    # How long the batch consumers that follow a case downstream (the hotline's status, the router's desk,
    # relief's intake, notify's clocks) let records gather before they take a batch (`common.batches`):
    # each batch costs a fixed number of store commands, so in a surge fewer, larger batches cost the store
    # less per case, for at most this much more latency. 0: every record is taken as soon as it comes.
    consumer_linger_ms: int = Field(default=100, ge=0, le=2000)
    # Outboxes a crash or an outage left in documents (`common.aggregates`) are published by a sweep once
    # this old; younger ones are still being published by the writer.
    outbox_sweep_interval_s: float = Field(default=5.0, gt=0)
    outbox_grace_s: float = Field(default=10.0, ge=0)
    # Finished documents (each service says what finished means for a collection it writes through
    # `common.aggregates`) leave the working set, which FerretDB scans for every lookup and update, for
    # `<collection>_archive` once unchanged this long, checked this often; looked up by id they are still
    # found, and a change brings one back. A document keyed by a case numbered more recently than this is
    # never looked for in the archive: lowering it is safe at any time, raising it above a value already
    # used is not (what was archived meanwhile would not be found until it is that old).
    archive_after_s: float = Field(default=7 * 86_400.0, ge=0)
    archive_interval_s: float = Field(default=600.0, gt=0)
    # Version claims (`common.store.VersionClaims`) older than this are deleted, checked this often.
    claims_retention_s: float = Field(default=86_400.0, ge=60)
    claims_prune_interval_s: float = Field(default=3_600.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> ServiceSettings:
        if self.environment == "production" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError("jwt_secret: production needs its own secret, not the development default")
        if self.auth_mode != "shared_secret":
            if not self.auth_oidc_issuer:
                raise ValueError("auth_oidc_issuer: OIDC needs the identity provider's issuer")
            if not self.auth_oidc_audience:
                raise ValueError("auth_oidc_audience: OIDC needs the audience our tokens are issued for")
            if not set(self.auth_oidc_algorithms) <= OIDC_ALGORITHMS:
                raise ValueError(f"auth_oidc_algorithms: only {', '.join(sorted(OIDC_ALGORITHMS))}")
        return self

    @property
    def accepts_shared_secret(self) -> bool:
        return self.auth_mode in ("shared_secret", "oidc_and_shared_secret")

    @property
    def accepts_oidc(self) -> bool:
        return self.auth_mode in ("oidc", "oidc_and_shared_secret")

    def topic(self, name: str) -> str:
        """The topic this deployment uses for a contract topic name (its namespace applied)."""
        return f"{self.topic_namespace}{name}"

    @property
    def database_name(self) -> str:
        return self.mongodb_database or self.service_name

    @property
    def consumer_group(self) -> str:
        return self.kafka_group_id or self.service_name
