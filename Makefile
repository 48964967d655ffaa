# Two entry points, both self-contained on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/selfsup: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/selfsup

venv: $(BIN)/selfsup

demo: venv
	$(BIN)/selfsup demo

test: venv
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
