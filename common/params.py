"""Path parameters every service names the same way, with the server's own pattern in the OpenAPI (a
malformed one is a 422 naming it, not a lookup that finds nothing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from contracts.events.base import CASE_ID_PATTERN

TASK_ID_PATTERN = CASE_ID_PATTERN.removesuffix("$") + r"-T\d{1,4}$"

CaseIdPath = Annotated[str, Path(pattern=CASE_ID_PATTERN, description="a case number, e.g. CQ-20260215-000123")]
TaskIdPath = Annotated[
    str, Path(pattern=TASK_ID_PATTERN, description="a department task: the case number and -T<n>, e.g. …-T1")
]
