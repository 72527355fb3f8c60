"""The fault suite's short profile, inside the test suite: two instances of every service under steady
calls, each instance killed, Kafka, FerretDB and PostgreSQL killed, Kafka down a while; nothing accepted is
lost, nothing is done twice, no personal number reaches a log. `make chaos` runs the full profile."""

from __future__ import annotations

import pytest

from tests.chaos.suite import SHORT, ZERO, report, run

pytestmark = pytest.mark.integration


async def test_nothing_lost_nothing_doubled_under_faults(tmp_path) -> None:
    figures, leaked = await run(SHORT, tmp_path)
    print(report(figures, SHORT))
    assert figures["calls_accepted"] == figures["calls_offered"] > 0, leaked[:20]
    assert figures["grants_approved"] > 0 and figures["texts_sent"] > 0
    assert sum(v for k, v in figures.items() if k.startswith("fault_")) >= 12
    assert {k: figures[k] for k in ZERO} == dict.fromkeys(ZERO, 0), leaked[:20]
