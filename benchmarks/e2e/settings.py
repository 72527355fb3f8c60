"""What the end-to-end benchmark can be told (environment variables prefixed `BENCH_E2E_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("hotline", "router", "relief", "notify")


class E2eBench(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_E2E_", extra="ignore")

    history: int = Field(default=100_000, ge=0)  # earlier cases in every service's store
    rebuild: bool = False  # load the history again even where a complete one is there
    seconds: float = Field(default=300.0, gt=0)  # each surge phase
    rate: float = Field(default=25.0, gt=0)  # calls per second in the surge phases
    one_phone_share: float = Field(default=0.1, ge=0, lt=1)  # the second phase; 0 skips it
    ramp_rates: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0)  # empty: no ramp
    ramp_step_s: float = Field(default=60.0, gt=0)
    drain_s: float = Field(default=60.0, ge=0)  # longest wait after a phase for the stages to catch up
    warm_up_calls_s: float = Field(default=30.0, ge=0)  # calls at the surge rate before the measured phases
    warm_up_s: float = Field(default=300.0, ge=0)  # longest wait for what the services load at start-up
    settle_s: float = Field(default=600.0, ge=0)  # longest wait before the one-phone phase and the ramp
    consent_share: float = Field(default=0.5, ge=0, le=1)  # callers who agree to texts (notify texts them)
    sample_every: int = Field(default=10, ge=1)  # 1 in this many cases is polled on the hotline and notify
    poll_interval_s: float = Field(default=0.1, gt=0)
    polls_per_round: int = Field(default=2, ge=1)  # per service and round: bounds the polling load
    poll_relative_gap: float = Field(default=0.25, gt=0, le=1)  # a case's next poll after this share of its age
    keep_logs: bool = False  # the services' logs are kept after a run that succeeded too (a failed one keeps them)
    relay_records: int = Field(default=20_000, ge=0)  # the raw store-then-commit relay; 0 skips it
    history_days: int = Field(default=365, ge=1)  # the history spreads over this many days ...
    history_ends_days_ago: int = Field(default=10, ge=8)  # ... ending this long ago (past the router's archiving)

    def history_database(self, service: str) -> str:
        """A name that says what it holds, so a later run finds and reuses it."""
        return f"bench_e2e_history_{self.history}_{service}"
