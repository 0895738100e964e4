# splitnet: two commands do all the set-up on a fresh machine.
#   make run   - train on the bundled default (.env: 5 clients, CNN on DIGITS, with offloading)
#   make test  - lint, type-check and run every test
#   make unit  - the unit tests alone (no sockets, no processes; well under a minute)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/splitnet local

lint: $(STAMP)
	$(BIN)/ruff check splitnet tests scripts
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --durations=20

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache results checkpoints
