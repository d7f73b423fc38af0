# Two commands matter: `make demo` and `make test`. Both build the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

.PHONY: venv demo test lint bench clean

$(BIN)/cmprep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/cmprep

venv: $(BIN)/cmprep

demo: venv
	$(BIN)/python -m cmprep.demo --out $(DEMO_DIR)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check cmprep tests bench
	$(BIN)/ruff format --check cmprep tests bench
	$(BIN)/mypy  # strict, on cmprep/: see [tool.mypy] in pyproject.toml

bench: venv
	$(BIN)/pip install -q pint  # only to compare against; not a dependency
	$(BIN)/python bench/bench_append.py
	$(BIN)/python bench/bench_status.py
	$(BIN)/python bench/bench_units.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info .pytest_cache
