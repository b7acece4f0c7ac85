# Everything a fresh machine needs, from python3 and make alone.
PYTHON ?= python3

# Let Python cache compiled modules even where the environment says not to: every test
# starts many `cpf` processes, and recompiling the package in each one is slow.
unexport PYTHONDONTWRITEBYTECODE

VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-long lint typecheck bench clean

# pip and setuptools print pages of warnings even when all goes well: their output goes to
# $(VENV)/install.log, and is shown only when the install fails.
$(STAMP): pyproject.toml
	@echo "Installing cpf and its test tools into $(VENV) (output in $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip && \
	   $(BIN)/python -m pip install -e '.[test]'; } > $(VENV)/install.log 2>&1 || \
	 { cat $(VENV)/install.log >&2; echo "Installing failed; the output above is in $(VENV)/install.log." >&2; exit 1; }
	@touch $(STAMP)

## Run the example workflow end to end: start, pause for approval, resume, finish.
demo: $(STAMP)
	@CHECKPOINTFLOW_BASE_DIR=$${CHECKPOINTFLOW_BASE_DIR:-$(CURDIR)/.demo-state} \
		PATH=$(abspath $(BIN)):$$PATH sh examples/demo.sh

## Lint, type check and the whole test suite (short variants of the fault tests).
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

## The long variants of the crash, concurrency and fuzz tests.
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long

lint: $(STAMP)
	$(BIN)/ruff check checkpointflow tests benchmarks
	$(BIN)/ruff format --check checkpointflow tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## Timing harness; writes benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/list_bench.py

clean:
	rm -rf $(VENV) .demo-state .pytest_cache .mypy_cache .ruff_cache .hypothesis
