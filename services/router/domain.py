"""The routing decision: a pure function of the help request (skeleton rule; the catalogue comes next)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events.hotline import HelpRequested
from contracts.events.router import Assignment, Decision

FALLBACK_DEPARTMENT = "civil_affairs"  # 兜底: the district's civil affairs owns what nothing else claims


@dataclass(frozen=True)
class Routing:
    lead: Assignment
    co_handlers: tuple[Assignment, ...]
    sla_class: str
    decision: Decision


def route(request: HelpRequested) -> Routing:
    """Dispatch to civil affairs of the place of hardship (P2.3 one door, P5.2d place of hardship)."""
    district = request.place.district
    sla_class = "emergency" if request.emergency else "standard"
    return Routing(
        lead=Assignment(department=FALLBACK_DEPARTMENT, district=district, role="lead"),
        co_handlers=(),
        sla_class=sla_class,
        decision=Decision(
            rule_ids=("R-FALLBACK",),
            provisions=("P2.3", "P5.2d"),
            facts={"district": district, "needs": list(request.needs), "emergency": request.emergency},
        ),
    )
