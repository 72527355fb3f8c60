"""The service app factory: one FastAPI app per service whose lifespan opens the store, starts the
FastStream broker and the service's background loops, and closes them all in reverse order.

Every service's `app.py` is wiring only: it calls `create_service_app` with its settings, its Kafka
subscribers, its HTTP routes and its start-up hook (indexes, store object).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.kafka import KafkaBroker, KafkaRouter
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.aggregates import Aggregates
from common.auth import TokenVerifier, require_roles
from common.deadletters import (
    MAX_OFFSET,
    MAX_PARTITION,
    DeadLetter,
    DeadLetterDetail,
    DeadLetterRef,
    DeadLetters,
    DeliveryFigures,
    ReplayReply,
    ReplayRequest,
    delivery_figures,
    metrics_lines,
)
from common.http_errors import BodyLimit, NoNulText, install_error_handlers
from common.kafka import make_broker
from common.logs import configure_logging
from common.openapi import declare_error_responses
from common.principal import Principal, Role
from common.reference import reference_router
from common.settings import ServiceSettings
from common.store import CommandCounter, open_mongo, prune_claims, store_unavailable

log = structlog.get_logger("app")

KAFKA_CONNECT_RETRY_S = 2.0

ServiceT = TypeVar("ServiceT")


@dataclass
class Runtime(Generic[ServiceT]):
    """The resources a running service holds; built in the lifespan, handed to handlers and routes.
    `service` is the service's own object (its store, rules and publishers), made by its start-up hook."""

    settings: ServiceSettings
    broker: KafkaBroker | None  # None for a service without Kafka (the front door)
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    kafka_connected: asyncio.Event = field(default_factory=asyncio.Event)
    store_commands: CommandCounter = field(default_factory=CommandCounter)
    # Every document collection written through `common.aggregates`: their outboxes are swept for the
    # service (`outbox_sweeper`). A service registers them in its start-up hook.
    aggregates: list[Aggregates[Any]] = field(default_factory=list)
    # Every consumer group the service runs, with its topics (`common.batches.BatchConsumer` registers its
    # own): the dead letters, consumer lag and `/metrics` figures are those of these topics.
    consumers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # What a service loads in the background at start-up, set once loaded (`service_warmed` in `/metrics`):
    # until then it works, more slowly or with less (the hotline's repeat-caller memory: `caller_index`).
    warm_up: dict[str, asyncio.Event] = field(default_factory=dict)
    _service: ServiceT | None = field(default=None, init=False, repr=False)

    @property
    def service(self) -> ServiceT:
        if self._service is None:
            raise RuntimeError("the service's start-up hook has not run yet")
        return self._service

    def bind(self, service: ServiceT) -> ServiceT:
        """Hold the object the start-up hook made (the lifespan does this; tests that build a runtime too)."""
        self._service = service
        return service

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a background loop for the life of the service (cancelled at shutdown)."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.append(task)
        return task


LOOP_RESTART_DELAY_S = 1.0
SHUTDOWN_STEP_S = 5.0  # the longest one step of the shutdown may take (`_bounded`)


async def _bounded(step: str, work: Awaitable[Any]) -> None:
    """Wait for one step of the shutdown, at most `SHUTDOWN_STEP_S`; a failure or a timeout is logged and
    the shutdown goes on."""
    try:
        await asyncio.wait_for(work, SHUTDOWN_STEP_S)
    except TimeoutError:
        log.warning("shutdown step timed out; going on", step=step, timeout_s=SHUTDOWN_STEP_S)
    except Exception as exc:  # noqa: BLE001 - the process is stopping: what is left undone is logged
        log.warning("shutdown step failed; going on", step=step, error=repr(exc))


async def supervise(loop: Callable[[Runtime[Any]], Awaitable[None]], runtime: Runtime[Any]) -> None:
    """Run a background loop for the life of the service: a crash is logged and the loop restarted,
    never left to die silently (an outbox relay that stopped would strand everything behind it)."""
    while True:
        try:
            await loop(runtime)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # logged with its traceback, then restarted
            log.exception("background loop crashed; restarting", loop=loop.__name__)
            await asyncio.sleep(LOOP_RESTART_DELAY_S)


async def get_runtime(request: Request) -> Runtime[Any]:
    """The runtime as a dependency. It and every dependency built on it are `async def`: FastAPI hands a
    plain `def` dependency to its thread pool, two thread hops per request for a field read (under a
    surge, a twentieth of the hotline's event loop went on handing them over)."""
    runtime: Runtime[Any] = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime[Any], Depends(get_runtime)]

SubscribersFactory = Callable[[Runtime[Any]], KafkaRouter | None]
StartupHook = Callable[[Runtime[Any]], Awaitable[Any]]
ShutdownHook = Callable[[Runtime[Any]], Awaitable[None]]
BackgroundLoop = Callable[[Runtime[Any]], Awaitable[None]]


async def _tcp_probe(bootstrap: str, timeout: float = 2.0) -> None:
    """Raise unless at least one bootstrap server accepts a TCP connection."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "localhost", int(port)), timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            errors.append(f"{server}: {exc!r}")
            continue
        writer.close()
        return
    raise ConnectionError("; ".join(errors))


async def _connect_broker(runtime: Runtime[Any]) -> None:
    """Start the broker, retrying while Kafka is unreachable, so the service (and its HTTP API) stays up."""
    broker = runtime.broker
    if broker is None:
        raise RuntimeError("this service has no Kafka broker to connect")
    attempt = 0
    while True:
        attempt += 1
        try:
            # A cheap TCP probe first: a failed broker start leaves an unclosed producer behind.
            await _tcp_probe(runtime.settings.kafka_bootstrap_servers)
            await broker.start()
        except Exception as exc:  # noqa: BLE001 - any start failure means "not yet"
            if attempt == 1 or attempt % 15 == 0:
                log.warning("kafka not reachable yet; retrying", attempt=attempt, error=repr(exc))
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(KAFKA_CONNECT_RETRY_S)
        else:
            runtime.kafka_connected.set()
            log.info("kafka connected", bootstrap=runtime.settings.kafka_bootstrap_servers)
            return


class Readiness(BaseModel):
    """`/readyz`: ready when every dependency answers (503 with the same body when one does not)."""

    status: Literal["ready", "not ready"]
    checks: dict[str, bool]


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Kafka and the store are reachable",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A dependency does not answer"}},
    )
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        checks: dict[str, bool] = {}
        try:
            await asyncio.wait_for(runtime.db.command("ping"), timeout=2)
            checks["store"] = True
        except Exception:  # noqa: BLE001 - any failure of the ping means the store is not ready
            checks["store"] = False
        if runtime.broker is not None:
            checks["kafka"] = runtime.kafka_connected.is_set() and await runtime.broker.ping(timeout=2)
        ok = all(checks.values())
        body = Readiness(status="ready" if ok else "not ready", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @router.get(
        "/metrics",
        summary="Store commands sent since start-up (Prometheus text format)",
        response_class=PlainTextResponse,
    )
    async def metrics(runtime: RuntimeDep) -> str:
        lines = [
            "# HELP store_commands_total Commands this process sent to its store, by command name.",
            "# TYPE store_commands_total counter",
        ]
        lines += [
            f'store_commands_total{{command="{name}"}} {count}'
            for name, count in sorted(runtime.store_commands.counts.items())
        ]
        lines += [
            "# HELP store_command_seconds_total Time this process waited on its store, by command and collection.",
            "# TYPE store_command_seconds_total counter",
        ]
        lines += [
            f'store_command_seconds_total{{command="{name}",collection="{collection}"}} {seconds:.6f}'
            for (name, collection), seconds in sorted(runtime.store_commands.seconds.items())
        ]
        lines += [
            "# HELP store_collection_commands_total Commands this process sent to its store, by command and"
            " collection.",
            "# TYPE store_collection_commands_total counter",
        ]
        lines += [
            f'store_collection_commands_total{{command="{name}",collection="{collection}"}} {count}'
            for (name, collection), count in sorted(runtime.store_commands.sent.items())
        ]
        if runtime.warm_up:
            lines += [
                "# HELP service_warmed Whether a part the service loads at start-up has loaded (1) or not yet (0).",
                "# TYPE service_warmed gauge",
            ]
            lines += [
                f'service_warmed{{part="{part}"}} {int(e.is_set())}' for part, e in sorted(runtime.warm_up.items())
            ]
        lines += metrics_lines(await delivery_figures(runtime))
        return "\n".join(lines) + "\n"

    return router


Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]


def delivery_router() -> APIRouter:
    """`/api/v1/admin/dead-letters…` (admin) and `/api/v1/status/delivery` (coordinators and admin)."""
    router = APIRouter(tags=["dead letters and backlogs"])

    @router.get("/api/v1/admin/dead-letters", summary="Dead letters of the topics this service consumes")
    async def list_dead_letters(runtime: RuntimeDep, _: Admin, topic: str | None = None) -> list[DeadLetter]:
        return await DeadLetters(runtime).entries(topic)

    @router.get("/api/v1/admin/dead-letters/{topic}/{partition}/{offset}", summary="One dead letter")
    async def show_dead_letter(
        runtime: RuntimeDep,
        _: Admin,
        topic: Annotated[str, Path(max_length=300)],
        partition: Annotated[int, Path(ge=0, le=MAX_PARTITION)],
        offset: Annotated[int, Path(ge=0, le=MAX_OFFSET)],
    ) -> DeadLetterDetail:
        return await DeadLetters(runtime).show(DeadLetterRef(topic=topic, partition=partition, offset=offset))

    @router.post("/api/v1/admin/dead-letters/replay", summary="Put chosen dead letters back on their topics, once")
    async def replay_dead_letters(runtime: RuntimeDep, admin: Admin, request: ReplayRequest) -> ReplayReply:
        return await DeadLetters(runtime).replay(request.items, admin)

    @router.get("/api/v1/status/delivery", summary="Outbox backlog, consumer lag and dead letters")
    async def delivery_status(runtime: RuntimeDep, _: Coordinator) -> DeliveryFigures:
        return await delivery_figures(runtime)

    return router


DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


class ForwardedPrefix:
    """Behind the front door a service lives at `/<service>/` (the proxy says so in `X-Forwarded-Prefix`):
    for its API docs the prefix becomes the ASGI `root_path`, so `/docs` loads `<prefix>/openapi.json`
    and the spec's `servers` names `<prefix>` (FastAPI adds it per request), and "Try it out" calls go
    back through the front door. Only the docs' paths: every other route sees the request as before,
    and on the service's own port (no header) nothing changes. A prefix that is not a plain path is
    ignored (it ends up in the docs page's script)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in DOCS_PATHS and not scope.get("root_path"):
            prefix = request_header(scope, b"x-forwarded-prefix")
            prefix = prefix.rstrip("/")
            if PREFIX.match(prefix):
                # ASGI: `path` includes `root_path`; routing matches what follows it.
                scope = dict(scope, root_path=prefix, path=prefix + scope["path"])
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def request_header(scope: Scope, name: bytes) -> str:
    """A request header's value as the ASGI scope holds it (`name` in lower case), "" when absent."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


class CorrelationId:
    """Every log line of a request carries its correlation id (the caller's `X-Correlation-ID`, or one made
    here), and the response says it. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` (what
    `@app.middleware("http")` makes) runs every request's endpoint in a task group of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = request_header(scope, b"x-correlation-id") or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Correlation-ID"] = correlation_id
            await send(message)

        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")


YOUNG_GC_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)


async def every(interval_s: float, work: Callable[[], Awaitable[Any]], *, what: str) -> None:
    """Run `work` now and then every `interval_s` seconds, for the life of the service. A round that fails
    is logged and left to the next one: what it did not do stays to be done."""
    while True:
        try:
            await work()
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning(f"{what} failed; trying again next round", error=repr(exc))
        await asyncio.sleep(interval_s)


STARTUP_RETRY_FIRST_S = 0.25
STARTUP_RETRY_MAX_S = 5.0


async def _started(startup: StartupHook, runtime: Runtime[Any]) -> Any:
    """The start-up hook's object, the hook tried again while the store cannot be reached (its indexes,
    the data it restores): a service started during a store outage comes up once the store is back,
    instead of exiting. Any other error stops start-up, as a bad setting should."""
    delay = STARTUP_RETRY_FIRST_S
    while True:
        try:
            return await startup(runtime)
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            log.warning("store unreachable at start-up; trying again", error=repr(exc)[:300], retry_in_s=delay)
            runtime.aggregates.clear()  # the hook registers its write paths again
            await asyncio.sleep(delay)
            delay = min(delay * 2, STARTUP_RETRY_MAX_S)


async def claims_pruner(runtime: Runtime[Any]) -> None:
    """Every service: trim old version claims from its database (`common.store.prune_claims`)."""
    retention = timedelta(seconds=runtime.settings.claims_retention_s)

    async def prune() -> None:
        if any((pruned := await prune_claims(runtime.db, retention)).values()):
            log.info("old version claims pruned", **pruned)

    await every(runtime.settings.claims_prune_interval_s, prune, what="pruning version claims")


async def outbox_sweeper(runtime: Runtime[Any]) -> None:
    """Every service: publish what a crash or an outage left in the outboxes of its documents, once older
    than `outbox_grace_s` (`common.aggregates.Aggregates.sweep`)."""
    if runtime.broker is not None:
        await runtime.kafka_connected.wait()

    async def sweep() -> None:
        before = datetime.now(UTC) - timedelta(seconds=runtime.settings.outbox_grace_s)
        for aggregates in runtime.aggregates:
            if aggregates.publish is None:  # publishes nothing (its service's own outbox does, if any)
                continue
            if swept := await aggregates.sweep(before):
                log.info("outboxes swept", collection=aggregates.collection.name, documents=swept)

    await every(runtime.settings.outbox_sweep_interval_s, sweep, what="outbox sweep")


async def archiver(runtime: Runtime[Any]) -> None:
    """Every service: move its finished documents out of the working set once unchanged for
    `archive_after_s` (`common.aggregates.Aggregates.archive_finished`), a batch at a time."""

    async def archive() -> None:
        for aggregates in runtime.aggregates:
            while moved := await aggregates.archive_finished():
                log.info("finished documents archived", collection=aggregates.collection.name, documents=moved)

    await every(runtime.settings.archive_interval_s, archive, what="archiving")


def settle_heap() -> None:
    """Move everything start-up created (modules, catalogues, reference data, the app) out of the garbage
    collector's sight, and collect young objects less often. Python's full collections walk every tracked
    object: with that heap in view each took 50–90 ms in the router's intake (about one per batch of 1,000
    requests), frozen 7–20 ms; with the higher threshold, a batch's short-lived objects are mostly freed
    by reference counting before a collection promotes them."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    subscribers: SubscribersFactory | None = None,
    routers: Sequence[APIRouter] = (),
    startup: StartupHook | None = None,
    shutdown: ShutdownHook | None = None,
    background: Sequence[BackgroundLoop] = (),
    wait_for_kafka: bool = False,
    kafka: bool = True,
) -> FastAPI:
    """Build the service's FastAPI app. `wait_for_kafka` blocks start-up until the broker is connected;
    `kafka=False` builds a service that neither connects to Kafka nor reports it in `/readyz`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        counter = CommandCounter()
        mongo = open_mongo(settings, counter=counter)
        broker = make_broker(settings) if kafka else None
        runtime: Runtime[Any] = Runtime(
            settings=settings, broker=broker, mongo=mongo, db=mongo[settings.database_name], store_commands=counter
        )
        if broker is not None and subscribers is not None and (kafka_router := subscribers(runtime)) is not None:
            broker.include_router(kafka_router)
        app.state.runtime = runtime
        if startup is not None:
            runtime.bind(await _started(startup, runtime))
        if broker is not None:
            connect = runtime.spawn(_connect_broker(runtime), "kafka-connect")
            if wait_for_kafka:
                await connect
        settle_heap()
        for loop in (*background, claims_pruner, outbox_sweeper, archiver):
            runtime.spawn(supervise(loop, runtime), loop.__name__)
        log.info("service started", http_port=settings.http_port)
        try:
            yield
        finally:
            for task in reversed(runtime.tasks):
                task.cancel()
            # Every step of the shutdown is bounded: a stop that waits on an unreachable broker (aiokafka's
            # stop can wait for ever then) or a stuck store must not keep the process from ending.
            await _bounded("background tasks", asyncio.gather(*runtime.tasks, return_exceptions=True))
            if shutdown is not None:
                await _bounded("the service's shutdown", shutdown(runtime))
            if broker is not None:
                await _bounded("the Kafka broker's stop", broker.stop())
            # the records of what was published, before the store goes
            await _bounded("the published outboxes' records", asyncio.gather(*(a.settle() for a in runtime.aggregates)))
            await _bounded("the store's close", mongo.close())
            log.info("service stopped")

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)  # its key cache lives as long as the app
    app.add_middleware(ForwardedPrefix)
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(NoNulText)

    app.add_middleware(CorrelationId)

    install_error_handlers(app)
    app.include_router(health_router())
    app.include_router(reference_router())
    if kafka:
        app.include_router(delivery_router())
    for router in routers:
        app.include_router(router)
    declare_error_responses(app)
    return app
