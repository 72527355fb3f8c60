"""Text found by equality: the terms a text is filed under and the terms a query asks for (pure).

On FerretDB only equality filters reach the store's backend (a regex makes it decode every document of
the collection), so a text search files each entry under the characters and pairs of characters of its
text (and every run of 3 to 6 letters or digits, so that a house number or the digits of an ID card are a
term of their own) and asks for a query's terms by equality; the text itself is then matched exactly on
the few candidates. The hotline's case search and relief's registry search both use it.
"""

from __future__ import annotations

import re
import unicodedata

RUN_TERMS = range(3, 7)  # the lengths of a letters-or-digits run's substrings indexed as terms
_RUN = re.compile(r"[0-9a-z]{3,}")


def normalise_text(text: str | None) -> str:
    """Text as the index keeps and matches it: NFKC (full-width digits and letters as ASCII), lower case,
    no white space. A substring of the original is one of the normalised text."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).lower()


def text_terms(field: str, text: str) -> set[str]:
    """The terms an entry is filed under for one text field (`field:` prefixed)."""
    s = normalise_text(text)
    terms = set(s) | {s[i : i + 2] for i in range(len(s) - 1)}
    for run in _RUN.findall(s):
        terms |= {run[i : i + n] for n in RUN_TERMS for i in range(len(run) - n + 1)}
    return {f"{field}:{t}" for t in terms}


def query_terms(field: str, text: str) -> list[str]:
    """The terms every entry whose field contains `text` is filed under, the most telling first (a whole
    letters-or-digits run, then pairs of characters; a single character alone)."""
    s = normalise_text(text)
    if len(s) < 2:
        return [f"{field}:{s}"] if s else []
    longest = max(RUN_TERMS)
    runs = [run[i : i + longest] for run in _RUN.findall(s) for i in range(max(1, len(run) - longest + 1))]
    pairs = [s[i : i + 2] for i in range(len(s) - 1)]
    return [f"{field}:{t}" for t in dict.fromkeys(sorted(runs, key=len, reverse=True) + pairs)]
