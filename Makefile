# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INFRA := deploy/local/infra.sh
WITH_INFRA := deploy/local/with-infra.sh
PYTEST_ARGS ?=

.PHONY: run test bench contracts token infra-up infra-down infra-status venv clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

## Fetch and start Kafka and FerretDB, then the four services; Ctrl-C stops everything.
run: venv
	@bash $(WITH_INFRA) --stop-after $(PY) -m common.runner

## The whole test suite against the real Kafka and FerretDB.
test: venv
	@bash $(WITH_INFRA) $(PY) -m pytest $(PYTEST_ARGS)

## Every benchmark of the project, against the real broker and store, printing its figures.
bench: venv
	@bash $(WITH_INFRA) $(PY) -m benchmarks

## JSON Schema for every event and an AsyncAPI document for every topic, under docs/contracts/.
contracts: venv
	$(PY) -m contracts.export docs/contracts

## A development token: make token ROLE=operator DISTRICT=500103 [DEPARTMENT=civil_affairs]
token: venv
	@$(PY) -m common.auth --role "$(ROLE)" --department "$(DEPARTMENT)" --district "$(DISTRICT)"

infra-up: venv
	@bash $(INFRA) start

infra-down:
	@bash $(INFRA) stop

infra-status:
	@bash $(INFRA) status

clean: infra-down
	rm -rf $(VENV) .cache .pytest_cache docs/contracts
