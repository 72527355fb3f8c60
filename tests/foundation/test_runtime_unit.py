"""Shared runtime: masking, tokens, backoff, case numbers."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from common.auth import TokenVerifier, decode_token, issue_token
from common.consumer import DeliveryPolicy
from common.logs import mask_personal_data, mask_text
from common.principal import Principal, Role
from common.settings import ServiceSettings
from services.hotline.domain import case_day, format_case_number

pytestmark = pytest.mark.unit

SETTINGS = ServiceSettings(service_name="test")


def test_id_card_and_phone_numbers_never_leave_in_clear() -> None:
    text = mask_text("身份证 11010519491231002X 手机 13812345678 座机 023-68881234")
    assert "11010519491231002X" not in text and "13812345678" not in text and "68881234" not in text
    assert "110105" in text and "5678" in text


def test_masking_reaches_nested_log_fields() -> None:
    out = mask_personal_data(None, "info", {"caller": {"phone": "13812345678"}, "ids": ["11010519491231002X"]})
    assert out["caller"]["phone"] == "138****5678"
    assert out["ids"][0].startswith("110105") and "19491231" not in out["ids"][0]


def test_case_ids_are_not_mistaken_for_phone_numbers() -> None:
    assert mask_text("CQ-20260215-000123") == "CQ-20260215-000123"


def test_token_round_trip_carries_role_department_district() -> None:
    token = issue_token(SETTINGS, sub="w1", role=Role.DEPT_WORKER, department="civil_affairs", district="500103")
    assert decode_token(SETTINGS, token) == Principal(
        sub="w1", role=Role.DEPT_WORKER, department="civil_affairs", district="500103"
    )


def test_a_token_may_carry_the_persons_display_name_for_records_to_show() -> None:
    named = decode_token(SETTINGS, issue_token(SETTINGS, sub="r2", role="relief_officer", name="救助复核 陈静"))
    assert named.name == "救助复核 陈静" and named.shown_as == "救助复核 陈静（r2）"
    assert decode_token(SETTINGS, issue_token(SETTINGS, sub="r2", role="relief_officer")).shown_as == "r2"


def test_expired_or_foreign_tokens_are_refused() -> None:
    expired = issue_token(SETTINGS, sub="w1", role="operator", ttl=timedelta(seconds=-1))
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token(SETTINGS, expired)
    other = ServiceSettings(service_name="x", jwt_secret="another-secret-of-sufficient-length-0123456789")
    with pytest.raises(jwt.InvalidSignatureError):
        decode_token(SETTINGS, issue_token(other, sub="w1", role="operator"))


async def test_a_token_is_verified_once_and_refused_once_it_expires(monkeypatch) -> None:
    verifier = TokenVerifier(SETTINGS)
    token = issue_token(SETTINGS, sub="op1", role="operator", district="500103", ttl=timedelta(seconds=60))
    first = await verifier.principal(token)
    assert await verifier.principal(token) == first and first.district == "500103"
    assert verifier.verifications == 1
    later = datetime.now(UTC) + timedelta(seconds=61)
    verifier.clock = later.timestamp
    monkeypatch.setattr("jwt.api_jwt.datetime", type("Clock", (), {"now": staticmethod(lambda tz=None: later)}))
    with pytest.raises(jwt.ExpiredSignatureError):
        await verifier.principal(token)  # the remembered verification ended with the token
    assert verifier.verifications == 1


async def test_a_refused_token_is_checked_again_each_time() -> None:
    verifier = TokenVerifier(SETTINGS)
    other = ServiceSettings(service_name="x", jwt_secret="another-secret-of-sufficient-length-0123456789")
    forged = issue_token(other, sub="w1", role="admin")
    for _ in range(2):
        with pytest.raises(jwt.InvalidSignatureError):
            await verifier.principal(forged)
    assert verifier.verifications == 0


def test_district_scope() -> None:
    city = Principal(sub="c", role=Role.COORDINATOR, district="city")
    local = Principal(sub="d", role=Role.COORDINATOR, district="500103")
    assert city.can_see_district("500101") and local.can_see_district("500103")
    assert not local.can_see_district("500101")


def test_backoff_grows_and_is_capped() -> None:
    policy = DeliveryPolicy("t", backoff_initial_s=1.0, backoff_max_s=4.0)
    assert 0.5 <= policy.backoff(1) <= 1.0
    assert 1.0 <= policy.backoff(2) <= 2.0
    assert 2.0 <= policy.backoff(5) <= 4.0


def test_case_numbers_are_readable_and_sort_by_date() -> None:
    assert format_case_number("20260215", 123) == "CQ-20260215-000123"
    assert format_case_number("20260215", 999) < format_case_number("20260216", 1)
    # Counted in Chongqing local time: 23:30 UTC on the 14th is already the 15th there.
    assert case_day(datetime(2026, 2, 14, 23, 30, tzinfo=UTC)) == "20260215"
    with pytest.raises(ValueError):
        format_case_number("20260215", 1_000_000)


def test_http_responses_carry_the_correlation_id_and_so_do_the_request_s_log_lines() -> None:
    import structlog
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    from common.app import create_service_app

    probe = APIRouter()

    @probe.get("/log-context")
    async def log_context() -> dict[str, str]:
        return dict(structlog.contextvars.get_contextvars())

    # Nothing unreachable is touched: the store connects lazily, Kafka is retried in the background.
    settings = ServiceSettings(service_name="t", kafka_bootstrap_servers="127.0.0.1:1")
    app = create_service_app(settings, title="t", routers=[probe])
    with TestClient(app) as client:
        echoed = client.get("/healthz", headers={"X-Correlation-ID": "abc-123"})
        made = client.get("/healthz")
        logged = client.get("/log-context", headers={"X-Correlation-ID": "def-456"})
        missing = client.get("/no-such-page", headers={"X-Correlation-ID": "ghi-789"})
    assert echoed.headers["X-Correlation-ID"] == "abc-123"
    assert len(made.headers["X-Correlation-ID"]) == 32
    assert logged.json() == {"correlation_id": "def-456"} and logged.headers["X-Correlation-ID"] == "def-456"
    assert missing.status_code == 404 and missing.headers["X-Correlation-ID"] == "ghi-789"
    assert structlog.contextvars.get_contextvars() == {}  # unbound once the request is answered


async def test_a_crashed_background_loop_is_logged_and_restarted(monkeypatch) -> None:
    import asyncio

    import common.app as app_module

    monkeypatch.setattr(app_module, "LOOP_RESTART_DELAY_S", 0)
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky(_runtime: object) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("store hiccup")
        done.set()

    await asyncio.wait_for(app_module.supervise(flaky, None), timeout=5)  # type: ignore[arg-type]  # the loop reads no runtime
    assert len(runs) == 3 and done.is_set()


def test_every_service_serves_the_names_of_codes_for_its_page() -> None:
    from fastapi.testclient import TestClient

    from common.app import create_service_app

    app = create_service_app(ServiceSettings(service_name="t", kafka_bootstrap_servers="127.0.0.1:1"), title="t")
    with TestClient(app) as client:
        body = client.get("/api/v1/reference").json()
    assert body["departments"]["civil_affairs"] == {
        "zh": "民政",
        "en": "Civil affairs (incl. homeless rescue stations)",
    }
    assert body["districts"]["500103"]["zh"] == "渝中区" and len(body["districts"]) == 41
    assert body["services"]["homeless_cold"]["emergency"] is True


def test_a_busy_store_is_a_transient_failure_not_a_poison_message() -> None:
    from pymongo.errors import OperationFailure

    from common.consumer import _is_permanent, _is_transient

    busy = OperationFailure("ERROR: deadlock detected (SQLSTATE 40P01)")
    assert _is_transient(busy) and not _is_permanent(busy)
    assert not _is_transient(OperationFailure("unknown operator: $foo"))


def test_a_store_whose_backend_went_away_is_a_transient_failure_not_a_poison_message() -> None:
    """FerretDB with its PostgreSQL gone, or killed in the middle of a query: the message is redelivered."""
    from pymongo.errors import OperationFailure

    from common.consumer import _is_transient

    for said in (
        "[collection.go:109 postgresql.(*collection).Query] unexpected EOF",
        "failed to connect to `user=ferretdb database=ferretdb`: dial error: connect: connection refused",
        "FATAL: the database system is not yet accepting connections (SQLSTATE 57P03)",
    ):
        assert _is_transient(OperationFailure(said, 1)), said


def test_settling_the_heap_hides_start_up_objects_from_the_collector() -> None:
    import gc

    from common.app import settle_heap

    threshold = gc.get_threshold()
    try:
        gc.set_threshold(700, *threshold[1:])  # Python's default (an app started by an earlier test raised it)
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] > 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_a_periodic_round_that_fails_is_left_to_the_next_one() -> None:
    import asyncio

    from common.app import every

    rounds: list[int] = []
    done = asyncio.Event()

    async def work() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("store away")
        if len(rounds) == 3:
            done.set()

    loop = asyncio.create_task(every(0, work, what="test round"))
    await asyncio.wait_for(done.wait(), timeout=5)  # the failure did not end the loop
    assert not loop.done()
    loop.cancel()
    assert len(rounds) >= 3


async def test_start_up_waits_out_a_store_outage_and_stops_on_anything_else(monkeypatch) -> None:
    """A service started while PostgreSQL is down (the fault suite kills it) comes up once it is back, and
    registers its write paths once; a bad setting still stops start-up."""
    from types import SimpleNamespace
    from typing import Any

    from pymongo.errors import OperationFailure

    from common.app import _started

    # Only start-up's own delay is shortened: patching asyncio.sleep itself made every other task of the
    # session's event loop (a store client's periodic monitor) spin without ever yielding, and the run hung.
    monkeypatch.setattr("common.app.STARTUP_RETRY_FIRST_S", 0.001)
    attempts: list[int] = []

    async def startup(runtime):
        runtime.aggregates.append("write path")
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationFailure("failed to connect to `user=ferretdb database=ferretdb`", 1)
        return "service"

    runtime: Any = SimpleNamespace(aggregates=[])  # the part of a runtime start-up touches
    assert await _started(startup, runtime) == "service"
    assert len(attempts) == 3 and runtime.aggregates == ["write path"]

    async def refuses(runtime):
        raise ValueError("sla_policy_path: no such file")

    with pytest.raises(ValueError, match="sla_policy_path"):
        await _started(refuses, runtime)


def test_a_shutdown_step_that_never_ends_does_not_keep_the_service_from_stopping(monkeypatch) -> None:
    """aiokafka's stop can wait for ever on a broker it cannot reach: the shutdown bounds each step."""
    import asyncio
    import threading

    from fastapi.testclient import TestClient

    import common.app as app_module
    from common.kafka import make_broker as real_broker

    monkeypatch.setattr(app_module, "SHUTDOWN_STEP_S", 0.2)

    def broker_whose_stop_hangs(settings):
        broker = real_broker(settings)

        async def stop(*_args: object, **_kwargs: object) -> None:
            await asyncio.Event().wait()

        broker.stop = stop  # type: ignore[method-assign]
        return broker

    monkeypatch.setattr(app_module, "make_broker", broker_whose_stop_hangs)
    app = app_module.create_service_app(
        ServiceSettings(service_name="t", kafka_bootstrap_servers="127.0.0.1:1"), title="t"
    )
    answers: list[int] = []

    def serve_and_stop() -> None:
        with TestClient(app) as client:
            answers.append(client.get("/healthz").status_code)

    run = threading.Thread(target=serve_and_stop, daemon=True)
    run.start()
    run.join(timeout=15)  # the broker's stop alone would never return
    assert not run.is_alive() and answers == [200]
