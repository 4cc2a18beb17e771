# vsmux developer commands. Everything runs from a local .venv that the
# targets create on first use, so a fresh machine needs only python3 and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-clients lint typecheck pytest protos check-protos bench clean

# setup.py builds the optional C extensions; a changed C source rebuilds them.
$(STAMP): pyproject.toml setup.py src/vsmux/wire/_accel.c src/vsmux/server/_pools.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the gateway on the built-in simulated cluster with a live view.
demo: $(STAMP)
	$(BIN)/vsmux demo

## Lint, type-check and run the whole test suite.
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The second run checks the pure-Python wire loops, which run wherever the C
# extension could not be built, through the layers that use them.
pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider
	VSMUX_PURE_PYTHON=1 $(BIN)/pytest -q -p no:cacheprovider tests/wire tests/mux

## Only the real-client suite: Debezium's connector and official-proto clients.
test-clients: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m clients -rs tests/interop

## Regenerate the committed message classes from protos/.
protos: $(STAMP)
	$(BIN)/python -m vsmux.tools.genprotos

## Run every benchmark (slow; prints tables and writes benchmarks/results/).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
	rm -f src/vsmux/wire/_accel.*.so src/vsmux/server/_pools.*.so
