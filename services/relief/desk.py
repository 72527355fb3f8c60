"""The relief officer's day beyond the decisions (`services.relief.service`): who each grant pays (the
applicant, P5.2, P6.3), the payment file for the bank and its return file (P6.1), the registry search
(P2.3) and the P5.2d notices to a home district. Every read of personal data in clear (a phone revealed,
the payment file) leaves an audit record: who, when, why (insert-only).

Store cost: a list of grants reads its applicants and their registry records in one batched read each;
an export reads the payable grants once; a return file reads the grants it names once, inserts its
payments in one write and marks the grants in one `change_many`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from common.errors import DomainError, Forbidden, NotFound
from common.principal import Principal
from contracts.codes import districts
from contracts.events import BUSINESS_TZ, utcnow
from services.relief.desk_schemas import (
    Acknowledged,
    Acknowledgement,
    EarlierImport,
    HukouNotice,
    PendingPayment,
    PendingPayments,
    PhoneRevealed,
    RegistryPage,
    ReturnLine,
    ReturnReport,
)
from services.relief.documents import Entitlement
from services.relief.domain.lifecycle import Status
from services.relief.domain.money import ZERO, as_str
from services.relief.domain.payfile import (
    ONCE,
    OUTCOME_TEXT,
    ExportRow,
    Judge,
    Judgement,
    Outcome,
    Payable,
    Payee,
    ReturnRow,
    header_map,
    parse_return_row,
    reference_of,
    unreadable_row,
)
from services.relief.domain.personal import registry_search
from services.relief.domain.registry import mask_id_card
from services.relief.domain.rules import Schedule
from services.relief.payfiles import CSV_TYPE, XLSX_TYPE, payment_csv, payment_xlsx, read_table
from services.relief.records import HukouAcknowledgement, ReturnImport
from services.relief.schemas import ApplicantView, RegistryRecordView, RowError
from services.relief.service import PaymentOrder, Relief, district_scope

Format = Literal["csv", "xlsx"]
Direction = Literal["received", "sent"]


@dataclass(frozen=True)
class PaymentFile:
    content: bytes
    media_type: str
    filename: str
    rows: int


@dataclass
class Desk:
    relief: Relief

    # ------------------------------------------------------------------ applicants

    async def applicants(self, grants: Sequence[Entitlement]) -> dict[str, ApplicantView]:
        """The applicant of each grant's case (masked), with their registry record if the ID-card matches."""
        store = self.relief.store
        found = await store.applicants_of(sorted({g.case_id for g in grants}))
        hashes = sorted({a.id_card_hash for a in found.values() if a.id_card_hash})
        records = await store.registry_by_id_hashes(hashes) if hashes else {}
        on = self.relief.clock()
        return {case_id: ApplicantView.of(a, records.get(a.id_card_hash or ""), on) for case_id, a in found.items()}

    async def reveal_phone(self, entitlement_id: str, officer: Principal, reason: str) -> PhoneRevealed:
        """The applicant's phone in full, for a call back; audited with the reason."""
        grant = await self.relief.get(entitlement_id, officer)
        applicant = (await self.relief.store.applicants_of([grant.case_id], in_clear=True)).get(grant.case_id)
        if applicant is None or not applicant.phone:
            raise NotFound("该案件未记录申请人电话", "no phone is recorded for this case's applicant")
        await self.relief.store.record_audit(
            officer, action="reveal_phone", reason=reason, case_ids=[grant.case_id], entitlement_id=grant.id
        )
        return PhoneRevealed(
            entitlement_id=grant.id, case_id=grant.case_id, phone=applicant.phone, revealed_at=utcnow()
        )

    # ------------------------------------------------------------------ the payment file (P6.1)

    async def payable(self, officer: Principal) -> tuple[list[ExportRow], list[str]]:
        """The approved-and-unpaid periods of the officer's district with their payees (ID-card in clear),
        and the grants left out for want of a payee's ID-card number."""
        grants = await self.relief.store.payable_entitlements(district=district_scope(officer))
        due: list[tuple[Entitlement, str, Decimal]] = []
        for grant in grants:
            if grant.schedule == Schedule.ONCE:
                if grant.status == Status.APPROVED and grant.amount is not None and ONCE not in grant.paid_periods:
                    due.append((grant, ONCE, grant.amount))
            else:
                due += [(grant, period, amount) for period, amount in self.relief.due_periods(grant)]
        payees = await self.relief.store.applicants_of(sorted({g.case_id for g, _, _ in due}), in_clear=True)
        rows: list[ExportRow] = []
        without: list[str] = []
        for grant, period, amount in due:
            applicant = payees.get(grant.case_id)
            if applicant is None or not applicant.id_card:
                without.append(grant.id)
                continue
            rows.append(
                ExportRow(
                    reference_of(grant.id, period),
                    grant.id,
                    grant.case_id,
                    grant.rule_id,
                    period,
                    amount,
                    grant.district,
                    Payee(applicant.name, applicant.id_card),
                )
            )
        rows.sort(key=lambda r: r.reference)
        return rows, sorted(set(without))

    async def pending(self, officer: Principal) -> PendingPayments:
        """What the payment file would hold, ID-card numbers masked (nothing in clear: not audited)."""
        rows, without = await self.payable(officer)
        return PendingPayments(
            rows=[
                PendingPayment(
                    reference=r.reference,
                    entitlement_id=r.entitlement_id,
                    case_id=r.case_id,
                    rule_id=r.rule_id,
                    period=r.period,
                    amount=r.amount,
                    district=r.district,
                    payee_name=r.payee.name,
                    id_card_masked=mask_id_card(r.payee.id_card),
                )
                for r in rows
            ],
            total_yuan=as_str(sum((r.amount for r in rows), ZERO)),
            without_payee=without,
        )

    async def export(self, officer: Principal, fmt: Format) -> PaymentFile:
        """The payment file for the bank; the export is audited (who, how many rows, which references)."""
        rows, without = await self.payable(officer)
        names = districts()

        def name(code: str) -> str:
            return names[code].name_zh if code in names else code

        content = payment_csv(rows, name) if fmt == "csv" else payment_xlsx(rows, name)
        await self.relief.store.record_audit(
            officer,
            action="payments_export",
            reason="银行发放文件 | payment file for the bank",
            format=fmt,
            rows=len(rows),
            references=[r.reference for r in rows],
            case_ids=sorted({r.case_id for r in rows}),
            without_payee=without,
        )
        stamp = utcnow().astimezone(BUSINESS_TZ).strftime("%Y%m%d-%H%M%S")
        scope = district_scope(officer) or "city"
        return PaymentFile(
            content, CSV_TYPE if fmt == "csv" else XLSX_TYPE, f"payments-{scope}-{stamp}.{fmt}", len(rows)
        )

    # ------------------------------------------------------------------ the bank's return file

    async def import_returns(self, officer: Principal, filename: str, content: bytes) -> ReturnReport:
        """Mark paid what the bank paid (`Relief.pay_many`: never twice), row by row; bad rows are reported
        and the good ones applied. The import itself is kept (insert-only) for supervision."""
        table = read_table(content)
        columns, missing = header_map(table[0].cells or [])
        if missing:
            raise DomainError(
                f"缺少列：{', '.join(missing)}", f"missing columns: {', '.join(missing)}", field="file", status=422
            )
        rows = [
            parse_return_row(r.line, r.cells, columns) if r.cells is not None else unreadable_row(r.line, r.error)
            for r in table[1:]
        ]
        scope = district_scope(officer)
        grants = await self.relief.store.entitlements_by_ids(sorted({r.entitlement_id for r in rows if not r.errors}))
        grants = {gid: g for gid, g in grants.items() if officer.can_see_district(g.district)}
        judge = Judge(self._payables(grants, rows))
        judged = [judge(row) for row in rows]
        sha = hashlib.sha256(content).hexdigest()
        orders = [
            PaymentOrder(
                grants[j.row.entitlement_id],
                j.row.period,
                j.row.bank_transaction_id,
                {
                    "note": f"银行回单 {filename} 第{j.row.line}行 | bank return file {filename}, line {j.row.line}",
                    "bank_paid_on": j.row.paid_on.isoformat() if j.row.paid_on else None,
                    "return_file_sha256": sha,
                },
            )
            for j in judged
            if j.outcome is Outcome.PAID
        ]
        recorded = iter(await self.relief.pay_many(officer, orders) if orders else [])
        final = [
            j if j.outcome is not Outcome.PAID or next(recorded) else Judgement(j.row, Outcome.ALREADY_PAID, j.expected)
            for j in judged
        ]
        earlier = await self.relief.store.earlier_return_import(sha, scope)
        lines = [_line(j) for j in final]
        counts = {str(o): sum(j.outcome is o for j in final) for o in Outcome if any(j.outcome is o for j in final)}
        changed = counts.get(str(Outcome.PAID), 0)
        now = utcnow()
        await self.relief.store.record_return_import(
            ReturnImport.model_validate(
                {
                    "_id": str(uuid.uuid4()),
                    "file_sha256": sha,
                    "filename": filename,
                    "district": scope,
                    "by": officer.sub,
                    "shown_as": officer.shown_as,
                    "at": now,
                    "rows": len(rows),
                    "changed": changed,
                    "outcomes": counts,
                    "lines": [line.model_dump(exclude_none=True) for line in lines],
                }
            )
        )
        zh, en = _summary(len(rows), changed, counts, earlier)
        return ReturnReport(
            filename=filename,
            rows=len(rows),
            changed=changed,
            counts=counts,
            lines=lines,
            earlier_import=EarlierImport(at=earlier.at, by=earlier.shown_as) if earlier else None,
            message_zh=zh,
            message_en=en,
        )

    def _payables(self, grants: dict[str, Entitlement], rows: Sequence[ReturnRow]) -> dict[str, Payable]:
        """What each referenced (grant, period) would pay, for the judge."""
        known: dict[str, Payable] = {}
        for row in rows:
            grant = grants.get(row.entitlement_id)
            if grant is None or row.errors:
                continue
            period = row.period
            if (grant.schedule == Schedule.ONCE) != (period == ONCE):
                continue  # a one-time grant has no months, a monthly one no `once`: unknown reference
            amount: Decimal | None = None
            if period not in grant.paid_periods:
                if grant.schedule == Schedule.ONCE:
                    amount = grant.amount if grant.status == Status.APPROVED else None
                else:
                    amount = dict(self.relief.due_periods(grant)).get(period)
            known[reference_of(grant.id, period)] = Payable(paid=period in grant.paid_periods, amount=amount)
        return known

    # ------------------------------------------------------------------ the registry (P2.3)

    async def registry_page(
        self, reader: Principal, *, q: str, district: str | None, category: str | None, page: int, page_size: int
    ) -> RegistryPage:
        """Registry records by name or (masked) ID-card number, a page at a time; the search is audited."""
        if district and not reader.can_see_district(district):
            raise Forbidden("只能查询本区县的在册对象", "you may search your own district's registry only")
        scope = district or district_scope(reader)
        search = registry_search(q, self.relief.id_hash_salt) if q.strip() else None
        records, total = await self.relief.store.search_registry(
            search, district=scope, category=category, page=page, page_size=page_size
        )
        await self.relief.store.record_audit(
            reader,
            action="registry_search",
            reason="在册对象查询 | registry search",
            query={"q": search.audited_as if search else "", "district": scope, "category": category},
            results=len(records),
        )
        return RegistryPage(
            items=[RegistryRecordView.of(r) for r in records], total=total, page=page, page_size=page_size
        )

    # ------------------------------------------------------------------ P5.2d notices to the hukou district

    async def notices(self, officer: Principal, direction: Direction) -> list[HukouNotice]:
        """The notices told to the officer's district (received) or told by it (sent), with who acknowledged."""
        scope = district_scope(officer)
        if direction == "received":
            grants = await self.relief.store.hukou_notices(hukou_district=scope, paying_district=None)
        else:
            grants = await self.relief.store.hukou_notices(hukou_district=None, paying_district=scope)
        return await self._notices(grants)

    async def acknowledge(self, officer: Principal, grant_id: str, note: str) -> Acknowledged:
        """The hukou district's officer read the notice; once (a second acknowledgement returns the first)."""
        grant = (await self.relief.store.entitlements_by_ids([grant_id])).get(grant_id)
        if grant is None or not grant.hukou_notice_district or not grant.payments:
            raise NotFound("未找到该户籍地通知", f"no hukou-district notice for {grant_id}")
        if not officer.can_see_district(grant.hukou_notice_district):
            raise Forbidden("只有户籍地区县的经办人可以签收", "only the hukou district's officers acknowledge it")
        created, _ = await self.relief.store.acknowledge_hukou(
            HukouAcknowledgement.model_validate(
                {
                    "_id": grant.id,
                    "hukou_district": grant.hukou_notice_district,
                    "by": officer.sub,
                    "shown_as": officer.shown_as,
                    "at": utcnow(),
                    "note": note,
                }
            )
        )
        [notice] = await self._notices([grant])
        return Acknowledged(created=created, notice=notice)

    async def _notices(self, grants: Sequence[Entitlement]) -> list[HukouNotice]:
        applicants = await self.applicants(grants)
        acks = await self.relief.store.hukou_acknowledgements([g.id for g in grants])
        out = []
        for grant in grants:
            first = next((d for d in grant.decisions if d.action == "paid"), None)
            ack = acks.get(grant.id)
            out.append(
                HukouNotice(
                    grant_id=grant.id,
                    case_id=grant.case_id,
                    rule_id=grant.rule_id,
                    paying_district=grant.district,
                    hukou_district=grant.hukou_notice_district or "",
                    amount=first.amount if first else None,
                    notified_at=first.at if first else None,
                    status=str(grant.status),
                    applicant=applicants.get(grant.case_id),
                    acknowledged=Acknowledgement(by=ack.by, shown_as=ack.shown_as, at=ack.at, note=ack.note)
                    if ack
                    else None,
                )
            )
        out.sort(key=lambda n: (n.acknowledged is not None, -(n.notified_at.timestamp() if n.notified_at else 0)))
        return out


def _line(j: Judgement) -> ReturnLine:
    zh, en = OUTCOME_TEXT[j.outcome]
    if j.outcome is Outcome.AMOUNT_MISMATCH and j.row.amount is not None and j.expected is not None:
        zh, en = (
            f"{zh}：银行 {as_str(j.row.amount)} 元，批准 {as_str(j.expected)} 元",
            f"{en}: the bank {as_str(j.row.amount)}, granted {as_str(j.expected)}",
        )
    return ReturnLine(
        line=j.row.line,
        reference=j.row.reference,
        outcome=str(j.outcome),
        message_zh=zh,
        message_en=en,
        amount=as_str(j.row.amount) if j.row.amount is not None else None,
        expected_amount=as_str(j.expected) if j.expected is not None else None,
        bank_transaction_id=j.row.bank_transaction_id or None,
        errors=[RowError(field=e.field, reason_zh=e.reason_zh, reason_en=e.reason_en) for e in j.errors],
    )


def _summary(rows: int, changed: int, counts: dict[str, int], earlier: ReturnImport | None) -> tuple[str, str]:
    zh = f"共 {rows} 行，本次登记发放 {changed} 笔"
    en = f"{rows} rows, {changed} payments recorded now"
    problems = rows - changed - counts.get(str(Outcome.ALREADY_PAID), 0)
    if problems:
        zh, en = f"{zh}，{problems} 行未登记（见各行原因）", f"{en}, {problems} rows not recorded (see each row)"
    if changed == 0:
        zh, en = f"{zh}；未做任何更改", f"{en}; nothing changed"
    if earlier is not None:
        at = earlier.at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")
        zh = f"{zh}。此文件已于 {at} 由 {earlier.shown_as} 导入过"
        en = f"{en}. This file was imported before, on {at} by {earlier.shown_as}"
    return zh, en
