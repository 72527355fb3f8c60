# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INFRA := deploy/local/infra.sh
WITH_INFRA := deploy/local/with-infra.sh
PYTEST_ARGS ?=
# Tests and benchmarks get infrastructure of their own (fresh data, other ports), so they never touch
# the data of the system `make run` runs, and both can run at once.
# The ports can be moved (TEST_KAFKA_PORT=… make test) to run two test instances side by side.
TEST_INSTANCE ?= test
TEST_KAFKA_PORT ?= 19092
TEST_KAFKA_CONTROLLER_PORT ?= 19093
TEST_MONGO_PORT ?= 37017
TEST_PG_PORT ?= 35432
TEST_INFRA := INFRA_INSTANCE=$(TEST_INSTANCE) KAFKA_PORT=$(TEST_KAFKA_PORT) \
	KAFKA_CONTROLLER_PORT=$(TEST_KAFKA_CONTROLLER_PORT) MONGO_PORT=$(TEST_MONGO_PORT) PG_PORT=$(TEST_PG_PORT)

FUZZ_REQUESTS ?= 5000

.PHONY: run test lint format chaos bench fuzz contracts policy-table token infra-up infra-down infra-status venv chromium clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

## Debian's Chromium for the browser tests (installed with apt-get when missing and root).
chromium:
	@bash deploy/local/chromium.sh

## Fetch and start Kafka, PostgreSQL and FerretDB, then the four services and the front door; Ctrl-C stops everything.
run: venv
	@bash $(WITH_INFRA) --stop-after $(PY) -m common.runner

## The whole test suite against the real Kafka and FerretDB (on PostgreSQL), the pages in Chromium.
test: venv chromium
	@$(TEST_INFRA) bash $(WITH_INFRA) --fresh $(PY) -m pytest $(PYTEST_ARGS)

## Ruff (lint and format check) and mypy (strict for contracts/, common/ and every domain/); CI runs it first.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Apply ruff's safe fixes and its formatting.
format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## The fault suite (CHAOS_PROFILE=full, or short: about 5 minutes, which `make test` runs too): two instances
## of every service under steady calls; every instance, Kafka, FerretDB and PostgreSQL killed; Kafka down.
CHAOS_PROFILE ?= full
chaos: venv
	@bash $(INFRA) fetch
	$(PY) -m tests.chaos $(CHAOS_PROFILE)

## Every benchmark (or BENCH="intake router ..."), against the real broker and store, printing figures.
## BENCH=e2e runs on an instance of its own whose data is kept, so its history is built once per size.
bench: venv
ifeq ($(strip $(BENCH)),e2e)
	@INFRA_INSTANCE=$(TEST_INSTANCE)-e2e KAFKA_PORT=$(TEST_KAFKA_PORT) \
		KAFKA_CONTROLLER_PORT=$(TEST_KAFKA_CONTROLLER_PORT) MONGO_PORT=$(TEST_MONGO_PORT) PG_PORT=$(TEST_PG_PORT) \
		bash $(WITH_INFRA) $(PY) -m benchmarks e2e
else
	@$(TEST_INFRA) bash $(WITH_INFRA) --fresh $(PY) -m benchmarks $(BENCH)
endif

## A schema-driven fuzz of every service and the front door (schemathesis from its OpenAPI, every role's
## token), against them as processes on the real broker and store: FUZZ_REQUESTS each (default 5000), printing
## requests and failures per service (5xx, undeclared statuses, replies breaking their schema).
fuzz: venv
	@$(TEST_INFRA) bash $(WITH_INFRA) --fresh $(PY) -m tests.fuzz --requests $(FUZZ_REQUESTS)

## JSON Schema for every event and an AsyncAPI document for every topic, under docs/contracts/.
contracts: venv
	$(PY) -m contracts.export docs/contracts

## Provision -> rules -> tests (contracts/data/provisions.yaml, the rules data, the tests); fails on an untested one.
policy-table: venv
	@$(PY) -m tools.policy_table

## A development token: make token ROLE=operator DISTRICT=500103 [DEPARTMENT=civil_affairs]
token: venv
	@$(PY) -m common.auth --role "$(ROLE)" --department "$(DEPARTMENT)" --district "$(DISTRICT)"

infra-up: venv
	@bash $(INFRA) start

infra-down:
	@bash $(INFRA) stop

infra-status:
	@bash $(INFRA) status

# reset, not stop: as root, PostgreSQL's data may live outside .cache/ (see infra.sh), and reset deletes it.
clean:
	@bash $(INFRA) reset
	@$(TEST_INFRA) bash $(INFRA) reset
	rm -rf $(VENV) .cache .pytest_cache docs/contracts test-artifacts
