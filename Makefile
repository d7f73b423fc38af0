# Two commands matter: `make demo` and `make test`. Both build the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output
# `make bench SIZE=10000`: batches in the database the bench generates (bench/generate.py)
SIZE ?= 1000
BENCH_DIR ?= bench-output

.PHONY: venv demo test lint bench clean

$(BIN)/cmprep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/cmprep

# Compiled bytecode, written even where PYTHONDONTWRITEBYTECODE is set (compileall ignores
# it): without it every command compiles each module it imports, at every start.
venv: $(BIN)/cmprep
	$(BIN)/python -m compileall -q cmprep

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
	$(BIN)/python bench/bench_qc.py  # the QC step with 15 and 1,500 released batches
	$(BIN)/python bench/bench_lots.py  # a step naming a lot beside 100 and 20,000 lot events
	$(BIN)/python bench/bench_web.py  # the bench board and a step page, 10,000 batches
	$(BIN)/python bench/generate.py --size $(SIZE) --out $(BENCH_DIR)/bench-$(SIZE).db
	$(BIN)/python bench/bench_queries.py --db $(BENCH_DIR)/bench-$(SIZE).db  # lists, report, start-up
	$(BIN)/python bench/bench_verify.py --db $(BENCH_DIR)/bench-$(SIZE).db  # audit verify beside its floor
	$(BIN)/python bench/bench_postgres.py  # one durable append on PostgreSQL beside raw psycopg
	$(BIN)/python bench/bench_pg_scale.py --db $(BENCH_DIR)/bench-$(SIZE).db  # PostgreSQL vs SQLite

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(BENCH_DIR) build dist *.egg-info .pytest_cache
