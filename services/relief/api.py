"""The relief officer's HTTP API (role `relief_officer`, own district)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["relief officer"])
