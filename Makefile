# Local development entry points; see `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The scripts install packages; never run two of them at once.
.NOTPARALLEL:

PYTEST_ARGS ?=

.PHONY: help up down test lint deps venv clean

help:
	@echo "Targets:"
	@echo "  make up      install/start Redis, MariaDB, RabbitMQ if needed, create .venv,"
	@echo "               migrate, load demo data, start the API and the consumer"
	@echo "  make down    stop the API and the consumer started by 'make up'"
	@echo "  make test    ensure servers and .venv, then run pytest (PYTEST_ARGS=... to pass options)"
	@echo "  make lint    ruff check, ruff format --check, mypy"
	@echo "  make deps    install/start Redis, MariaDB, RabbitMQ and create the database user"
	@echo "  make venv    create .venv and install the project with dev dependencies"
	@echo "  make clean   make down, then remove var/ (logs, pid files, demo data, token secret)"

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

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean: down
	rm -rf var
