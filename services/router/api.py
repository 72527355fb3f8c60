"""The department worker's HTTP API (role `dept_worker`, own department and district)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from common.app import RuntimeDep
from common.auth import Principal, Role, require_roles
from services.router.store import RouterStore

Worker = Annotated[Principal, Depends(require_roles(Role.DEPT_WORKER))]


def get_store(runtime: RuntimeDep) -> RouterStore:
    return runtime.store


StoreDep = Annotated[RouterStore, Depends(get_store)]

router = APIRouter(prefix="/api/v1", tags=["department worker"])


@router.get("/queue")
async def my_queue(worker: Worker, store: StoreDep) -> list[dict[str, Any]]:
    """The worker's department queue in their district: emergencies first, then oldest."""
    docs = await store.queue(worker.department or "", worker.district or "")
    return [{"case_id": d["_id"], "status": d["status"], "emergency": d["emergency"]} for d in docs]
