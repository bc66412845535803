PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench evals clean

$(BIN)/lumo: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/lumo

# Set up, seed demo data into lumo.db (first time), show the demo rep's priorities, then serve the API
# on http://127.0.0.1:8000 with the offline model, printing a curl with a fresh demo token and the web app sign-in link.
run: $(BIN)/lumo
	$(BIN)/lumo seed --demo --if-empty
	$(BIN)/lumo priorities --rep demo@lumenbase.test --limit 5
	$(BIN)/lumo serve --demo

# The offline evaluation suite (CI runs its tests and the suite at k=1).
evals: $(BIN)/lumo
	$(BIN)/python -m evals run --model offline --k 1

# The lint gate, the offline evaluation suite at k=1 (fails below evals/thresholds.toml), then the tests
# in two processes (each with its own PostgreSQL database), the 20 slowest listed: .ci/run must stay under 15 minutes.
test: lint
	$(BIN)/python -m evals run --model offline --k 1 --report $$(mktemp -d)
	$(BIN)/pytest -q -n 2 --durations=20

# The lint gate (CI runs it through `make test`): ruff, the format check, mypy --strict on lumo and tools,
# and the layer rule (import-linter contracts in pyproject.toml).
lint: $(BIN)/lumo
	$(BIN)/ruff check lumo tools tests evals
	$(BIN)/ruff format --check lumo tools tests evals
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: $(BIN)/lumo
	$(BIN)/python evals/perf/bench_crm.py --db /tmp/lumo-bench.db

clean:
	rm -rf $(VENV) lumo.db
