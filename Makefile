# Two entry points: `make demo` and `make test` (`make test-fast` while developing).
# All create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m harkit.cli.demo --out $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check harkit tests benchmarks
	$(BIN)/ruff format --check harkit tests benchmarks
	$(BIN)/python -m pytest --durations=15

# the development loop: everything but the tests marked slow, on every core
test-fast: $(STAMP)
	$(BIN)/ruff check harkit tests benchmarks
	$(BIN)/ruff format --check harkit tests benchmarks
	$(BIN)/python -m pytest -m "not slow" -n auto -q --durations=5

lint: $(STAMP)
	$(BIN)/ruff check harkit tests benchmarks
	$(BIN)/ruff format --check harkit tests benchmarks

BENCHMARKS := decode extract flow flow_twostream train infer efficientnet_gru motion features_cost demo

bench: $(STAMP)
	for b in $(BENCHMARKS); do $(BIN)/python benchmarks/$$b.py --out benchmarks/results/$$b.json || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info
