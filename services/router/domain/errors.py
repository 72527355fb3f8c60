"""Domain errors of the router, each with a Chinese and an English message."""

from __future__ import annotations

from common.errors import DomainError, Forbidden, NotFound


def case_not_found(case_id: str) -> NotFound:
    return NotFound(f"案件 {case_id} 不存在", f"case {case_id} not found", field="case_id")


def task_not_found(task_id: str) -> NotFound:
    return NotFound(f"任务 {task_id} 不存在", f"task {task_id} not found", field="task_id")


def not_your_task(task_id: str) -> Forbidden:
    return Forbidden(
        f"任务 {task_id} 不属于本部门本区县",
        f"task {task_id} belongs to another department or district",
        field="task_id",
    )


def not_your_district(case_id: str) -> Forbidden:
    return Forbidden(f"案件 {case_id} 不在您的管辖范围", f"case {case_id} is outside your district", field="case_id")


def wrong_state(what_zh: str, what_en: str, *, field: str | None = None) -> DomainError:
    return DomainError(what_zh, what_en, field=field, code="invalid_state")


__all__ = ["DomainError", "case_not_found", "not_your_district", "not_your_task", "task_not_found", "wrong_state"]
