"""Personal data shown to people: masked ID-card and phone numbers, and what an officer's registry search
asks for. The numbers in clear leave relief only in the bank's payment file (audited) and when an officer
reveals a phone with a reason (audited); logs never carry them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from services.relief.domain.registry import hash_id_card, id_card_checksum_ok
from services.relief.domain.registry import mask_id_card as mask_id_card  # shown as 500103********1238

_DIGITS = re.compile(r"^\d{1,18}[\dXx]?$")
_MASKED = re.compile(r"^\d{6}\*+[\dXx]{1,4}$")


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678, 023-63891234 -> 023-****1234."""
    phone = phone.strip()
    area, _, local = phone.rpartition("-")
    if area:
        return f"{area}-{'*' * max(0, len(local) - 4)}{local[-4:]}"
    return phone[:3] + "*" * max(0, len(phone) - 7) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


class SearchKind(StrEnum):
    ID_CARD = "id_card"  # a whole, valid number: matched by its salted hash
    MASKED = "masked"  # a masked number as shown (500103********1238)
    DIGITS = "digits"  # part of a number: the first digits (district of issue) or the last four
    NAME = "name"  # part of a name


@dataclass(frozen=True)
class RegistrySearch:
    """What an officer's search text `q` asks for (`kind`), with the value to match."""

    kind: SearchKind
    value: str

    @property
    def audited_as(self) -> str:
        """How the search is kept in the audit trail: never an ID-card number in clear."""
        return f"id_card_hash:{self.value[:12]}" if self.kind is SearchKind.ID_CARD else f"{self.kind}:{self.value}"


def registry_search(q: str, salt: str) -> RegistrySearch:
    text = q.strip()
    if len(text) == 18 and id_card_checksum_ok(text.upper()):
        return RegistrySearch(SearchKind.ID_CARD, hash_id_card(text, salt))
    if _MASKED.match(text):
        return RegistrySearch(SearchKind.MASKED, text.upper())
    if _DIGITS.match(text):
        return RegistrySearch(SearchKind.DIGITS, text.upper())
    return RegistrySearch(SearchKind.NAME, text)
