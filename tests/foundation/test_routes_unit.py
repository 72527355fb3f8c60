"""No route of any service, nor any dependency it takes, is a plain `def`: FastAPI hands those to its thread
pool, two thread hops per request for work that never blocks (under a surge the hotline's event loop spent
a twentieth of its time handing its runtime look-ups over)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from fastapi.routing import APIRoute

pytestmark = pytest.mark.unit

SERVICES = ("hotline", "router", "relief", "notify", "frontdoor")


def _runs_on_the_loop(call: Any) -> bool:
    if inspect.isroutine(call):
        return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    return inspect.iscoroutinefunction(type(call).__call__)  # a callable instance, such as HTTPBearer


def _threaded(dependant: Any, where: str) -> list[str]:
    found = [] if dependant.call is None or _runs_on_the_loop(dependant.call) else [f"{where}: {dependant.call}"]
    for sub in dependant.dependencies:
        found += _threaded(sub, where)
    return found


def _routes(routes: list[Any]) -> tuple[list[APIRoute], list[Any]]:
    """The API routes, also those of included routers, and the dependencies an inclusion adds to them."""
    found: list[APIRoute] = []
    added: list[Any] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # an included router (FastAPI keeps it whole)
            added += [d.dependency for d in getattr(route.include_context, "dependencies", ())]
            more, more_added = _routes(route.original_router.routes)
            found += more
            added += more_added
    return found, added


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_and_dependency_runs_on_the_event_loop(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app").create_app()
    routes, added = _routes(app.routes)
    assert len(routes) > 3  # the check sees the service's routes
    threaded = [f"included with: {call}" for call in added if not _runs_on_the_loop(call)]
    for route in routes:
        threaded += _threaded(route.dependant, f"{sorted(route.methods or ())} {route.path}")
    assert threaded == []


def test_the_check_sees_a_plain_def_dependency() -> None:
    from fastapi import Depends, FastAPI

    def plain() -> int:
        return 1

    app = FastAPI()

    @app.get("/x")
    async def x(n: int = Depends(plain)) -> int:
        return n

    route = next(r for r in app.routes if isinstance(r, APIRoute))
    assert _threaded(route.dependant, "GET /x") == [f"GET /x: {plain}"]
