"""Personal data shown to people: masked ID-card and phone numbers, and what an officer's registry search
asks for. The numbers in clear leave relief only in the bank's payment file (audited) and when an officer
reveals a phone with a reason (audited); logs never carry them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from common.text_terms import normalise_text, query_terms, text_terms
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


# The registry is searched by equality (the store's cost model: on FerretDB a regex decodes every record):
# each record is filed under the terms of its name and of the digits its masked ID card shows (the six of
# the district of issue, the last four), a search asks for its most telling term, and `registry_matches`
# decides on the few candidates.
SHOWN_PREFIX, SHOWN_SUFFIX = 6, 4  # the characters of an ID card a masked number shows at each end


def registry_terms(name: str | None, id_card_masked: str | None) -> list[str]:
    """The terms a registry record is filed under."""
    terms = text_terms("name", name or "")
    masked = (id_card_masked or "").upper()
    if len(masked) > SHOWN_PREFIX + SHOWN_SUFFIX and "*" in masked:
        terms |= text_terms("id", masked[:SHOWN_PREFIX]) | text_terms("id", masked[-SHOWN_SUFFIX:])
    return sorted(terms)


def registry_equalities(search: RegistrySearch) -> list[dict[str, str]]:
    """The equality queries whose results hold every record the search matches (any of them); none when no
    record can match (more digits than a masked number shows at either end)."""
    match search.kind:
        case SearchKind.ID_CARD:
            return [{"id_card_hash": search.value}]
        case SearchKind.MASKED:
            return [{"id_card_masked": search.value}]
        case SearchKind.DIGITS:
            terms = query_terms("id", search.value) if len(search.value) <= SHOWN_PREFIX else []
            return [{"terms": terms[0]}] if terms else []
        case _:
            terms = query_terms("name", search.value)
            return [{"_id": search.value}] + ([{"terms": terms[0]}] if terms else [])


def registry_matches(search: RegistrySearch, record: Mapping[str, object]) -> bool:
    """Whether a candidate record answers the search (the equalities found it; this decides)."""
    masked = str(record.get("id_card_masked") or "").upper()
    match search.kind:
        case SearchKind.ID_CARD:
            return record.get("id_card_hash") == search.value
        case SearchKind.MASKED:
            return masked == search.value
        case SearchKind.DIGITS:
            shown = "*" in masked
            return shown and (masked.startswith(search.value) or masked.endswith(search.value))
        case _:
            wanted = normalise_text(search.value)
            return (
                record.get("_id") == search.value
                or bool(wanted)
                and wanted in normalise_text(str(record.get("name") or ""))
            )
