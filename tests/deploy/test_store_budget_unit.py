"""The local store's connection budget: FerretDB's PostgreSQL pool (deploy/local/infra.sh) holds what every
process of the largest local stack can make it hold at once, and PostgreSQL accepts that many connections.
Below that, a burst can take the whole pool with commands that each wait for one more connection, and the
store stops answering for good (`common.store.ferretdb_connections_needed`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.settings import ServiceSettings
from common.store import UPDATE_COMMANDS_IN_FLIGHT, UPDATES_PER_COMMAND, ferretdb_connections_needed
from tests.chaos.stack import SERVICES

pytestmark = pytest.mark.unit
INFRA = (Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh").read_text()


def _pool() -> int:
    found = re.search(r'^FERRETDB_PG_POOL="\$\{FERRETDB_PG_POOL:-(\d+)\}"$', INFRA, re.M)
    assert found, "infra.sh sets FERRETDB_PG_POOL"
    return int(found.group(1))


def test_a_bulk_command_needs_a_connection_per_statement_and_one_more() -> None:
    assert ferretdb_connections_needed(1) == UPDATES_PER_COMMAND + 1
    assert ferretdb_connections_needed(UPDATE_COMMANDS_IN_FLIGHT) == UPDATE_COMMANDS_IN_FLIGHT * (
        UPDATES_PER_COMMAND + 1
    )
    assert (
        ferretdb_connections_needed(20)
        == UPDATE_COMMANDS_IN_FLIGHT * (UPDATES_PER_COMMAND + 1) + (20 - UPDATE_COMMANDS_IN_FLIGHT) * 2
    )


def test_ferretdbs_pool_holds_the_largest_local_stack() -> None:
    # Two instances of every service (the fault suite), the front door, and two more processes (a tool,
    # the test or suite process itself), each with the default store pool.
    processes = 2 * len(SERVICES) + 1 + 2
    per_process = ferretdb_connections_needed(ServiceSettings.model_fields["mongodb_max_pool_size"].default)
    assert processes * per_process <= _pool(), (processes, per_process, _pool())


def test_postgresql_accepts_the_whole_pool() -> None:
    assert "max_connections=$((FERRETDB_PG_POOL + 20))" in INFRA
    assert "pool_max_conns=$FERRETDB_PG_POOL" in INFRA
