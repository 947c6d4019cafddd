# Set-up needs only python3 and make: every target bootstraps .venv from PyPI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# An editable install compiles nothing, and a shell with PYTHONDONTWRITEBYTECODE never writes
	# the caches: every worker start would compile the package from source (~0.1 s of CPU, issue 18).
	$(BIN)/python -m compileall -q newsletter
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/newsletter demo

# Two worker processes (pytest-xdist); a test file stays on one worker, so a module-wide fixture
# (the built wheel) or the e2e corpus is built once per file, not once per worker.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
