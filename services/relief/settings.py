"""Settings of the relief service (environment variables prefixed `RELIEF_`)."""

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from services.relief.domain.schedule import PartMonthPolicy


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="RELIEF_")

    service_name: str = "relief"
    http_port: int = 8003
    # Dibao standards file (YAML); empty: the example file shipped in services/relief/data.
    standards_path: str = ""
    # Relief rules and their dated parameters (YAML); empty: the file shipped in services/relief/data.
    rules_path: str = ""
    # Seconds the intake's batches evaluate by the standards and rule parameters an admin added as last read
    # (0: read them for every batch). An addition through another relief process applies after at most this.
    dated_data_cache_s: float = Field(default=5.0, ge=0, le=300)
    # P5.2c four eyes: when set, overrides the threshold of the rule parameters (relief_rules.yaml).
    major_second_approval_above_yuan: Decimal | None = Field(default=None, ge=0)
    # P5.2a part months: `full_month` (any started month paid in full) or `pro_rata` (days, in arrears).
    part_month_policy: PartMonthPolicy = PartMonthPolicy.FULL_MONTH
    # Salt of the ID-card hash used to match callers to the registry (set your own in production).
    id_hash_salt: SecretStr = SecretStr("dev-only-relief-salt")
    # Subsidy runs insert ledger entries in batches of this size.
    run_batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Records (help requests and case lifecycle events) taken per batch by the intake consumer.
    intake_batch_size: int = Field(default=500, ge=1, le=5000)
