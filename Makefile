# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,peft]"
	bash scripts/system_deps.sh
	touch $@

setup: $(BIN)/.installed

## Set up, then run the main job on the embedded tiny model and demo data (offline).
demo: setup
	$(BIN)/tscu demo

## Set up, then run the linter and the whole test suite.
test: setup
	$(BIN)/ruff check tscu_tui tests scripts bench
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output .pytest_cache
