PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/lumo: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/lumo

# Set up, seed demo data into lumo.db and show today's priorities for a demo rep.
run: $(BIN)/lumo
	$(BIN)/lumo db upgrade
	$(BIN)/lumo seed --demo --if-empty
	$(BIN)/lumo priorities --rep demo@lumenbase.test --limit 10

test: $(BIN)/lumo
	$(BIN)/pytest -q

lint: $(BIN)/lumo
	$(BIN)/ruff check lumo tools tests evals

bench: $(BIN)/lumo
	$(BIN)/python evals/perf/bench_crm.py

clean:
	rm -rf $(VENV) lumo.db
