# Local development entry points; see `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The scripts install packages; never run two of them at once.
.NOTPARALLEL:

PYTEST_ARGS ?=

.PHONY: help up down test test-cluster test-rocketmq lint deps venv clean

help:
	@echo "Targets:"
	@echo "  make up      install/start Redis, MariaDB, RabbitMQ if needed, create .venv,"
	@echo "               migrate, load demo data, start the API and the consumer"
	@echo "  make down    stop the API, the consumer and the servers that 'make up'/'make test' started"
	@echo "  make test    ensure servers and .venv, then run pytest (PYTEST_ARGS=... to pass options)"
	@echo "  make test-cluster  the Redis Cluster and sharded-MySQL suites, and the save, read,"
	@echo "               consume and reconcile suites again on a 6-node Redis Cluster + 2 MySQL shards"
	@echo "  make test-rocketmq  the save, protocol, failure and reconciler suites on RocketMQ 5"
	@echo "               (installs Java and Maven if needed, starts and stops our RocketMQ)"
	@echo "  make lint    ruff check, ruff format --check, mypy"
	@echo "  make deps    install/start Redis, MariaDB, RabbitMQ with credentials of our own (var/volreg.env)"
	@echo "  make venv    create .venv and install the project with dev dependencies"
	@echo "  make clean   make down, then remove var/ (server data, logs, pid files, demo data, credentials)"

deps:
	@bash scripts/ensure-deps.sh

venv:
	@bash scripts/venv.sh

up:
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

test: deps venv
	.venv/bin/pytest $(PYTEST_ARGS)

# tests/cluster/topology.py starts the Redis Cluster and points every suite at it and at MySQL
# split over two databases; `python -m` puts the checkout on sys.path for that plugin.
CLUSTER_SUITES = tests/cluster $(wildcard tests/test_save_path.py tests/test_protocol.py \
	tests/test_failures.py tests/test_reconcile*.py)

test-cluster: deps venv
	.venv/bin/python -m pytest -p tests.cluster.topology $(CLUSTER_SUITES) $(PYTEST_ARGS)

test-rocketmq:
	@PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test-rocketmq.sh

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean: down
	rm -rf var
