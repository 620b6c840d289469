# Two commands set everything up on a fresh machine:
#   make run   - install, load the demo world, build the index, serve the API on 127.0.0.1
#   make test  - install and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: this machine has the CPU wheel on disk; an unpinned torch pulls CUDA.
# Without --quiet: the two big installs take minutes, and pip's progress shows they are moving.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "== installing torch (CPU) and the project with its test tools: several minutes on a first run =="
	$(BIN)/pip install --progress-bar on torch==2.13.0
	$(BIN)/pip install --progress-bar on -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/partnermatch demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# The quick loop before a commit: lint, format and every test not marked slow.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var
