# Every target is one line; the venv is built on first use and whenever pyproject.toml changes.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The unit and integration tiers run on this many pytest-xdist workers, a file to a worker (their
# tests wait on servers about half the time); e2e stacks run one at a time (tests/README.md).
TEST_WORKERS ?= 2

.PHONY: run test lint typecheck unit integration bench bench-http fuzz perf perf-run perf-record clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -e ".[dev]" && touch $@

run: $(BIN)/.installed
	$(BIN)/matchday run

test: $(BIN)/.installed
	scripts/ensure-chromium && $(BIN)/ruff check . && $(BIN)/ruff format --check matchday && $(BIN)/mypy && $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration && $(BIN)/python -m pytest tests/e2e

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check matchday

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit

integration: $(BIN)/.installed
	$(BIN)/python -m pytest tests/integration

# A longer, strict OpenAPI fuzzing run than the suite's (tests/e2e/test_openapi_fuzz.py); sizes by env.
fuzz: $(BIN)/.installed
	MATCHDAY_FUZZ_EXAMPLES=$${MATCHDAY_FUZZ_EXAMPLES:-200} MATCHDAY_FUZZ_NEGATIVE=$${MATCHDAY_FUZZ_NEGATIVE:-100} MATCHDAY_FUZZ_SCENARIOS=$${MATCHDAY_FUZZ_SCENARIOS:-50} MATCHDAY_FUZZ_STEPS=$${MATCHDAY_FUZZ_STEPS:-10} MATCHDAY_FUZZ_STRICT=$${MATCHDAY_FUZZ_STRICT:-1} $(BIN)/python -m pytest -p no:cacheprovider --timeout=0 -q tests/e2e/test_openapi_fuzz.py

bench: $(BIN)/.installed
	$(BIN)/python -m bench.inventory

bench-http: $(BIN)/.installed
	$(BIN)/python -m bench.http

# CPU per operation by role against bench/budget.json; fails past 1.5x (docs/performance.md).
PERF_JSON := bench/results/perf-inventory.json bench/results/perf-http.json

perf-run: $(BIN)/.installed
	$(BIN)/python -m bench.inventory --quick --json bench/results/perf-inventory.json && $(BIN)/python -m bench.http --quick --ingress haproxy --concurrency 16 --json bench/results/perf-http.json

perf: perf-run
	$(BIN)/python -m bench.budget check $(PERF_JSON)

perf-record: perf-run
	$(BIN)/python -m bench.budget record --note "$${NOTE:-make perf-record}" $(PERF_JSON)

loadtest: $(BIN)/.installed
	rm -rf loadtests/out/acks && MATCHDAY_LT_TIME_SCALE=$${MATCHDAY_LT_TIME_SCALE:-0.1} $(BIN)/locust -f loadtests/matchday.py --headless --host http://127.0.0.1:$${MATCHDAY_HTTP_PORT:-8000} --csv loadtests/out/matchday --html loadtests/out/matchday.html --only-summary && $(BIN)/python -m loadtests.audit

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
