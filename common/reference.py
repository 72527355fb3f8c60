"""Reference data every page needs to show names instead of codes: departments, districts, services."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from contracts.catalogue import service_catalogue
from contracts.codes import departments, districts


@cache
def reference_data() -> dict[str, Any]:
    return {
        "departments": {d.code: {"zh": d.name_zh, "en": d.name_en} for d in departments().values()},
        "districts": {d.code: {"zh": d.name_zh, "en": d.name_en} for d in districts().values()},
        "services": {
            s.code: {"zh": s.name_zh, "en": s.name_en, "emergency": s.emergency} for s in service_catalogue().services
        },
    }


def reference_router() -> APIRouter:
    router = APIRouter(tags=["reference"])

    @router.get("/api/v1/reference", summary="Names (zh, en) of department, district and service codes")
    async def reference() -> dict[str, Any]:
        # Public: code lists hold nothing personal, and a page needs them before the user pastes a token.
        return reference_data()

    return router
