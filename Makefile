# Quick start: `make demo` runs the main job on embedded data, `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest workers: one per core, at most 2 (override: make test JOBS=1)
JOBS   ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 2 ] && n=2; echo $$n)

.PHONY: demo demo-quick test test-fast mutants lint system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever the project metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mdn demo

demo-quick: $(STAMP)
	$(BIN)/mdn demo --quick

system-deps:
	@bash scripts/system_deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile

test-fast: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile -m "not slow"

# one-line bugs planted in a copy of the repository, one at a time; the fast tests must kill each (not run by CI)
mutants: $(STAMP)
	$(BIN)/python scripts/mutants.py

clean:
	rm -rf $(VENV) build *.egg-info demo_out .pytest_cache
