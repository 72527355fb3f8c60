"""The coordinator's HTTP API (role `coordinator`, district or city scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from common.app import RuntimeDep
from common.auth import Principal, Role, require_roles
from services.notify.store import NotifyStore

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]


def get_store(runtime: RuntimeDep) -> NotifyStore:
    return runtime.store


StoreDep = Annotated[NotifyStore, Depends(get_store)]

router = APIRouter(prefix="/api/v1", tags=["coordinator"])


@router.get("/cases")
async def cases(coordinator: Coordinator, store: StoreDep) -> list[dict[str, Any]]:
    """Cases with their resolution deadline, soonest first, within the coordinator's scope."""
    district = None if coordinator.city_level else coordinator.district
    return [
        {"case_id": d["_id"], "district": d["district"], "department": d["department"],
         "sla_class": d["sla_class"], "due_at": d["due_at"], "status": d["status"]}
        for d in await store.cases(district)
    ]
