"""Taking a call, shared by the operator API and Open311: triage, case number, outbox, duplicates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import Depends
from pymongo.errors import DuplicateKeyError

from common.app import RuntimeDep
from common.errors import DomainError, Unavailable
from contracts.events.hotline import (
    Caller,
    HelpRequested,
    HouseholdStatus,
    Outreach,
    Place,
    SpecialGroup,
    Urgency,
    WarmTransfer,
)
from services.hotline.callers import KeyView
from services.hotline.domain import Triage, caller_keys, case_day, format_case_number, triage
from services.hotline.outbox import Publisher
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore, Outbox

log = structlog.get_logger("hotline.intake")


class CaseNumbers:
    """Hands out the day's case numbers from memory, above a floor kept in the store.

    The intake insert claims each number (its unique `_id`, atomic in MongoDB and FerretDB alike, where
    FerretDB 1.24's find_one_and_update with $inc hands out duplicates under load); a number another
    process took is skipped. The floor is raised every `FLOOR_STEP` claims, so a restarted process skips
    at most that many taken numbers before it finds a free one."""

    FLOOR_STEP = 20

    def __init__(self, store: HotlineStore) -> None:
        self.store = store
        self._next: dict[str, int] = {}
        self._floor_wanted: dict[str, int] = {}
        self._floor_stored: dict[str, int] = {}
        self._raising = asyncio.Lock()

    async def next(self, at: datetime) -> str:
        day = case_day(at)
        if day not in self._next:
            floor = await self.store.case_number_floor(day)
            self._next[day] = max(self._next.get(day, 1), floor + 1)
        seq = self._next[day]
        self._next[day] = seq + 1  # taken before any await: no two coroutines get the same number
        return format_case_number(day, seq)

    async def claimed(self, case_id: str) -> None:
        """Raise the stored floor every `FLOOR_STEP` numbers. Every call updates the same counter, so this
        process keeps at most one update in flight, to the highest number wanted, and a call arriving
        while one runs leaves its number to it rather than queueing behind it. A failed raise only makes
        a restarted process skip a few more taken numbers: logged, never the call's failure."""
        _, day, seq = case_id.split("-")
        if int(seq) % self.FLOOR_STEP:
            return
        self._floor_wanted[day] = max(self._floor_wanted.get(day, 0), int(seq))
        if self._raising.locked():
            return
        async with self._raising:
            try:
                while pending := [(d, n) for d, n in self._floor_wanted.items() if n > self._floor_stored.get(d, 0)]:
                    for pending_day, floor in pending:
                        await self.store.raise_case_number_floor(pending_day, floor)
                        self._floor_stored[pending_day] = floor
            except Exception as exc:  # noqa: BLE001 - the next FLOOR_STEP raises it again
                log.warning("case number floor not raised", day=day, error=repr(exc))


@dataclass
class Hotline:
    """What the hotline's routes and handlers share, built in the lifespan (app.py)."""

    store: HotlineStore
    outbox: Outbox
    publisher: Publisher
    settings: Settings
    case_numbers: CaseNumbers
    slots: asyncio.Semaphore

    @property
    def pepper(self) -> str:
        return self.settings.lookup_pepper.get_secret_value()


async def get_hotline(runtime: RuntimeDep) -> Hotline:
    return runtime.service


HotlineDep = Annotated[Hotline, Depends(get_hotline)]


@dataclass(frozen=True)
class Taken:
    event: HelpRequested
    verdict: Triage
    duplicates: list[dict[str, Any]]
    published: bool
    replayed: bool = False  # the same Idempotency-Key was taken before: this is that call, not a new one


class Replay(Exception):
    """A request with this Idempotency-Key was taken already, as `case_id`."""

    def __init__(self, case_id: str) -> None:
        super().__init__(case_id)
        self.case_id = case_id


# A reservation this old whose intake record never came (its process died in between) is let go.
REPLAY_WAIT_S = 5.0


async def take_help_request(
    hotline: Hotline,
    *,
    operator_id: str,
    channel: str,
    caller: Caller,
    place: Place,
    needs: list[str],
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN,
    special_groups: list[SpecialGroup] | tuple[SpecialGroup, ...] = (),
    urgency: Urgency = Urgency.NORMAL,
    description: str = "",
    attributes: dict[str, Any] | None = None,
    warm_transfer: WarmTransfer | None = None,
    idempotency_key: str | None = None,
    outreach: Outreach | None = None,
) -> Taken:
    """Triage the call, give it a case number, store it safely and publish it (or leave it to the relay).

    Inputs are already validated. Returns the event, the triage verdict, open cases of the same caller
    or household found before this one was stored, and whether Kafka acknowledged it at once. A request
    repeating an `idempotency_key` of the same operator or client gets the case of the first one back.
    With `outreach` the case is a proactive one (P2.3): opened by a discovery rule, not by a caller."""
    attributes = attributes or {}
    scoped_key = f"{operator_id}:{idempotency_key}" if idempotency_key else None
    now = datetime.now(UTC)
    verdict = triage(needs, description, urgency is Urgency.EMERGENCY)
    months = attributes.get("months_without_income")
    keys = caller_keys(
        hotline.pepper, phone=caller.phone, id_card=caller.id_card, district=place.district, address=place.address
    )
    deadline = asyncio.get_running_loop().time() + hotline.settings.accept_timeout_s
    try:  # waiting for a turn: nothing of the call is stored yet, so a refusal here loses nothing
        await asyncio.wait_for(hotline.slots.acquire(), hotline.settings.accept_timeout_s)
    except TimeoutError:
        raise _busy(hotline) from None
    fields = dict(
        channel=channel,
        operator_id=operator_id,
        caller=caller,
        place=place,
        needs=tuple(needs),
        household_status=household_status,
        special_groups=tuple(special_groups),
        months_without_income=int(months) if months is not None else None,
        urgency=Urgency.EMERGENCY if verdict.emergency else urgency,
        emergency=verdict.emergency,
        emergency_reasons=verdict.reasons,
        description=description,
        attributes=attributes,
        warm_transfer=warm_transfer,
        origin="proactive" if outreach is not None else "call",
        outreach=outreach,
    )
    try:
        # A second try only when the key pointed at a number another call holds (left by a request that
        # failed between its two writes): the key is let go, and this request is taken as the new call.
        for _ in range(2):
            try:
                return await _store_and_send(hotline, now, deadline, verdict, keys, scoped_key, fields)
            except Replay as replay:  # this key was taken before, or a concurrent request won it: its case
                taken = await _replayed(hotline, replay.case_id, scoped_key or "", deadline)
            if taken is not None:
                return taken
        raise _busy(hotline)
    finally:
        hotline.slots.release()


def _retry_after_s(hotline: Hotline) -> int:
    return max(1, round(hotline.settings.accept_timeout_s))


def _busy(hotline: Hotline) -> Unavailable:
    """The answer when a call cannot be stored within the bound; nothing of it was kept."""
    wait = _retry_after_s(hotline)
    return Unavailable(
        f"热线受理繁忙，本次来电未保存，请 {wait} 秒后重试",
        f"The hotline is too busy to take this call now; nothing was stored. Try again in {wait} s",
        retry_after_s=wait,
        code="intake_busy",
    )


async def _replayed(hotline: Hotline, case_id: str, scoped_key: str, deadline: float) -> Taken | None:
    """The answer the first request with the key got (its matches aside): the same case, waited for
    until the intake's bound; None when the key's number belongs to another call (the key is let go)."""
    while (doc := await hotline.store.get_intake(case_id)) is None:
        if asyncio.get_running_loop().time() > deadline:
            # A reservation whose intake never came (its process died in between) is let go, so the
            # operator's next try is taken as a new call.
            await hotline.store.release_idempotency_key(
                scoped_key, case_id, older_than=datetime.now(UTC) - timedelta(seconds=REPLAY_WAIT_S)
            )
            raise DomainError(
                "同一受理请求仍在处理中，请稍后重试",
                "A request with this Idempotency-Key is still being taken; try again shortly",
                field="Idempotency-Key",
                code="idempotency_in_progress",
            )
        await asyncio.sleep(0.1)
    if doc.get("idempotency_key") not in (None, scoped_key):
        await hotline.store.release_idempotency_key(scoped_key, case_id)
        log.warning("idempotency key pointed at another call's case; taken afresh", case_id=case_id)
        return None
    event = HelpRequested.model_validate(doc["event"])
    verdict = triage(list(event.needs), event.description, event.urgency is Urgency.EMERGENCY)
    published = False
    await hotline.store.index_intake(event)  # the first request may have stopped short of it (a repeat is ignored)
    if not await hotline.outbox.holds(str(event.event_id)):
        # Published and acknowledged, or never handed to the outbox (the first request failed between the
        # intake record and the outbox): send it again, since consumers take a call once by its case id.
        published = await hotline.publisher.accept(event, wait_s=max(0.0, deadline - asyncio.get_running_loop().time()))
    return Taken(event=event, verdict=verdict, duplicates=[], published=published, replayed=True)


async def _claim(
    hotline: Hotline, now: datetime, deadline: float, scoped_key: str | None, fields: dict[str, Any]
) -> HelpRequested:
    loop = asyncio.get_running_loop()
    while True:
        case_id = await hotline.case_numbers.next(now)
        if scoped_key and (held := await hotline.store.reserve_idempotency_key(scoped_key, case_id)) is not None:
            raise Replay(held)
        if loop.time() > deadline:  # the intake record is the point of no return: refuse before it
            if scoped_key:
                await hotline.store.release_idempotency_key(scoped_key, case_id)
            raise _busy(hotline)
        event = HelpRequested(case_id=case_id, correlation_id=case_id, received_at=now, **fields)
        try:
            await hotline.store.claim_intake(event, idempotency_key=scoped_key)
        except DuplicateKeyError:  # another hotline process gave out that number: take the next
            if scoped_key:
                await hotline.store.release_idempotency_key(scoped_key, case_id)
            continue
        return event


async def _read_callers(hotline: Hotline, keys: dict[str, str]) -> dict[str, KeyView] | None:
    try:
        return await hotline.store.read_callers(keys)
    except Exception as exc:  # noqa: BLE001 - the call goes on without its repeat-caller matches
        log.warning("repeat-caller index not read", error=repr(exc))
        return None


async def _file_caller(
    hotline: Hotline, case_id: str, keys: dict[str, str], seen: dict[str, KeyView] | None
) -> list[dict[str, Any]]:
    """Match the call against the caller's open cases and file it under the caller's keys. The call is
    recorded by now: a failure here costs the matches, never the call (an operator told "failed" takes
    the call again, and the case is there twice)."""

    async def no_matches() -> list[dict[str, Any]]:
        return []

    matches, filed = await asyncio.gather(
        hotline.store.open_cases_matching(keys, exclude=case_id, seen=seen) if seen is not None else no_matches(),
        hotline.store.index_caller(case_id, keys, seen=seen),
        return_exceptions=True,
    )
    if isinstance(filed, BaseException):
        log.warning("case not filed under its caller keys", case_id=case_id, error=repr(filed))
    if isinstance(matches, BaseException):
        log.warning("repeat-caller matches not read", case_id=case_id, error=repr(matches))
        return []
    return matches


async def _store_and_send(
    hotline: Hotline,
    now: datetime,
    deadline: float,
    verdict: Triage,
    keys: dict[str, str],
    scoped_key: str | None,
    fields: dict[str, Any],
) -> Taken:
    # The caller index is read while the number is claimed: what it holds is what came before this call.
    event, seen = await asyncio.gather(_claim(hotline, now, deadline, scoped_key, fields), _read_callers(hotline, keys))
    # The call is recorded; from here it reaches Kafka directly or through the outbox relay. Its other
    # writes (caller index, outbox, search entry) go at the same time: the operator waits for the slowest.
    duplicates, published, _, _ = await asyncio.gather(
        _file_caller(hotline, event.case_id, keys, seen),
        _send(hotline, event, deadline),
        hotline.case_numbers.claimed(event.case_id),
        hotline.store.index_intake(event, keys),
    )
    return Taken(event=event, verdict=verdict, duplicates=duplicates, published=published)


async def _send(hotline: Hotline, event: HelpRequested, deadline: float) -> bool:
    try:
        return await hotline.publisher.accept(event, wait_s=max(0.0, deadline - asyncio.get_running_loop().time()))
    except Exception as exc:
        # The intake record is stored, but neither the outbox nor Kafka took the call's event (the store
        # went down between the two writes while Kafka was away): the process keeps the event and stores
        # it when it can. The operator is not told the call was taken; repeating it with the same form
        # (Idempotency-Key) answers its case number, not a second case.
        wait = _retry_after_s(hotline)
        log.warning("call recorded but not confirmed", case_id=event.case_id, error=repr(exc))
        raise Unavailable(
            f"来电已记录但尚未确认转送，请用同一表单在 {wait} 秒后重试，将得到同一受理编号",
            f"The call was recorded but could not be confirmed; repeat it with the same form in {wait} s to get "
            "its case number",
            retry_after_s=wait,
            code="intake_unconfirmed",
        ) from exc
