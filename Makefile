# One Makefile; CI calls these targets verbatim.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install dev test unit integration lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

dev: install  ## start ingress, worker and beat on the embedded default (SQLite, no services)
	$(VENV)/bin/hookyard dev

test: install  ## the whole suite: unit, then integration on real services
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(PY) -m pytest -n 2 tests/integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## the benchmark on real PostgreSQL + Redis (see BENCHMARKS.md); not in CI
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk
	$(PY) -m bench $(BENCH_ARGS)  # e.g. make bench BENCH_ARGS="--only scale"

clean:
	rm -rf $(VENV) .hookyard .pytest_cache
