"""Proactive discovery's use cases (P2.3 主动发现, 未诉先办): run the discovery rules
(`data/discovery_rules.yaml`, `services.relief.domain.discovery`) on registry imports and on the care
register, and write each finding's `OutreachProposed` through the shared write path: one document per
proposal (`outreach_proposals`, its natural id), whose outbox publishes the event on
`relief.care-events.v1`. The hotline files it as a proactive case, once per proposal id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from common.aggregates import Aggregates, Codec, Entry
from contracts.events.care import OutreachProposed
from contracts.events.hotline import Place
from services.relief.domain import discovery as rules
from services.relief.domain.discovery import DiscoveryRules, Household
from services.relief.records import RegistryRecord
from services.relief.store import ReliefStore

log = structlog.get_logger("relief.discovery")

Publish = Callable[[Sequence[tuple[str, list[Entry]]]], Awaitable[None]]


class Proposal(BaseModel):
    """An outreach proposal as relief keeps it: the event (and, until published, its outbox)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    event: dict[str, Any]
    rule_id: str
    household: str
    district: str
    proposed_at: datetime
    outbox: list[Entry] = Field(default_factory=list)


PROPOSAL_CODEC: Codec[Proposal] = Codec(
    lambda doc: Proposal.model_validate({**doc, "id": doc["_id"]}),
    lambda p: {"_id": p.id, **p.model_dump(mode="json", exclude={"id"})},
)


def load_rules(path: str | None = None) -> DiscoveryRules:
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.relief.data").joinpath("discovery_rules.yaml").read_text(encoding="utf-8")
    return rules.load_discovery_rules(text)


def household_of(record: RegistryRecord) -> Household:
    return Household(
        recipient_id=record.id,
        name=record.name or "",
        district=record.district,
        categories=frozenset(record.categories),
        approved_on=record.approved_on,
        ended_on=record.ended_on,
        hospitalised=record.hospitalised or 0,
    )


@dataclass
class Discovery:
    store: ReliefStore
    rules: DiscoveryRules
    clock: Callable[[], date]
    publish: Publish | None = None
    proposals: Aggregates[Proposal] = field(init=False)

    def __post_init__(self) -> None:
        db = self.store.db
        self.proposals = Aggregates(
            db["outreach_proposals"], db["outreach_proposals_claims"], PROPOSAL_CODEC, self.publish
        )

    async def propose(self, events: Sequence[OutreachProposed]) -> int:
        """Write each proposal once (its id is natural); returns how many are new. Publishing follows the
        write (the outbox), so a proposal written is never lost."""
        now = datetime.now(UTC)

        def create(event: OutreachProposed) -> Callable[[Proposal | None], Proposal | None]:
            def change(current: Proposal | None) -> Proposal | None:
                if current is not None:
                    return None
                return Proposal(
                    id=event.proposal_id,
                    event=event.model_dump(mode="json"),
                    rule_id=event.rule_id,
                    household=event.household,
                    district=event.place.district,
                    proposed_at=now,
                    outbox=[{"event": event.model_dump(mode="json")}],
                )

            return change

        unique = {e.proposal_id: e for e in events}
        if not unique:
            return 0
        # Believed new (not read first: `outreach_proposals` grows with every finding, and on FerretDB a
        # read scans it); one made before is refused by its insert, then read and left as it was.
        outcome = await self.proposals.change_many({pid: create(e) for pid, e in unique.items()}, new=list(unique))
        for pid, error in outcome.failed.items():
            log.error("outreach proposal not written", proposal_id=pid, error=repr(error))
        if outcome.failed:
            raise next(iter(outcome.failed.values()))
        if outcome.written:
            log.info("outreach proposed", count=len(outcome.written), rules=sorted({e.rule_id for e in events}))
        return len(outcome.written)

    async def registry_changed(self, before: Mapping[str, RegistryRecord], after: Sequence[RegistryRecord]) -> int:
        """P2.3: the registry rules on an import's records (as they were, as they are now)."""
        on = self.clock()
        events = []
        for record in after:
            old = before.get(record.id)
            household = household_of(record)
            for finding in rules.registry_findings(household_of(old) if old else None, household, self.rules, on):
                events.append(
                    rules.proposal(
                        finding,
                        name=household.name,
                        place=Place(district=record.district),
                        status=rules.household_status(household.active(on)),
                    )
                )
        return await self.propose(events)
