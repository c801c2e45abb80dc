# The two commands a newcomer needs: `make serve` and `make test`.
# Both create .venv and install what they need on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: serve test lint typecheck pytest bench-report-filing bench-http bench-relay bench-rebuild bench-verify bench-sheets bench-what-if bench-view-lag bench-follower bench-reads bench-request-cost bench-store-ceiling install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the service on the embedded default (SQLite under ./var, 127.0.0.1:8000).
serve: $(STAMP)
	$(BIN)/yingke serve

## Lint, format check, type check, then the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks (need PostgreSQL on 127.0.0.1:5432); not part of the test suite.
bench-report-filing: $(STAMP)
	$(BIN)/python -m bench.report_filing

bench-http: $(STAMP)
	$(BIN)/python -m bench.http_load

bench-relay: $(STAMP)
	$(BIN)/python -m bench.relay_throughput

bench-rebuild: $(STAMP)
	$(BIN)/python -m bench.rebuild_views

bench-verify: $(STAMP)
	$(BIN)/python -m bench.verify_chain

bench-sheets: $(STAMP)
	$(BIN)/python -m bench.sheets

bench-what-if: $(STAMP)
	$(BIN)/python -m bench.what_if

bench-store-ceiling: $(STAMP)
	$(BIN)/python -m bench.store_ceiling

bench-view-lag: $(STAMP)
	$(BIN)/python -m bench.view_lag

bench-follower: $(STAMP)
	$(BIN)/python -m bench.follower

bench-reads: $(STAMP)
	$(BIN)/python -m bench.reads

bench-request-cost: $(STAMP)
	$(BIN)/python -m bench.request_cost --profile

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
