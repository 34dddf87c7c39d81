# Two entry points: `make train` runs the quick-start recipe, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install train test lint bench editor-check clean

$(BIN)/kcli: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/kcli

install: $(BIN)/kcli

train: install
	$(BIN)/kcli train recipes/quickstart.yaml

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check kcli tests bench
	$(BIN)/ruff format --check kcli tests bench

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	KERAS_BACKEND=torch $(BIN)/python bench/train_speed.py

# The JSON Schema in a real YAML language server (needs node and npm; not part of `make test`).
editor-check: install
	npm install --silent --prefix .editor-check yaml-language-server
	KCLI_YAML_LANGUAGE_SERVER=.editor-check/node_modules/.bin/yaml-language-server \
		$(BIN)/python -m pytest -q tests/recipe/test_language_server.py

clean:
	rm -rf $(VENV) runs/*/
